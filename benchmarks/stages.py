"""Seconds per stage for one page: rasterise, preprocess, vision, prefill, decode per token, read, write.

Run from the repo root:
  python -m benchmarks.stages --arch tiny               # the tests' tiny random model
  python -m benchmarks.stages --arch 3b --new-tokens 8  # real Qwen2.5-VL-3B shape, random weights

The 3B model is built in memory from benchmarks/configs/qwen2_5_vl_3b.json (the published shape)
with random weights: same compute as the real model, no download. Output length is forced
(min_new_tokens = max_new_tokens) so runs compare. Reading and writing are timed on a real
recorded answer (tests/data/qwenvl/01), since a random model's answer is noise.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from docparse.config import ModelOptions, RasterOptions, WriteOptions
from docparse.document import Document
from docparse.engines.device import resolve_dtype
from docparse.engines.transformers import TransformersEngine, load_engine
from docparse.inputs.rasterize import open_input
from docparse.run.build import build_page
from docparse.writers import write

ROOT = Path(__file__).resolve().parents[1]
ANSWER = ROOT / "tests" / "data" / "qwenvl" / "01-cookbook-qwen25-techreport-72b.html"


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def real_shape_engine(tiny: TransformersEngine, dtype: torch.dtype, options: ModelOptions) -> TransformersEngine:
    """An engine around a random-weight model of the published 3B shape, with the tiny tokenizer's ids."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    raw = json.loads((ROOT / "benchmarks" / "configs" / "qwen2_5_vl_3b.json").read_text())
    raw.pop("_source")
    tiny_config = tiny.model.config
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        raw[key] = getattr(tiny_config, key)
    config = Qwen2_5_VLConfig(**raw)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype).eval()
    model.generation_config = tiny.model.generation_config
    return TransformersEngine(options, Path("qwen2.5-vl-3b-random"), model, tiny.tokenizer, tiny.image_processor, "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["tiny", "3b"], default="tiny")
    parser.add_argument("--pdf", type=Path, default=ROOT / "samples" / "report.pdf")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto")
    parser.add_argument("--max-pixels", type=int, default=RasterOptions().max_pixels)
    args = parser.parse_args()
    torch_dtype = resolve_dtype(args.dtype, "cpu")  # auto: float32 unless the CPU has native bfloat16

    from tests.tiny_model import build_tiny_model

    raster = RasterOptions(max_pixels=args.max_pixels)
    rasterise_s, page_image = timed(lambda: next(open_input(args.pdf, raster).pages()), repeat=3)
    image = page_image.image

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_model(Path(tmp) / "tiny")
        options = ModelOptions(model=str(folder), device="cpu", dtype=args.dtype, max_new_tokens=args.new_tokens)
        started = time.perf_counter()
        engine = load_engine(options)
        if args.arch == "3b":
            engine = real_shape_engine(engine, torch_dtype, options)
        load_s = time.perf_counter() - started

    w, h = image.size
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"model: {args.arch} ({torch_dtype}), page {w}x{h} px")
    print("| stage | seconds |")
    print("|---|---|")

    def row(name: str, seconds: float) -> None:
        print(f"| {name} | {seconds:.4f} |", flush=True)

    row("load model (incl. building the random weights)", load_s)
    row("rasterise one page (PyMuPDF)", rasterise_s)
    preprocess_s, inputs = timed(lambda: engine.build_inputs([image]), repeat=3)
    row(f"preprocess (tokenise + image processor; {inputs['input_ids'].shape[1]} prompt tokens)", preprocess_s)
    pixel_values = inputs["pixel_values"].to(torch_dtype)
    grid = inputs["image_grid_thw"]
    repeat = 3 if args.arch == "tiny" else 1  # a real-size step takes seconds to minutes; noise is small there
    with torch.inference_mode():
        vision_s, _ = timed(lambda: engine.model.model.visual(pixel_values, grid_thw=grid), repeat=repeat)
    row("vision encoder", vision_s)

    # Every forward call of the language model is timed: the first of a generate call is the
    # prefill (the image features are computed before it), the others are decode steps.
    steps: list[float] = []
    forward = engine.model.forward

    @functools.wraps(forward)  # generate() checks its kwargs against forward's signature
    def timed_forward(*a: Any, **k: Any) -> Any:
        started = time.perf_counter()
        out = forward(*a, **k)
        steps.append(time.perf_counter() - started)
        return out

    engine.model.forward = timed_forward
    engine.generation_config.max_new_tokens = args.new_tokens
    engine.generation_config.min_new_tokens = args.new_tokens  # forced length, so runs compare
    total_s = timed(lambda: engine.generate([image]))[0]
    prefill_s, decode = steps[0], sorted(steps[1:])
    row(f"whole generate call ({args.new_tokens} tokens forced)", total_s)
    row("prefill (language model over the prompt)", prefill_s)
    row(f"decode, per token (median of {len(decode)} steps)", decode[len(decode) // 2] if decode else float("nan"))

    raw = ANSWER.read_text(encoding="utf-8")
    read_s, page = timed(
        lambda: build_page(
            number=1, raw=raw, image_size=(1008, 1540), page_size=(1014.0, 1532.0), unit="px", generation=None
        ),
        repeat=20,
    )
    row("read a real answer (fixture 01)", read_s)
    doc = Document(source="bench", pages=(page,))
    for fmt in ("md", "html", "json"):
        row(f"write {fmt}", timed(lambda fmt=fmt: write(doc, WriteOptions(format=fmt)), repeat=20)[0])


if __name__ == "__main__":
    main()
