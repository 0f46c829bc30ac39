"""The Python API: convert a file to a Document, write a Document in any format, read a saved JSON document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from docparse.config import Format, WriteOptions, convert_options
from docparse.document import Document
from docparse.engines.base import Engine


def convert(
    path: str | Path,
    *,
    engine: Engine | None = None,
    progress: Callable[[Any], None] | None = None,
    **options: Any,
) -> Document:
    """Convert one PDF or image file into a Document, as `docparse PATH` does.

    `options` are the command line's options by their Python names (`pages="1-3"`, `model=...`,
    `device="cuda"`, `max_pixels=...`, `merge=False`, `keep_raw=Path(...)`; see
    docparse.config.convert_options), turned into the same option records. Without `engine` the
    model is loaded (and closed afterwards) only once the input has opened; an engine you pass is
    left open, so one loaded model can serve many files. Raises docparse.errors.DocparseError
    subclasses (UsageError, InputError, ModelUnavailableError); a page the engine fails on becomes a
    page with status "failed" instead.
    """
    from docparse.pipeline import convert as run

    records = convert_options(**options)
    loaded: list[Engine] = []

    def get_engine() -> Engine:
        if engine is not None:
            return engine
        if not loaded:
            from docparse.engines.transformers import load_engine

            loaded.append(load_engine(records.model, records.raster.max_pixels))
        return loaded[0]

    try:
        return run(Path(path), records, get_engine, progress=progress)
    finally:
        for own in loaded:
            own.close()


def write(
    doc: Document,
    format: Format = "md",
    *,
    keep_furniture: bool = False,
    page_markers: bool = False,
    page_breaks: bool = False,
) -> str:
    """The document as Markdown, HTML or JSON text, with the options the command line has."""
    from docparse.writers import write as write_with

    options = WriteOptions(
        format=format, keep_furniture=keep_furniture, page_markers=page_markers, page_breaks=page_breaks
    )
    return write_with(doc, options)


def load(path: str | Path) -> Document:
    """A document saved as JSON (`docparse --to json`, or Document.to_json), read back with no model."""
    from docparse.pipeline import load_document

    return load_document(Path(path))
