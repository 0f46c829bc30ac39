"""Before the model: blank pages recognised, sideways or upside-down content turned upright, boxes turned back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from docparse.document import Box
from docparse.document.boxes import map_boxes

# Pages are examined at most this many pixels on their long side (cheap, and enough for text lines).
_EXAMINE = 600
# A pixel is ink when it differs from the page's background (its median) by more than this.
_INK_CONTRAST = 40
# Blank: less than this share of the (de-speckled) page is ink.
BLANK_INK = 0.0005
# Orientation needs at least this share of ink, and this many text lines, to say anything.
_MIN_INK = 0.001
_MIN_LINES = 2


def _grey(image: Image.Image, size: int = _EXAMINE) -> np.ndarray:
    grey = image.convert("L")
    grey.thumbnail((size, size))
    # A 3x3 median removes isolated specks (scanner noise, dust) and keeps strokes.
    return np.asarray(grey.filter(ImageFilter.MedianFilter(3)), dtype=np.int16)


def ink_mask(image: Image.Image) -> np.ndarray:
    """Boolean array (downscaled): True where the page has ink, after specks are removed."""
    grey = _grey(image)
    return np.abs(grey - int(np.median(grey))) > _INK_CONTRAST


def is_blank(image: Image.Image, has_text: bool) -> bool:
    """True for a page with no text layer whose raster is near-uniform (scanner noise counts as blank)."""
    if has_text:
        return False
    return float(ink_mask(image).mean()) < BLANK_INK


def _runs(profile: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges where `profile` is non-zero."""
    on = np.concatenate(([False], profile > 0, [False]))
    edges = np.flatnonzero(on[1:] != on[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2], strict=True)]


def _gap_share(profile: np.ndarray) -> float:
    """Share of empty rows (or columns) between the first and last inked one."""
    idx = np.flatnonzero(profile)
    if idx.size < 2:
        return 0.0
    inner = profile[idx[0] : idx[-1] + 1]
    return float((inner == 0).mean())


@dataclass(frozen=True, slots=True)
class RasterOrientation:
    """What the raster says: `sideways` text lines (vertical), and when sure, the clockwise `turn` (90 or 270)."""

    sideways: bool
    turn: int | None


# The straight edge of left-aligned lines must be this much straighter than the ragged one.
_EDGE_RATIO = 0.25
_MIN_EDGE_LINES = 3


def raster_orientation(image: Image.Image) -> RasterOrientation:
    """Whether a page without a text layer is sideways, and which way to turn it when that is clear.

    Projection profiles of a downscaled, de-speckled, binarised page: lines of text leave empty
    rows between them when upright, empty columns when sideways. The direction comes from the
    lines' ends: left-aligned text has one straight edge, where reading starts; it is trusted only
    when that edge is far straighter than the other (multi-column, centred or right-to-left text
    gives no clear answer, and then `turn` is None). Upside-down pages: see `upside_down`.
    """
    ink = ink_mask(image)
    if ink.mean() < _MIN_INK:
        return RasterOrientation(False, None)
    row_gaps, col_gaps = _gap_share(ink.sum(axis=1)), _gap_share(ink.sum(axis=0))
    lines = [(a, b) for a, b in _runs(ink.sum(axis=0)) if b - a >= 2]
    if col_gaps <= max(0.1, row_gaps * 2) or len(lines) < _MIN_LINES:
        return RasterOrientation(False, None)
    if len(lines) < _MIN_EDGE_LINES:
        return RasterOrientation(True, None)
    tops, bottoms = [], []
    for a, b in lines:
        inked = np.flatnonzero(ink[:, a:b].any(axis=1))
        tops.append(inked[0])
        bottoms.append(inked[-1])
    spread_top, spread_bottom = float(np.std(tops)), float(np.std(bottoms))
    # Lines lined up at the bottom read upwards: turn clockwise by 90. Lined up at the top: by 270.
    if spread_bottom < _EDGE_RATIO * spread_top:
        return RasterOrientation(True, 90)
    if spread_top < _EDGE_RATIO * spread_bottom:
        return RasterOrientation(True, 270)
    return RasterOrientation(True, None)


# Upside down: x-heights need a finer raster than line finding, so pages are examined at this size.
_FLIP_EXAMINE = 1200
# A line's x-height band (core): rows with at least this share of its busiest row's ink.
_CORE = 0.5
# A line votes only with at least this much ink beyond its core (relative to the core's) on the heavy side,
# at least twice that of the light side, and a core under this share of the line's height (not CJK-like).
_FLIP_MIN_EXTRA = 0.04
_FLIP_MAX_CORE = 0.8
# ... and over this share (a drawing's band is no text line).
_FLIP_MIN_CORE = 0.3
# A line's core never dips under this share of its busiest row, and one of its edges rises by this share in one row.
_FLIP_VALLEY = 0.25
_FLIP_SHARP = 0.25
# A line of letters breaks into at least this many pieces (letters, words) along its length.
_FLIP_MIN_PIECES = 4
# Rows with under this share of a busy row's ink count as empty between lines.
_FLIP_FLOOR = 0.03
# The sharper edge may be the wrong one by this much (of the busiest row) before a line abstains.
_FLIP_EDGE_SLACK = 0.1
# Upside down only with this many voting lines, this share of their ink voting so, and voting lines
# holding this share of all the page's line ink (a page of mostly non-Latin lines has no say).
_FLIP_MIN_LINES = 3
_FLIP_SHARE = 0.8
_FLIP_COVER = 0.25


def _without_rules(ink: np.ndarray) -> np.ndarray:
    """`ink` less its long vertical strokes (table rules, frames), which would join lines into one band."""
    n = ink.shape[0]
    length = max(8, n // 25)
    cols = np.flatnonzero(ink.sum(axis=0) >= length)  # only these can hold such a stroke
    if n <= length or cols.size == 0:
        return ink
    part = ink[:, cols]
    zero = np.zeros((1, cols.size), np.int16)
    total = np.concatenate((zero, np.cumsum(part, axis=0, dtype=np.int16)))
    full = (total[length:] - total[:-length]) == length  # windows of `length` rows all inked, by first row
    # A pixel is on a stroke when one of the `length` windows that hold it is full.
    pad = np.zeros((length - 1, cols.size), bool)
    held = np.concatenate((zero, np.cumsum(np.concatenate((pad, full, pad)), axis=0, dtype=np.int16)))
    out = ink.copy()
    out[:, cols] = part & ~((held[length:] - held[:-length]) > 0)
    return out


def _despeckled(ink: np.ndarray) -> np.ndarray:
    """`ink` less its isolated pixels (scanner specks), which would fill the gaps between lines."""
    padded = np.pad(ink, 1).astype(np.uint8)
    h, w = ink.shape
    neighbours = sum(
        padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx
    )
    return ink & (neighbours > 0)


# Slightly skewed scans: ink rows are counted along the slope, within this many degrees, that makes them sharpest
# (searched in whole degrees, then in quarters around the best).
_SKEW_DEGREES = 3


def _level_rows(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ink per row along the slope where rows are most concentrated (level text stays level).

    Also each ink pixel's row along that slope and its column, sorted by row.
    """
    ys, xs = np.nonzero(ink)
    if ys.size == 0:
        return np.zeros(ink.shape[0]), ys, xs
    centred = xs - ink.shape[1] / 2

    def rows_at(degrees: float) -> np.ndarray:
        shifted = np.rint(ys - centred * np.tan(np.radians(degrees))).astype(np.int64)
        return shifted - shifted.min()

    def best_of(angles: Iterable[float]) -> tuple[float, np.ndarray]:
        best: tuple[float, np.ndarray, float] | None = None
        for degrees in sorted(angles, key=abs):  # a tie keeps the smaller slope
            rows = rows_at(degrees)
            counts = np.bincount(rows)
            score = float(np.dot(counts, counts))
            if best is None or score > best[2] * 1.001:
                best = (degrees, rows, score)
        assert best is not None
        return best[0], best[1]

    coarse, _ = best_of(range(-_SKEW_DEGREES, _SKEW_DEGREES + 1))
    _, rows = best_of(coarse + q for q in (-0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75))
    order = np.argsort(rows, kind="stable")
    return np.bincount(rows).astype(np.float64), rows[order], xs[order]


def _pieces(columns: np.ndarray) -> int:
    """How many separate runs the (unsorted, repeated) column numbers make: letters and words in a line."""
    cols = np.unique(columns)
    return int(cols.size > 0) + int(np.count_nonzero(np.diff(cols) > 1))


def upside_down(image: Image.Image) -> bool:
    """True when a page without a text layer, its lines running horizontally, is clearly upside down.

    For Latin script: within a text line, ascenders (b d f h k l t, capitals, digits) are far more
    common than descenders (g j p q y), so more ink lies above the x-height band than below it, and
    the baseline (many glyph bottoms) is a sharper edge than the x-height line. Each line of the
    binarised, de-speckled page (long vertical rules removed, rows counted along the page's skew)
    whose row profile has that shape (a flat x-height core, a sharp edge) votes upright or upside
    down when both cues agree; the page is upside down only when enough lines vote, nearly all of
    their ink says so, and they are a fair share of the page's lines. CJK, Arabic, music, tables of
    figures and short pages abstain.
    """
    grey = image.convert("L")
    grey.thumbnail((_FLIP_EXAMINE, _FLIP_EXAMINE))
    pixels = np.asarray(grey, dtype=np.int16)
    background = int(np.searchsorted(np.cumsum(np.bincount(pixels.ravel(), minlength=256)), pixels.size / 2))
    ink = _without_rules(_despeckled(np.abs(pixels - background) > _INK_CONTRAST))
    rows, pixel_rows, pixel_cols = _level_rows(ink)
    # Rows with a trace of ink (specks, noise) part lines as empty rows do.
    floor = _FLIP_FLOOR * float(np.percentile(rows[rows > 0], 90)) if rows.any() else 0.0
    lines = [(a, b) for a, b in _runs(rows > floor) if b - a >= 6]
    all_ink = float(sum(rows[a:b].sum() for a, b in lines))
    upright = flipped = 0.0
    voters = 0
    for a, b in lines:
        profile = rows[a:b]
        peak = profile.max()
        core = np.flatnonzero(profile >= _CORE * peak)
        top, bottom = int(core[0]), int(core[-1])
        height = bottom - top + 1
        if height < 3 or not _FLIP_MIN_CORE * (b - a) <= height <= _FLIP_MAX_CORE * (b - a):
            continue
        if profile[top : bottom + 1].min() < _FLIP_VALLEY * peak:
            continue  # two lines run together, or no text line at all
        core_ink = profile[top : bottom + 1].sum()
        above, below = profile[:top].sum() / core_ink, profile[bottom + 1 :].sum() / core_ink
        top_edge = (profile[top] - (profile[top - 1] if top else 0.0)) / peak
        bottom_edge = (profile[bottom] - (profile[bottom + 1] if bottom + 1 < len(profile) else 0.0)) / peak
        if max(top_edge, bottom_edge) < _FLIP_SHARP:
            continue  # no sharp baseline: not set in Latin letters (CJK lines fade in and out)
        first, last = np.searchsorted(pixel_rows, (a, b))
        if _pieces(pixel_cols[first:last]) < _FLIP_MIN_PIECES:
            continue  # a shape or two (a box, a rule, a drawing), not a line of letters
        if above >= max(2 * below, _FLIP_MIN_EXTRA) and bottom_edge >= top_edge - _FLIP_EDGE_SLACK:
            upright += profile.sum()
        elif below >= max(2 * above, _FLIP_MIN_EXTRA) and top_edge >= bottom_edge - _FLIP_EDGE_SLACK:
            flipped += profile.sum()
        else:
            continue
        voters += 1
    voting = upright + flipped
    if voters < _FLIP_MIN_LINES or voting < _FLIP_COVER * all_ink:
        return False
    return bool(flipped >= _FLIP_SHARE * voting)


def text_turn(directions: Iterable[tuple[float, float, int]]) -> int | None:
    """The clockwise turn that makes text upright, from (dx, dy, characters) of text lines on the displayed page.

    y grows downwards. The direction most characters run in wins: right 0, down 270, left 180, up 90.
    None when there is no text.
    """
    weight = {0: 0, 90: 0, 180: 0, 270: 0}
    for dx, dy, chars in directions:
        if abs(dx) >= abs(dy):
            weight[0 if dx > 0 else 180] += chars
        else:
            weight[270 if dy > 0 else 90] += chars
    best = max(weight, key=lambda k: weight[k])
    return best if weight[best] > 0 else None


def turn_image(image: Image.Image, turn: int) -> Image.Image:
    """`image` turned clockwise by `turn` degrees (a multiple of 90): pixels moved, never resampled."""
    match turn % 360:
        case 90:
            return image.transpose(Image.Transpose.ROTATE_270)
        case 180:
            return image.transpose(Image.Transpose.ROTATE_180)
        case 270:
            return image.transpose(Image.Transpose.ROTATE_90)
    return image


def unturn_box(box: Box, turn: int, width: float, height: float) -> Box:
    """A box on the page turned clockwise by `turn` mapped back onto the page as displayed (`width` x `height`)."""

    def point(x: float, y: float) -> tuple[float, float]:
        match turn % 360:
            case 90:
                return y, height - x
            case 180:
                return width - x, height - y
            case 270:
                return width - y, x
        return x, y

    (ax, ay), (bx, by) = point(box.x0, box.y0), point(box.x1, box.y1)
    return Box(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def unturn(value: Any, turn: int, width: float, height: float) -> Any:
    """A block (or part of one) with every box mapped back from the turned page to the displayed one."""
    if turn % 360 == 0:
        return value
    return map_boxes(value, lambda box: unturn_box(box, turn, width, height))
