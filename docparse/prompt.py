"""The request sent to Qwen2.5-VL: prompt text, chat layout, pixel bounds and smart_resize."""

from __future__ import annotations

import math

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"

# The cookbook's request, verbatim (trailing space included): the recorded real outputs in
# shared/fixtures/qwenvl 01 and 02 were produced by it with the default system prompt.
DEFAULT_PROMPT = "QwenVL HTML "
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

PATCH_SIZE = 14
MERGE_SIZE = 2
FACTOR = PATCH_SIZE * MERGE_SIZE  # 28: one merged vision token covers 28x28 pixels
MAX_ASPECT_RATIO = 200

# Pixel bounds for a page (see README "Choosing the pixel bounds" and benchmarks/pixel_bounds.py).
# Upper: 2048 tokens of 28x28 px = 1,605,632 px: a US Letter page becomes 1092x1428 (128 dpi),
# where 8 pt text is 14 px tall (measured on the fixtures: benchmarks/pixel_bounds.md); the
# cookbook's document page ran at 1008x1540 (1,552,320 px).
# Lower: 256 tokens (the model card's lower suggestion), so a stamp-sized page is enlarged
# by rendering, not by resampling.
DEFAULT_MIN_PIXELS = 256 * FACTOR * FACTOR
DEFAULT_MAX_PIXELS = 2048 * FACTOR * FACTOR
# Pages are first measured at this nominal resolution, then smart_resize fits them to the bounds:
# any page larger than about 2.8 x 2.8 in ends up at the upper bound.
NOMINAL_DPI = 200

# A dense page (two columns of small print, or a 40-row table) takes 3,000-5,000 tokens of
# QwenVL HTML; 8192 leaves headroom. The cookbook's 1024 cuts real pages (fixture 02).
DEFAULT_MAX_NEW_TOKENS = 8192


def smart_resize(height: int, width: int, min_pixels: int, max_pixels: int, factor: int = FACTOR) -> tuple[int, int]:
    """(height, width) the Qwen2.5-VL image processor would resize an image of this size to.

    Same arithmetic as `smart_resize` in transformers' Qwen2-VL image processor, so an image
    already at the returned size passes through that processor without being resampled.
    Raises ValueError for an aspect ratio over 200 or empty sizes.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image size {width}x{height}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} is over {MAX_ASPECT_RATIO}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def image_token_count(width: int, height: int) -> int:
    """Number of <|image_pad|> tokens an image of this (already resized) size expands to."""
    return (height // PATCH_SIZE) * (width // PATCH_SIZE) // (MERGE_SIZE * MERGE_SIZE)


def chat_text(prompt: str, system_prompt: str, image_pad: str) -> str:
    """ChatML for one page, as Qwen2.5-VL's chat template lays it out for [text, image] user content.

    `image_pad` is the already-expanded run of <|image_pad|> tokens.
    """
    return (
        f"<|im_start|>system\n{system_prompt}<|im_end|>\n"
        f"<|im_start|>user\n{prompt}<|vision_start|>{image_pad}<|vision_end|><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
