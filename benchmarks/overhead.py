"""Everything but the model, per page, on the shared fixture PDFs, against the model's own time per page.

Run from the repo root (one 3B process at a time):
  python -m benchmarks.overhead --arch 3b --model-pixels 100352 --new-tokens 8   # CPU, about 10 min
  python -m benchmarks.overhead --arch tiny                                       # quick

Three parts, one run:
1. Non-model stages per page over ../shared/fixtures/pdfs (every readable page, up to --pages-per-pdf
   per file) at the default pixel bounds: rasterise (PyMuPDF, blank and orientation checks: the
   page iterator the pipeline uses), preprocess (tokenise + image processor: build_inputs), read
   (a real recorded answer from ../shared/fixtures/qwenvl, cycled, into a Page), assemble and
   write Markdown, HTML and JSON.
2. The model per page on the chosen architecture: one page through engine.generate with the
   output length forced, vision + prefill and decode per token timed apart, then the time of a
   page that writes --answer-tokens tokens (1,200 by default, a typical dense page) from those.
   On this CPU a full-size 3B page takes many minutes of vision and prefill alone, so the CPU run
   measures it at --model-pixels (smaller); the non-model share of a full-size page is smaller still.
3. Overlap: one fixture PDF through pipeline.convert on the tiny model, wall time against the
   time spent inside engine.generate (wall = model + the rest when nothing overlaps).
The objects that exist once the tiny model is loaded are frozen out of garbage collection (gc.freeze)
before the stages are timed, so a full collection over the model's objects does not land in a stage.
Writes the section overhead-<arch> of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymupdf

from benchmarks.common import ROOT, SMALL_PAGE_PIXELS, load_average, page_images, real_shape_engine, stamp, tiny_engine
from benchmarks.common import write_section as write_results
from benchmarks.engine import ForwardTimer, force_length

SHARED = ROOT.parent / "shared" / "fixtures"


def clock(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def non_model_stages(engine: Any, pages_per_pdf: int) -> tuple[dict[str, list[float]], int]:
    """Seconds per page of each non-model stage, over the fixture PDFs; and the number of PDFs."""
    from docparse.assemble import assemble
    from docparse.config import AssembleOptions, RasterOptions, WriteOptions
    from docparse.document import Document
    from docparse.errors import DocparseError
    from docparse.inputs.rasterize import open_input
    from docparse.run.build import build_page
    from docparse.writers import write

    answers = [p.read_text(encoding="utf-8") for p in sorted((SHARED / "qwenvl").glob("*.html"))]
    stages: dict[str, list[float]] = {
        k: [] for k in ("rasterise", "preprocess", "read", "text layer", "assemble", "write")
    }
    pdfs = 0
    for path in sorted((SHARED / "pdfs").glob("*.pdf")):
        try:
            doc = open_input(path, RasterOptions())
            pdf = pymupdf.open(path)
            pages = iter(doc.pages())
            pdfs += 1
            for _ in range(min(pages_per_pdf, len(doc.page_numbers))):
                seconds, image = clock(lambda pages=pages: next(pages))
                stages["rasterise"].append(seconds)
                if image.blank:
                    continue
                stages["preprocess"].append(clock(lambda image=image: engine.build_inputs([image.image]))[0])
                raw = answers[len(stages["read"]) % len(answers)]
                seconds, page = clock(
                    lambda raw=raw, image=image: build_page(
                        number=1, raw=raw, image_size=None, page_size=None, unit="px", generation=None
                    )
                )
                stages["read"].append(seconds)
                stages["text layer"].append(layer_check(pdf, image))
                seconds, assembled = clock(
                    lambda page=page, path=path: assemble(Document(source=str(path), pages=(page,)), AssembleOptions())
                )
                stages["assemble"].append(seconds)
                stages["write"].append(
                    sum(
                        clock(lambda f=f, doc=assembled: write(doc, WriteOptions(format=f)))[0]
                        for f in ("md", "html", "json")
                    )
                )
        except DocparseError:  # the broken and encrypted fixtures
            continue
    return stages, pdfs


def layer_check(pdf: Any, image: Any) -> float:
    """Seconds of the text-layer check of one page: the layer read from the page's text page (made once per
    page, shared with the orientation check inside "rasterise", so not timed here), then the check of a page
    whose blocks are the layer's own paragraphs (every word compared)."""
    from docparse.document import Document, Page
    from docparse.inputs.textlayer import read_layer, text_page
    from docparse.layer.agreement import check_document, fallback_page

    page = pdf.load_page(image.number - 1)
    shared = text_page(page)
    read_s, layer = clock(lambda: read_layer(page, shared))
    if not layer.usable:
        return read_s
    empty = Page(number=image.number, width=image.width, height=image.height, unit="pt", image_size=None,
                 blocks=(), status="failed")  # fmt: skip
    answered = fallback_page(empty, layer)  # the layer's paragraphs stand in for the model's blocks
    check_s, _ = clock(lambda: check_document(Document(source="", pages=(answered,)), {image.number: layer}))
    return read_s + check_s


def model_page(engine: Any, max_pixels: int, new_tokens: int, answer_tokens: int) -> dict[str, float]:
    """One page through the engine: vision, prefill, median decode step, and a page of `answer_tokens`."""
    settings = force_length(engine, new_tokens)
    [image] = page_images(1, max_pixels)
    timer = ForwardTimer(engine)
    call_s, [page] = clock(lambda: engine.generate_tokens([image], settings))
    step = statistics.median(timer.forward[1:])
    before = sum(timer.vision) + timer.forward[0]
    return {
        "tokens_in": page.tokens_in,
        "vision_prefill": before,
        "step": step,
        "call": call_s,
        "page": before + step * answer_tokens,
    }


def overlap(pdf: Path) -> dict[str, float]:
    """pipeline.convert on the tiny model, one page per generate call (so pages stream through the
    scheduler's render-ahead thread): wall time against time inside engine.generate."""
    from docparse.config import ConvertOptions, ModelOptions
    from docparse.pipeline import convert

    engine = tiny_engine("cpu", "float32", 32, batch_size=1)
    inner = engine.generate
    spent: list[float] = []

    def generate(*a: Any, **k: Any) -> Any:
        seconds, out = clock(lambda: inner(*a, **k))
        spent.append(seconds)
        return out

    engine.generate = generate
    options = ConvertOptions(model=ModelOptions(max_new_tokens=32), max_retries=0)
    wall, doc = clock(lambda: convert(pdf, options, lambda: engine))
    return {"pages": len(doc.pages), "wall": wall, "model": sum(spent)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["tiny", "3b"], default="3b")
    parser.add_argument("--model-pixels", type=int, default=SMALL_PAGE_PIXELS)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--answer-tokens", type=int, default=1200)
    parser.add_argument("--pages-per-pdf", type=int, default=3)
    parser.add_argument("--overlap-pdf", type=Path, default=SHARED / "pdfs" / "cjk-korean-nars-report-4pp.pdf")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()

    header = stamp()
    tiny = tiny_engine("cpu", "float32", args.new_tokens)
    # The model's millions of objects made a full garbage collection (about 0.4 s) land in whichever
    # stage happened to allocate when it came; frozen, collections scan only what the stages make.
    gc.collect()
    gc.freeze()
    stages, pdfs = non_model_stages(tiny, args.pages_per_pdf)
    per_page = {name: statistics.mean(v) for name, v in stages.items()}
    other = sum(per_page.values())
    print(per_page, flush=True)
    lapped = overlap(args.overlap_pdf)
    print(lapped, flush=True)
    engine = real_shape_engine("cpu", "auto", args.new_tokens) if args.arch == "3b" else tiny
    model = model_page(engine, args.model_pixels, args.new_tokens, args.answer_tokens)
    print(model, flush=True)

    rows = "\n".join(
        f"| {name} | {len(stages[name])} | {1000 * per_page[name]:.2f} | {1000 * max(stages[name]):.1f} |"
        for name in stages
    )
    body = (
        f"## Non-model overhead per page ({args.arch} model)\n\n"
        f"{header}- load average at end: {load_average()}\n\n"
        f"Non-model stages, {pdfs} readable fixture PDFs (up to {args.pages_per_pdf} pages each), default "
        f"pixel bounds; real recorded answers read:\n\n"
        "| stage | pages | mean ms/page | max ms |\n|---|---|---|---|\n"
        f"{rows}\n| **all but the model** | | **{1000 * other:.1f}** | |\n\n"
        f"Text-layer check: {1000 * per_page['text layer']:.1f} ms a page, "
        f"**{100 * per_page['text layer'] / other:.1f}% of the non-model time** (target: under 5%).\n\n"
        f"Model ({args.arch}, {engine.model.dtype}) on one page of {model['tokens_in']:.0f} prompt tokens "
        f"(max_pixels {args.model_pixels}): vision + prefill {model['vision_prefill']:.2f} s, decode "
        f"{1000 * model['step']:.1f} ms/token (median of {args.new_tokens - 1} steps); a page writing "
        f"{args.answer_tokens} tokens: {model['page']:.1f} s.\n\n"
        f"**Non-model share: {100 * other / model['page']:.3f}% of the model's time per page** "
        f"({1000 * other:.1f} ms against {model['page']:.1f} s).\n\n"
        f"Overlap (pipeline.convert, tiny model, batch size 1, {args.overlap_pdf.name}, {lapped['pages']:.0f} pages, "
        f"32 new tokens): wall {lapped['wall']:.2f} s, inside engine.generate {lapped['model']:.2f} s, "
        f"outside {lapped['wall'] - lapped['model']:.2f} s "
        f"(wall / model = {lapped['wall'] / lapped['model']:.2f}; 1.00 would mean fully overlapped).\n"
    )
    print(body)
    if not args.no_write:
        write_results(f"overhead-{args.arch}", body)


if __name__ == "__main__":
    main()
