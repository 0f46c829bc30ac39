"""Frozen option records, built once by the CLI (or an API caller) and handed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from docparse.prompt import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    DEFAULT_MODEL,
    DEFAULT_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
)

Device = Literal["auto", "cuda", "mps", "cpu"]
DType = Literal["auto", "bfloat16", "float16", "float32"]
Attn = Literal["auto", "sdpa", "flash_attention_2", "eager"]
Format = Literal["md", "html", "json"]


@dataclass(frozen=True, slots=True)
class RasterOptions:
    """How pages become images: pixel bounds, page selection, PDF password.

    `pages` holds 1-based inclusive ranges, an end of None meaning "to the last page"; None selects all.
    """

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    pages: tuple[tuple[int, int | None], ...] | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Which model, where it runs, and how it generates."""

    model: str = DEFAULT_MODEL
    revision: str | None = None
    device: Device = "auto"
    dtype: DType = "auto"
    attn: Attn = "auto"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    prompt: str = DEFAULT_PROMPT
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    batch_size: int = 1


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """Everything `pipeline.convert` needs for one input."""

    raster: RasterOptions = RasterOptions()
    model: ModelOptions = ModelOptions()
    keep_raw: Path | None = None
    # Retries of a page whose answer looped or was cut off (docparse.recover), and the seconds of
    # model time one page may take in all (None: no limit).
    max_retries: int = 3
    page_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """How a Document is written out."""

    format: Format = "md"
