"""The one table of file formats: each output format's name and suffixes, and the input suffixes docparse reads."""

from __future__ import annotations

from typing import Literal

# An output format, as --to names it; docparse.writers has one writer per name.
Format = Literal["md", "html", "json"]

# Each output format's file suffixes, the one docparse writes first (-o out/ names its files with it);
# any of them in -o FILE picks the format.
OUTPUT_SUFFIXES: dict[Format, tuple[str, ...]] = {
    "md": (".md", ".markdown"),
    "html": (".html", ".htm"),
    "json": (".json",),
}
FORMAT_SUFFIX: dict[str, str] = {name: suffixes[0] for name, suffixes in OUTPUT_SUFFIXES.items()}
SUFFIX_FORMATS: dict[str, Format] = {s: name for name, suffixes in OUTPUT_SUFFIXES.items() for s in suffixes}

# Inputs: PDFs, and the image files Pillow opens (their contents decide, docparse.inputs.detect; in a
# folder these suffixes pick the files to convert).
PDF_SUFFIX = ".pdf"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif"})
INPUT_SUFFIXES = IMAGE_SUFFIXES | {PDF_SUFFIX}
