"""The Python API: convert a file to a Document, write a Document in any format, read a saved JSON document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from docparse.config import Format, Images, WriteOptions, convert_options
from docparse.document import Document
from docparse.engines.base import Engine


def convert(
    path: str | Path,
    *,
    engine: Engine | str | None = None,
    progress: Callable[[Any], None] | None = None,
    cache_dir: str | Path | None = None,
    **options: Any,
) -> Document:
    """Convert one PDF or image file into a Document, as `docparse PATH` does.

    `options` are the command line's options by their Python names (`pages="1-3"`, `model=...`,
    `device="cuda"`, `max_pixels=...`, `merge=False`, `keep_raw=Path(...)`, `api_base=...`; see
    docparse.config.convert_options), turned into the same option records. `engine` is an engine
    kind as --engine takes it ("auto", "transformers", "vllm", "openai"), or an Engine object. Without an Engine
    object the engine is opened (and closed afterwards) only once the input has opened; an engine
    you pass is left open, so one loaded model can serve many files. Raises docparse.errors.DocparseError
    subclasses (UsageError, InputError, ModelUnavailableError); a page the engine fails on becomes a
    page with status "failed" instead. With `cache_dir`, model answers are read from and stored in
    that page cache (as the command line does by default), so converting again makes no model call.
    """
    from docparse.pipeline import convert as run

    if isinstance(engine, str):  # an engine kind, as --engine takes it
        options["engine"] = engine
        engine = None
    elif engine is not None:
        options.setdefault("engine", "transformers")  # names the object's answers in the cache, as before
    records = convert_options(**options)
    loaded: list[Engine] = []

    def get_engine() -> Engine:
        if engine is not None:
            return engine
        if not loaded:
            from docparse.engines import open_engine

            loaded.append(open_engine(records))
        return loaded[0]

    from docparse.cache import PageCache

    cache = PageCache(Path(cache_dir)) if cache_dir is not None else None
    try:
        return run(Path(path), records, get_engine, progress=progress, cache=cache)
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
    images: Literal["embed", "none"] = "none",
    online_assets: bool = False,
) -> str:
    """The document as Markdown, HTML or JSON text, with the options the command line has.

    `images="embed"` crops the pictures from the document's source file (when it is still there) into
    PNG data URIs; to save crops as files beside an output, use `save`.
    """
    from docparse.assets import write_with_assets

    options = WriteOptions(
        format=format,
        keep_furniture=keep_furniture,
        page_markers=page_markers,
        page_breaks=page_breaks,
        images=images,
        online_assets=online_assets,
    )
    return write_with_assets(doc, options, None).text


def save(
    doc: Document,
    path: str | Path,
    format: Format = "md",
    *,
    keep_furniture: bool = False,
    page_markers: bool = False,
    page_breaks: bool = False,
    images: Images = "files",
    online_assets: bool = False,
    password: str | None = None,
) -> tuple[str, ...]:
    """Write the document to `path` atomically, its picture crops in `<stem>_files/` beside it (or
    embedded, or none); returns warnings (e.g. the source is gone, so no crops were made)."""
    from docparse.assets import write_with_assets

    options = WriteOptions(
        format=format,
        keep_furniture=keep_furniture,
        page_markers=page_markers,
        page_breaks=page_breaks,
        images=images,
        online_assets=online_assets,
    )
    return write_with_assets(doc, options, Path(path), password=password).warnings


def load(path: str | Path) -> Document:
    """A document saved as JSON (`docparse --to json`, or Document.to_json), read back with no model."""
    from docparse.pipeline import load_document

    return load_document(Path(path))
