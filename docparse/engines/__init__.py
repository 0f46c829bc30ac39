"""Engines turn page images into raw QwenVL HTML."""
