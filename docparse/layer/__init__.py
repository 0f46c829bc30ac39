"""The check of the model against the PDF's own text layer: agreement, coverage, fallback, snapping."""
