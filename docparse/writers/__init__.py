"""The writers, one per output format, keyed by format name: a Document in, the output text out."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from docparse.config import WriteOptions
from docparse.document import Document
from docparse.errors import UsageError
from docparse.formats import Format
from docparse.writers.html import write_html
from docparse.writers.json import write_json
from docparse.writers.markdown import write_markdown

Writer: TypeAlias = Callable[[Document, WriteOptions], str]

WRITERS: dict[Format, Writer] = {
    "md": write_markdown,
    "html": write_html,
    "json": write_json,
}


def write(doc: Document, options: WriteOptions) -> str:
    """The document in `options.format`; UsageError for a format no writer handles."""
    writer = WRITERS.get(options.format)
    if writer is None:
        raise UsageError(f"unknown output format {options.format!r} (choose from {', '.join(WRITERS)})")
    return writer(doc, options)


__all__ = ["WRITERS", "Writer", "write", "write_html", "write_json", "write_markdown"]
