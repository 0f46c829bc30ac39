"""docparse: PDFs and images to HTML, Markdown or JSON through Qwen2.5-VL's QwenVL HTML."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docparse.version import __version__

__all__ = ["Document", "__version__", "convert", "load", "save", "write"]

if TYPE_CHECKING:
    from docparse.api import convert, load, save, write
    from docparse.document import Document


def __getattr__(name: str) -> Any:
    """The API, imported on first use: `import docparse` alone loads neither PyMuPDF nor torch."""
    if name in ("convert", "load", "save", "write"):
        from docparse import api

        return getattr(api, name)
    if name == "Document":
        from docparse.document import Document

        return Document
    raise AttributeError(f"module 'docparse' has no attribute {name!r}")
