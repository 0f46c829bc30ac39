"""Boxes moved between spaces: one walk that maps every box of a block (or any part of one), and the maps."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from docparse.document.blocks import Box

T = TypeVar("T")


def map_boxes(value: T, move: Callable[[Box], Box]) -> T:
    """`value` (a block, a tuple of blocks, a part of one, or a box) with `move` applied to every box in it,
    however deep (a table's cells, a merged block's parts); what holds no box comes back as it is."""
    return _walk(value, move)


def _walk(value: Any, move: Callable[[Box], Box]) -> Any:
    if isinstance(value, Box):
        return move(value)
    if isinstance(value, tuple):
        return tuple(_walk(v, move) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if isinstance(v, Box | tuple) or (dataclasses.is_dataclass(v) and not isinstance(v, type)):
                changes[f.name] = _walk(v, move)
        return dataclasses.replace(value, **changes) if changes else value
    return value


def shifted(box: Box, dx: float | None = None, dy: float | None = None) -> Box:
    """The box moved right by `dx` and down by `dy` (a coordinate not asked to move keeps its value as it is)."""
    x0, x1 = (box.x0, box.x1) if dx is None else (box.x0 + dx, box.x1 + dx)
    y0, y1 = (box.y0, box.y1) if dy is None else (box.y0 + dy, box.y1 + dy)
    return Box(x0, y0, x1, y1)


def scaled(box: Box, sx: float, sy: float, ndigits: int | None = None) -> Box:
    """The box with its x scaled by `sx` and its y by `sy` (each rounded to `ndigits` when given)."""
    x0, y0, x1, y1 = box.x0 * sx, box.y0 * sy, box.x1 * sx, box.y1 * sy
    if ndigits is not None:
        return Box(round(x0, ndigits), round(y0, ndigits), round(x1, ndigits), round(y1, ndigits))
    return Box(x0, y0, x1, y1)
