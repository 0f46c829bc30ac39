"""The public entry: convert one file (the scheduler with one input), render saved answers again, load a document."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from docparse.assemble import assemble
from docparse.config import AssembleOptions, ConvertOptions
from docparse.document import Document, Generation, JSONValue, Page, SchemaError, Unit
from docparse.engines.base import Engine
from docparse.errors import InputError
from docparse.run.build import build_page, on_displayed_page, turned_size
from docparse.run.cache import PageCache
from docparse.run.events import FileDone, PageDone, Progress
from docparse.run.keepraw import ReplayEngine
from docparse.run.rawfiles import RawPage, load_raw, read_given
from docparse.run.recover import Budget, recover_page
from docparse.run.scheduler import run_batch
from docparse.version import __version__


def convert(
    path: Path,
    options: ConvertOptions,
    get_engine: Callable[[], Engine],
    progress: Progress | None = None,
    cache: PageCache | None = None,
) -> Document:
    """Convert one PDF or image file: the batch scheduler (docparse.run.scheduler) with one input.

    The input is opened (and its page selection checked) before `get_engine` is called, and the
    engine is asked for only when a page needs the model (not for blank or cached pages), so a bad
    input fails in milliseconds rather than after a model load.
    Raises UsageError / InputError for an input that cannot be opened or a bad page selection.
    A batch the engine fails on becomes failed pages (status "failed", the error in warnings);
    the other pages still convert. With `cache`, answers are read from and stored in it.
    """
    done: list[FileDone] = []

    def on_event(event: object) -> None:
        if isinstance(event, PageDone) and progress is not None:
            progress(event)
        elif isinstance(event, FileDone):
            done.append(event)

    run_batch([path], options, get_engine, cache=cache, events=on_event)
    (result,) = done
    if result.error is not None:
        raise result.error
    assert result.document is not None
    return result.document


def render(
    paths: Sequence[Path],
    *,
    image_size: tuple[int, int] | None = None,
    page_size: tuple[float, float] | None = None,
    page_unit: Unit = "pt",
    progress: Progress | None = None,
    assemble_options: AssembleOptions | None = None,
    password: str | None = None,
) -> Document:
    """Saved raw answers (one file per page, in order) -> Document, with no model.

    `image_size` (the size the model saw) and `page_size` (in `page_unit`) override the sidecars.
    With no page size known, boxes stay in model pixels. The pages are assembled as `convert`
    assembles them, and checked against the source's text layer when the source is found
    (docparse.layer.agreement.check_source; `password` opens an encrypted one).
    """
    assemble_options = assemble_options or AssembleOptions()
    pages: list[Page] = []
    source: str | None = None
    for index, path in enumerate(paths, start=1):
        raw = load_raw(path)
        source = source or raw.source
        size = page_size or raw.page_size
        page = _rendered_page(raw, index, image_size or raw.image_size, size, page_unit if page_size else raw.unit)
        if raw.rotation and size and (image_size or raw.image_size):  # mapped: boxes back onto the displayed page
            page = on_displayed_page(page, raw.rotation, *size)
        pages.append(page)
        if progress is not None:
            progress(PageDone(str(path), index, len(paths), page))
    metadata: dict[str, JSONValue] = {
        "docparse_version": __version__,
        "rendered_from": [str(p) for p in paths],
        "merge": assemble_options.merge,
    }
    document = Document(source=source or (str(paths[0]) if paths else ""), pages=tuple(pages), metadata=metadata)
    from docparse.layer.agreement import check_source

    return check_source(assemble(document, assemble_options), password)


def _rendered_page(
    raw: RawPage, index: int, image_size: tuple[int, int] | None, size: tuple[float, float] | None, unit: Unit
) -> Page:
    """A saved answer read as the conversion read it: with its retries replayed through the ladder, when kept."""
    page_size = turned_size(*size, raw.rotation) if size else None

    def build(text: str, generation: Generation | None, img: Any, pts: Any) -> Page:
        return build_page(
            number=raw.number or index, raw=text, image_size=img, page_size=pts, unit=unit, generation=generation
        )

    page = build(raw.text, raw.generation, image_size, page_size)
    if not raw.retries or raw.generation is None or image_size is None or page_size is None:
        return page
    replay = ReplayEngine(raw.retries, raw.generation.model)
    placeholder = Image.new("L", image_size)  # only its size is read: the answers are saved
    return recover_page(
        replay, placeholder, page_size, page, lambda ans, img, pts: build(ans.text, ans.generation, img, pts),
        max_new_tokens=raw.max_new_tokens, budget=Budget(len(raw.retries), None),
    )  # fmt: skip


def load_document(path: Path) -> Document:
    """A document saved by `--to json` (or Document.to_json), read back as it was written: no model, no
    assembly again. Raises UsageError for a missing file, InputError for one that is not a docparse document.
    """
    data = read_given(path)
    try:
        return Document.from_json(data)
    except SchemaError as exc:
        raise InputError(f"{path}: not a docparse JSON document ({exc})") from None
