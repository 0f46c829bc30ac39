"""How tall the text of real pages is, in model pixels, under candidate --max-pixels bounds.

Run: python benchmarks/pixel_bounds.py [PDF ...]   (default: ../shared/fixtures/pdfs/*.pdf)
For each PDF page with a text layer it takes the font sizes of its spans, the page's scale at
each bound, and reports the 10th-percentile and median text height in pixels the model sees.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pymupdf

from docparse.config import RasterOptions
from docparse.inputs.rasterize import target_size
from docparse.prompt import DEFAULT_MIN_PIXELS, FACTOR

BOUNDS = {
    "1024 tok (1280*28*28 card max ≈ 1.0 MP)": 1280 * FACTOR * FACTOR,
    "2048 tok (docparse default, 1.6 MP)": 2048 * FACTOR * FACTOR,
    "4096 tok (3.2 MP)": 4096 * FACTOR * FACTOR,
}


def font_sizes(page: pymupdf.Page) -> list[float]:
    sizes: list[float] = []
    for block in page.get_text("dict")["blocks"]:
        for line in block.get("lines", []):
            for span in line["spans"]:
                if span["text"].strip():
                    sizes.extend([span["size"]] * len(span["text"].strip()))
    return sizes


def main(paths: list[Path]) -> None:
    print("| file | page (pt) | small text pt (p10) | body pt (median) | " + " | ".join(BOUNDS) + " |")
    print("|---|---|---|---|" + "---|" * len(BOUNDS))
    for path in paths:
        try:
            doc = pymupdf.open(path)
        except Exception:
            continue
        if doc.needs_pass:
            doc.authenticate("test")
        page = next((p for p in doc if font_sizes(p)), None)
        if page is None:
            continue
        sizes = sorted(font_sizes(page))
        p10 = sizes[len(sizes) // 10]
        median = statistics.median(sizes)
        cells = []
        for max_pixels in BOUNDS.values():
            w, h = target_size(page.rect.width, page.rect.height, "pt", RasterOptions(DEFAULT_MIN_PIXELS, max_pixels))
            scale = w / page.rect.width
            cells.append(f"{w}x{h}: {p10 * scale:.1f} / {median * scale:.1f} px")
        print(
            f"| {path.name} | {page.rect.width:.0f}x{page.rect.height:.0f} | {p10:.1f} | {median:.1f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]]
    if not args:
        args = sorted((Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pdfs").glob("*.pdf"))
    main(args)
