"""Frozen option records, built once by the CLI (or an API caller) and handed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from docparse.errors import UsageError
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
    # Pages per generate call; None ("auto"): the engine picks from free memory when it loads.
    batch_size: int | None = None


@dataclass(frozen=True, slots=True)
class AssembleOptions:
    """How pages become one document (docparse.assemble).

    `merge`: join paragraphs and tables cut by a page break. Furniture, footnotes, heading levels and
    the title are always worked out: they only label blocks, and the writers decide what to show.
    """

    merge: bool = True


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """Everything `pipeline.convert` needs for one input."""

    raster: RasterOptions = RasterOptions()
    model: ModelOptions = ModelOptions()
    assemble: AssembleOptions = AssembleOptions()
    keep_raw: Path | None = None
    # Retries of a page whose answer looped or was cut off (docparse.recover), and the seconds of
    # model time one page may take in all (None: no limit).
    max_retries: int = 3
    page_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """How a Document is written out.

    `keep_furniture`: show running headers, footers and page numbers in Markdown and HTML (JSON
    always has them). `page_markers`: a `<!-- page N -->` comment before each page in Markdown.
    `page_breaks`: a visible rule between pages in HTML (and a page break when printed).
    """

    format: Format = "md"
    keep_furniture: bool = False
    page_markers: bool = False
    page_breaks: bool = False


def parse_batch_size(text: str) -> int | None:
    """`--batch-size`: "auto" is None (the engine decides), else a whole number of at least 1."""
    if text.strip().lower() == "auto":
        return None
    try:
        size = int(text)
    except ValueError:
        raise UsageError(f"--batch-size {text!r}: give a whole number of pages or auto") from None
    if size < 1:
        raise UsageError(f"--batch-size {size}: must be at least 1 (or auto)")
    return size


def convert_options(
    *,
    pages: str | None = None,
    password: str | None = None,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    model: str = DEFAULT_MODEL,
    revision: str | None = None,
    device: Device = "auto",
    dtype: DType = "auto",
    attn: Attn = "auto",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    prompt: str = DEFAULT_PROMPT,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    batch_size: int | None = None,
    merge: bool = True,
    keep_raw: Path | None = None,
    max_retries: int = 3,
    page_timeout: float | None = None,
) -> ConvertOptions:
    """The records for one conversion, from the CLI's options by name (the CLI and docparse.convert both
    build them here). `pages` is a range list such as "1-3,7,10-". Raises UsageError for bad values."""
    if min_pixels > max_pixels:
        raise UsageError(f"--min-pixels {min_pixels} is above --max-pixels {max_pixels}")
    if (batch_size is not None and batch_size < 1) or max_new_tokens < 1:
        raise UsageError("--batch-size and --max-new-tokens must be at least 1")
    if max_retries < 0 or (page_timeout is not None and page_timeout <= 0):
        raise UsageError("--max-retries must be 0 or more and --page-timeout above 0")
    ranges = None
    if pages is not None:
        from docparse.rasterize import parse_pages  # imports PyMuPDF

        ranges = parse_pages(pages)
    return ConvertOptions(
        raster=RasterOptions(min_pixels=min_pixels, max_pixels=max_pixels, pages=ranges, password=password),
        model=ModelOptions(
            model=model,
            revision=revision,
            device=device,
            dtype=dtype,
            attn=attn,
            max_new_tokens=max_new_tokens,
            prompt=prompt,
            system_prompt=system_prompt,
            batch_size=batch_size,
        ),
        assemble=AssembleOptions(merge=merge),
        keep_raw=keep_raw,
        max_retries=max_retries,
        page_timeout=page_timeout,
    )
