"""Answers built into a Page: an answer read, retried (or read in bands), turned back onto the displayed page."""

from __future__ import annotations

import time
from dataclasses import replace

from docparse.config import ConvertOptions
from docparse.document import Generation, Page, Unit
from docparse.engines.base import Answer, Engine, GenerationSettings
from docparse.inputs.pageprep import unturn
from docparse.inputs.rasterize import PageImage
from docparse.inputs.tallpage import tall_rows
from docparse.reader.qwenvl import read_answer
from docparse.reader.repetition import collapse_blocks
from docparse.run.keepraw import RecordingEngine
from docparse.run.rawfiles import save_raw
from docparse.run.recover import Budget, Build, read_bands, recover_page
from docparse.run.status import answer_status


def build_page(
    *,
    number: int,
    raw: str,
    image_size: tuple[int, int] | None,
    page_size: tuple[float, float] | None,
    unit: Unit,
    generation: Generation | None,
) -> Page:
    """Read one raw answer into a Page.

    Boxes are mapped to `page_size` (in `unit`) when the image size is known too; otherwise
    they stay in model pixels and the page is measured in pixels.
    """
    mapped = image_size is not None and page_size is not None
    result = read_answer(raw, image_size=image_size, page_size=page_size if mapped else None)
    reason = generation.finish_reason if generation is not None else None
    # A loop runs until something stops it: only an answer that did not end by itself is cut.
    # A complete answer keeps its repeats (a table's identical rows, a TOC's dot leaders are real).
    ended_badly = result.truncated or reason in ("length", "time", "repetition")
    blocks, repeated = collapse_blocks(result.blocks) if ended_badly else (result.blocks, [])
    warnings = list(result.warnings)
    status = answer_status(
        looped=bool(repeated) or reason == "repetition",
        cut=result.truncated or reason in ("length", "time"),
        unstructured=not result.structured and bool(blocks),
    )
    if generation is not None and reason == "length":
        warnings.append(
            f"the answer was cut at {generation.tokens_out} new tokens: raise --max-new-tokens to keep the rest"
        )
    if generation is not None and reason == "time":
        warnings.append(
            f"the answer was cut by the page time budget after {generation.seconds:.1f} s: raise --page-timeout"
        )
    if repeated or reason == "repetition":
        warnings.extend(repeated)
        if reason == "repetition" and not repeated:
            warnings.append("generation stopped early: the model was repeating itself")
    width: float | None = None
    height: float | None = None
    if mapped and page_size is not None:
        width, height = page_size
    elif image_size is not None:
        width, height = float(image_size[0]), float(image_size[1])
    return Page(
        number=number,
        width=width,
        height=height,
        unit=unit if mapped else "px",
        image_size=image_size,
        blocks=blocks,
        status=status,
        warnings=tuple(warnings),
        generation=generation,
    )


def turned_size(width: float, height: float, turn: int) -> tuple[float, float]:
    """The page's size as the model saw it, turned clockwise by `turn`."""
    return (height, width) if turn in (90, 270) else (width, height)


def on_displayed_page(page: Page, turn: int, width: float, height: float, notes: tuple[str, ...] = ()) -> Page:
    """A page read on the turned image, its boxes mapped back onto the page as displayed."""
    return replace(
        page,
        width=width,
        height=height,
        blocks=unturn(page.blocks, turn, width, height),
        rotation=turn,
        warnings=(*notes, *page.warnings),
    )


def first_try(options: ConvertOptions) -> GenerationSettings:
    """The settings of a page's first call: greedy, within the page time budget."""
    return GenerationSettings(time_limit=options.page_timeout)


def _builder(image: PageImage) -> Build:
    """Reads an answer for (a part of) `image`, given the pixel size it was sent at and the page space it stands for."""

    def build(answer: Answer, image_size: tuple[int, int], page_size: tuple[float, float]) -> Page:
        return build_page(number=image.number, raw=answer.text, image_size=image_size, page_size=page_size,
                          unit=image.unit, generation=answer.generation)  # fmt: skip

    return build


def page_from_answer(engine: Engine, image: PageImage, answer: Answer, options: ConvertOptions, spent: float) -> Page:
    """The page read from its first answer, then through the retry ladder if that answer looped or was cut."""
    recorder = None
    if options.keep_raw is not None:
        save_raw(options.keep_raw, image, answer, options)
        engine = recorder = RecordingEngine(engine)

    build = _builder(image)
    # The model saw the turned page: read its answer on the turned page, then turn the boxes back.
    page_size = turned_size(image.width, image.height, image.turn)
    first = build(answer, image.image.size, page_size)
    timeout = options.page_timeout
    budget = Budget(options.max_retries, None if timeout is None else time.perf_counter() + timeout - spent)
    page = recover_page(
        engine, image.image, page_size, first, build, max_new_tokens=options.model.max_new_tokens, budget=budget
    )
    if options.keep_raw is not None and recorder is not None and recorder.calls:
        save_raw(options.keep_raw, image, answer, options, recorder.calls)  # every attempt, for `render`
    return on_displayed_page(page, image.turn, image.width, image.height, image.notes)


def page_from_bands(engine: Engine, image: PageImage, options: ConvertOptions) -> Page:
    """A page too tall for the model (docparse.inputs.tallpage), read in bands in one call and stitched."""
    rows = tall_rows(image.image.size, options.raster.min_pixels, options.raster.max_pixels)
    page = read_bands(
        engine, image.image, (image.width, image.height), rows, first_try(options), _builder(image), image.number
    )
    note = (
        f"the page is {image.height / image.width:.0f} times as tall as wide (the model takes up to 200): "
        f"read in {len(rows)} bands, stitched (no retries)"
    )
    return replace(page, attempts=1, warnings=(note, *page.warnings), rotation=0)
