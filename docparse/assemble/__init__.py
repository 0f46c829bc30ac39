"""Pages -> one document: page furniture, footnotes, captions, blocks cut by page breaks, heading levels, title."""

from docparse.assemble.steps import assemble

__all__ = ["assemble"]
