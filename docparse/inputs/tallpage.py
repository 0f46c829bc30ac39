"""Pages too long for the model (a side over 200 times the other): rendered whole, then read in bands it takes."""

from __future__ import annotations

import math

from docparse.prompt import FACTOR, MAX_ASPECT_RATIO, smart_resize

# A band is at most this many times as tall as it is wide (the model takes up to MAX_ASPECT_RATIO), and
# neighbouring bands overlap by this share of a band, so that a line cut at one band's edge is whole in the next.
BAND_RATIO = 100
BAND_OVERLAP = 0.08


def is_tall(size: tuple[int, int]) -> bool:
    """True for an image (width, height) the model cannot take whole: taller than MAX_ASPECT_RATIO widths."""
    width, height = size
    return height > MAX_ASPECT_RATIO * width


def tall_size(width: float, height: float, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) in pixels to render a page of `width` x `height` (nominal pixels) that is too tall for
    the model: as wide as a band of BAND_RATIO widths that smart_resize leaves alone, and as tall as the page's
    proportions then make it (a multiple of 28)."""
    band_h, band_w = smart_resize(max(1, round(width * BAND_RATIO)), max(1, round(width)), min_pixels, max_pixels)
    return band_w, max(band_h, round(band_w * height / width / FACTOR) * FACTOR)


def tall_rows(size: tuple[int, int], min_pixels: int, max_pixels: int) -> list[tuple[int, int]]:
    """Top and bottom rows of the overlapping bands that cover an image of `size` (from tall_size): each the
    full width, a multiple of 28 tall, within the pixel bounds and at most BAND_RATIO widths tall, so that
    the model sees each at exactly its size."""
    width, height = size
    units = min(BAND_RATIO * width, max_pixels // width) // FACTOR
    units = max(units, math.ceil(min_pixels / width / FACTOR))
    total = height // FACTOR
    if total <= units:
        return [(0, height)]
    pad = max(1, round(units * BAND_OVERLAP))
    bands = max(2, math.ceil((total - pad) / (units - pad)))
    step = math.ceil((total - units) / (bands - 1))
    tops = [min(k * step, total - units) for k in range(bands)]
    return [(top * FACTOR, (top + units) * FACTOR) for top in tops]
