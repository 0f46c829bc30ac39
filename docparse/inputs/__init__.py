"""Inputs to page images: which files to convert, what each is, its pages rendered and prepared for the model."""
