"""Engines turn page images into raw QwenVL HTML: choice.py resolves `auto`, open.py opens the one named."""
