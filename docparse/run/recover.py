"""The retry ladder for pages whose answer looped or was cut off: settings to try, then bands, within a budget."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

from PIL import Image

from docparse.document import Block, Generation, Page, block_text
from docparse.document.boxes import map_boxes, shifted
from docparse.engines.base import GREEDY, Answer, Engine, GenerationSettings
from docparse.errors import EngineError
from docparse.prompt import FACTOR
from docparse.run.status import answer_status, retried

# Reads one answer for an image of `image_size` pixels standing for `page_size` of the page.
Build = Callable[[Answer, tuple[int, int], tuple[float, float]], Page]

Problem = Literal["repetition", "truncated"]


@dataclass(frozen=True, slots=True)
class Rung:
    """One retry: decode with `settings`, or (`bands` > 1) read the page in that many overlapping strips.

    `token_factor` multiplies the configured --max-new-tokens for this rung.
    """

    name: str
    settings: GenerationSettings = GREEDY
    token_factor: float = 1.0
    bands: int = 0


# After a loop: push the model off it (penalty), then shake it loose (sampling, seeded so a run can
# be reproduced), then give it less to read at once (bands).
REPETITION_LADDER: tuple[Rung, ...] = (
    Rung("repetition penalty 1.3", GenerationSettings(repetition_penalty=1.3)),
    Rung("sampling at temperature 0.7", GenerationSettings(temperature=0.7, seed=1)),
    Rung("sampling at temperature 1.0", GenerationSettings(temperature=1.0, seed=2)),
    Rung("3 overlapping bands", bands=3),
)
# After running out of tokens: more tokens, then bands (each band needs fewer).
TRUNCATION_LADDER: tuple[Rung, ...] = (
    Rung("twice the token budget", token_factor=2.0),
    Rung("3 overlapping bands", bands=3),
)

# Overlap between neighbouring bands, as a share of the page's height (rounded to 28 px).
BAND_OVERLAP = 0.08


def problem(page: Page) -> Problem | None:
    """What is wrong with a page's answer that a retry could fix, or None."""
    if page.status == "repetition":
        return "repetition"
    if page.status == "truncated":
        return "truncated"
    return None


def _score(page: Page) -> tuple[int, int]:
    """Better answers first: no problem over a problem, then more text."""
    return (0 if problem(page) else 1, sum(len(block_text(b)) for b in page.blocks))


def band_rows(height: int, bands: int, overlap: float = BAND_OVERLAP) -> list[tuple[int, int]]:
    """Top and bottom pixel rows of `bands` overlapping strips covering `height` (multiples of 28).

    Fewer strips come back when the image is too short to split; each is at least 2 * 28 tall.
    """
    units = height // FACTOR
    pad = max(1, round(units * overlap))
    bands = max(1, min(bands, units // 2))
    if bands == 1:
        return [(0, height)]
    size = -(-(units + pad * (bands - 1)) // bands)  # strip height in 28-px units
    rows: list[tuple[int, int]] = []
    for k in range(bands):
        top = min(k * (size - pad), units - size)
        rows.append((top * FACTOR, (top + size) * FACTOR))
    return rows


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def stitch(strips: Sequence[tuple[float, float, Sequence[Block]]]) -> list[Block]:
    """Blocks of strips (top, bottom, blocks in page space), top to bottom, seams de-duplicated.

    A block of a strip that starts inside the overlap with the strip above is dropped when a block
    of that strip in the same overlap says the same (or contains it); when it says more (the line
    was cut at the strip's edge above), it replaces that one.
    """
    out: list[Block] = []
    prev_bottom: float | None = None
    prev: list[int] = []  # indices in `out` of the previous strip's blocks
    for top, bottom, blocks in strips:
        # The previous strip's blocks reaching into this strip: the only ones a block here may repeat.
        seam = [i for i in prev if (b := out[i].box) is not None and b.y1 > top]
        current: list[int] = []
        for block in blocks:
            text = _norm(block_text(block))
            box = block.box
            in_overlap = prev_bottom is not None and box is not None and box.y0 < prev_bottom
            if in_overlap and text:
                twin = next((i for i in seam if (t := _norm(block_text(out[i]))) and (text in t or t in text)), None)
                if twin is not None:
                    if len(text) > len(_norm(block_text(out[twin]))):
                        out[twin] = block
                    continue
            out.append(block)
            current.append(len(out) - 1)
        prev_bottom = bottom
        prev = current
    return out


@dataclass(frozen=True, slots=True)
class Budget:
    """What a page may still spend: retries and (when set) seconds until `deadline` (time.perf_counter)."""

    retries: int
    deadline: float | None

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def spent(self) -> bool:
        return self.retries <= 0 or _out_of_time(self)


def _out_of_time(budget: Budget) -> bool:
    left = budget.left()
    return left is not None and left <= 0


def _settings(rung: Rung, max_new_tokens: int, budget: Budget) -> GenerationSettings:
    tokens = max(1, round(max_new_tokens * rung.token_factor))
    return dataclasses.replace(rung.settings, max_new_tokens=tokens, time_limit=budget.left())


def _bands(
    engine: Engine, image: Image.Image, page_size: tuple[float, float], rung: Rung, settings: GenerationSettings,
    build: Build, number: int,
) -> Page:  # fmt: skip
    return read_bands(engine, image, page_size, band_rows(image.height, rung.bands), settings, build, number)


def read_bands(
    engine: Engine, image: Image.Image, page_size: tuple[float, float], rows: Sequence[tuple[int, int]],
    settings: GenerationSettings, build: Build, number: int,
) -> Page:  # fmt: skip
    """The page read as full-width strips (`rows`: top and bottom pixel rows) in one call, each answer's boxes
    moved to where its strip lies on the page, the strips stitched with duplicates at the seams removed."""
    width, height = image.size
    crops = [image.crop((0, top, width, bottom)) for top, bottom in rows]
    answers = engine.generate(crops, settings)
    page_w, page_h = page_size
    scale = page_h / height
    strips: list[tuple[float, float, Sequence[Block]]] = []
    warnings: list[str] = []
    problems: list[Problem] = []
    for (top, bottom), crop, answer in zip(rows, crops, answers, strict=True):
        part = build(answer, crop.size, (page_w, (bottom - top) * scale))
        strips.append((top * scale, bottom * scale, map_boxes(part.blocks, partial(shifted, dy=top * scale))))
        warnings.extend(f"band {top}-{bottom} px: {w}" for w in part.warnings)
        if (p := problem(part)) is not None:
            problems.append(p)
    gens = [a.generation for a in answers]
    generation = Generation(
        model=gens[0].model,
        prompt=gens[0].prompt,
        tokens_in=sum(g.tokens_in for g in gens),
        tokens_out=sum(g.tokens_out for g in gens),
        seconds=sum(g.seconds for g in gens),
        finish_reason=next((g.finish_reason for g in gens if g.finish_reason != "stop"), "stop"),
    )
    first = build(answers[0], crops[0].size, (page_w, (rows[0][1] - rows[0][0]) * scale))
    status = answer_status(looped="repetition" in problems, cut=bool(problems))
    return dataclasses.replace(
        first,
        number=number,
        width=page_w,
        height=page_h,
        image_size=image.size,
        blocks=tuple(stitch(strips)),
        status=status,
        warnings=tuple(warnings),
        generation=generation,
    )


def recover_page(
    engine: Engine,
    image: Image.Image,
    page_size: tuple[float, float],
    first: Page,
    build: Build,
    *,
    max_new_tokens: int,
    budget: Budget,
) -> Page:
    """The page after retries: `first` as is when nothing is wrong with it or no retry is allowed.

    Walks the ladder for the first attempt's problem (repetition or truncation) until an attempt
    comes back clean, the retries or the time budget run out, or the ladder ends. A clean retry
    gives status "retried"; otherwise the best attempt is kept with its own status ("repetition",
    its repeated run already cut to one copy, or "truncated"). `attempts` counts every model call
    made for the page (bands count as one), and a warning says what was tried.
    """
    kind = problem(first)
    if kind is None or budget.spent():
        return dataclasses.replace(first, attempts=1)
    ladder = REPETITION_LADDER if kind == "repetition" else TRUNCATION_LADDER
    attempts = 1
    tried: list[str] = []
    best = first
    retries = budget.retries
    for rung in ladder:
        if retries <= 0 or _out_of_time(budget):
            break
        if rung.bands > 1 and len(band_rows(image.height, rung.bands)) < 2:
            continue  # too short to split: bands would read the same page again
        retries -= 1
        attempts += 1
        tried.append(rung.name)
        settings = _settings(rung, max_new_tokens, budget)
        try:
            if rung.bands > 1:
                page = _bands(engine, image, page_size, rung, settings, build, first.number)
            else:
                [answer] = engine.generate([image], settings)
                page = build(answer, image.size, page_size)
        except EngineError as exc:
            tried[-1] += f" (failed: {exc})"
            continue
        if _score(page) > _score(best):
            best = page
        if problem(page) is None:
            note = f"the first answer showed {kind}; retried with {', '.join(tried)}: the last attempt was clean"
            return retried(page, attempts, note)
    why = "retries" if retries <= 0 else "time budget" if _out_of_time(budget) else ""
    note = f"the answer showed {kind}; retried with {', '.join(tried) or 'nothing'} without a clean answer"
    if why:
        note += f" (out of {why})"
    return dataclasses.replace(best, attempts=attempts, warnings=(*best.warnings, note))
