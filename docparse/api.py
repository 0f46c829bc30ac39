"""The Python API: convert a file to a Document, write a Document in any format, read a saved JSON document."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Unpack

from docparse.config import Images
from docparse.document import Document
from docparse.engines.base import Engine
from docparse.engines.choice import EngineKind
from docparse.errors import DocparseError
from docparse.formats import Format
from docparse.keywords import ConvertKeywords, convert_options, option_names, write_options


def _check_names(given: dict[str, Any]) -> None:
    known = option_names()
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; it takes: {', '.join(known)}"
            raise TypeError(f"docparse.convert() got an unknown option {name!r}{hint}")


# A flag, with the placeholder (PATH, URL) or engine kind that may follow it.
_FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?: (?P<arg>[A-Z]+\b|openai\b|transformers\b))?")


def in_python_terms(exc: DocparseError) -> DocparseError:
    """The same error with the command line's flags named as convert's keywords ("--pages" -> "pages=")."""
    known = {*option_names(), "engine"}

    def name(m: re.Match[str]) -> str:
        key, arg = m.group(1).replace("-", "_"), m.group("arg")
        if key == "no_merge":
            return "merge=False"
        if key not in known:
            return m.group(0)
        return f"{key}=" + ("" if arg is None else arg if arg.isupper() else repr(arg))

    text = _FLAG.sub(name, str(exc))
    if text == str(exc):
        return exc
    return type(exc)(text)


def quiet_loading() -> None:
    """No download or weight-loading bars from Hugging Face libraries (for logs, -q, and the Python API)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def convert(
    path: str | Path,
    *,
    engine: Engine | EngineKind | None = None,
    progress: Callable[[Any], None] | None = None,
    cache_dir: str | Path | None = None,
    quiet: bool = True,
    **options: Unpack[ConvertKeywords],
) -> Document:
    """Convert one PDF or image file into a Document, as `docparse PATH` does.

    `options` are the command line's options by their Python names (`pages="1-3"`, `model=...`,
    `device="cuda"`, `max_pixels=...`, `merge=False`, `keep_raw=Path(...)`, `api_base=...`; see
    ConvertKeywords), turned into the same option records; an unknown name is a TypeError that names
    the closest one. `engine` is an engine kind as --engine takes it ("auto", the default; "transformers",
    "vllm", "llamacpp", "openai"), or an Engine object (its answers are cached as the transformers
    engine's). Without an Engine object the engine is opened (and closed afterwards) only once the input
    has opened; an engine you pass is left open, so one loaded model can serve many files. Raises
    docparse.errors.DocparseError subclasses (UsageError, InputError, ModelUnavailableError), worded with
    these keywords (`pages=`, not `--pages`); a page the engine fails on becomes a page with status
    "failed" instead. With `cache_dir`, model answers are read from and stored in that page cache (as the
    command line does by default), so converting again makes no model call. `quiet` (the default) keeps
    the Hugging Face download and loading bars off stderr.
    """
    from docparse.pipeline import convert as run

    _check_names(dict(options))
    kind = engine if isinstance(engine, str) else ("auto" if engine is None else "transformers")
    given = engine if not isinstance(engine, str) else None
    try:
        records = convert_options(engine=kind, **options)
    except DocparseError as exc:
        raise in_python_terms(exc) from None
    loaded: list[Engine] = []

    def get_engine() -> Engine:
        if given is not None:
            return given
        if not loaded:
            from docparse.engines.open import open_engine

            if quiet and records.engine == "transformers":
                quiet_loading()
            loaded.append(open_engine(records))
        return loaded[0]

    from docparse.run.cache import PageCache

    cache = PageCache(Path(cache_dir)) if cache_dir is not None else None
    try:
        return run(Path(path), records, get_engine, progress=progress, cache=cache)
    except DocparseError as exc:
        raise in_python_terms(exc) from None
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
    options = write_options(locals())  # the write options by name: format, keep_furniture, ...
    from docparse.output import write_with_assets

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
    options = write_options(locals())  # the write options by name: format, keep_furniture, ...
    from docparse.output import write_with_assets

    return write_with_assets(doc, options, Path(path), password=password).warnings


def load(path: str | Path) -> Document:
    """A document saved as JSON (`docparse --to json`, or Document.to_json), read back with no model."""
    from docparse.pipeline import load_document

    return load_document(Path(path))
