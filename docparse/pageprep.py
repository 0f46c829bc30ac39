"""Before the model: blank pages recognised, sideways content detected and turned upright, boxes turned back."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from docparse.document import Box

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
    gives no clear answer, and then `turn` is None). Upside-down (180) pages are not detected.
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
    if isinstance(value, Box):
        return unturn_box(value, turn, width, height)
    if isinstance(value, tuple):
        return tuple(unturn(v, turn, width, height) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if isinstance(v, Box | tuple) or (dataclasses.is_dataclass(v) and not isinstance(v, type)):
                changes[f.name] = unturn(v, turn, width, height)
        return dataclasses.replace(value, **changes) if changes else value
    return value
