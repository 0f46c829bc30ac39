"""What one read carries: boxes read from attributes, clamped and mapped to the page, and the page's warnings."""

from __future__ import annotations

import math
from typing import Any

from docparse.document import Box
from docparse.document.boxes import scaled
from docparse.reader.elements import El, tag_name

# Per-page warnings of one kind are capped at this count, then summarised.
_MAX_WARNINGS_PER_KIND = 10

_NUMBER_JUNK = str.maketrans({c: " " for c in ",;[](){}\"'"})


def _numbers(raw: str) -> list[float] | None:
    """Finite numbers in a box attribute ("1 2 3 4", "1,2,3,4", "[1, 2, 3, 4]"); None if any is not one."""
    out: list[float] = []
    for word in raw.translate(_NUMBER_JUNK).split():
        try:
            v = float(word)
        except ValueError:
            return None
        if not math.isfinite(v):
            return None
        out.append(v)
    return out


def _positive_pair(pair: Any) -> bool:
    try:
        a, b = pair
        return all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in (a, b))
    except (TypeError, ValueError):
        return False


class ReadContext:
    """One read: holds the coordinate mapping and the warnings of one page."""

    def __init__(self, image_size: tuple[int, int] | None, page_size: tuple[float, float] | None) -> None:
        self.warnings: list[str] = []
        self._counts: dict[str, int] = {}
        self._clamped = 0
        self._image: tuple[float, float] | None = None
        self._scale: tuple[float, float] | None = None
        if image_size is not None:
            if _positive_pair(image_size):
                self._image = (float(image_size[0]), float(image_size[1]))
            else:
                self.warnings.append(f"ignored image_size {image_size!r}: not two positive numbers")
        if page_size is not None:
            if not _positive_pair(page_size):
                self.warnings.append(f"ignored page_size {page_size!r}: not two positive numbers")
            elif self._image is None:
                self.warnings.append("page_size given without image_size: boxes are left in model pixels")
            else:
                self._scale = (float(page_size[0]) / self._image[0], float(page_size[1]) / self._image[1])

    # warnings

    def warn(self, kind: str, message: str) -> None:
        n = self._counts.get(kind, 0) + 1
        self._counts[kind] = n
        if n <= _MAX_WARNINGS_PER_KIND:
            self.warnings.append(message)

    def summarise(self) -> None:
        for kind, n in self._counts.items():
            if n > _MAX_WARNINGS_PER_KIND:
                self.warnings.append(f"... and {n - _MAX_WARNINGS_PER_KIND} more warnings like that ({kind})")
        if self._clamped and self._image is not None:
            w, h = self._image
            self.warnings.append(
                f"{self._clamped} box(es) reached outside the {w:g}x{h:g} px image and were clamped to it"
            )

    # boxes

    def box(self, el: El) -> Box | None:
        """el's data-bbox (else its data-polygon bounds): ordered, clamped, mapped; None if absent/bad."""
        raw = el.get("data-bbox")
        if raw is None:
            poly = el.get("data-polygon")
            nums = _numbers(poly) if poly is not None else None
            if not nums or len(nums) < 4 or len(nums) % 2:
                return None
            xs, ys = nums[0::2], nums[1::2]
            return self._finish_box(min(xs), min(ys), max(xs), max(ys))
        nums = _numbers(raw)
        if nums is None or len(nums) != 4:
            self.warn("bad data-bbox", f"ignored an unreadable data-bbox {raw[:60]!r} on <{tag_name(el)}>")
            return None
        x0, y0, x1, y1 = nums
        return self._finish_box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def _finish_box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        if self._image is not None:
            w, h = self._image
            c = (min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h))
            if c != (x0, y0, x1, y1):
                self._clamped += 1
            x0, y0, x1, y1 = c
        if self._scale is not None:
            return scaled(Box(x0, y0, x1, y1), *self._scale, ndigits=2)  # model pixels -> page units
        return Box(x0, y0, x1, y1)
