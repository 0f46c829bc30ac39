"""The cookbook's way (one page at a time through model.generate) against docparse's engine, same model, one run.

Run from the repo root (one 3B process at a time):
  python -m benchmarks.baseline --arch 3b --pages 4 --new-tokens 16 --max-pixels 100352   # CPU
  python -m benchmarks.baseline --arch 3b --device cuda --pages 64 --new-tokens 256       # GPU

The cookbook (Qwen2.5-VL's README and its document-parsing notebook) builds each page's inputs
with AutoProcessor (+ qwen_vl_utils), calls model.generate(**inputs, max_new_tokens=...) one page
at a time and decodes with batch_decode. torchvision is not installed here, so AutoProcessor's
video path cannot load; the inputs are built by docparse's build_inputs instead, which
tests/test_engine.py checks equal to what Qwen2_5_VLProcessor builds. Both sides decode greedily
with the same generation config, output length forced (min_new_tokens = max_new_tokens).
docparse's side is engine.generate over all pages at the engine's batch size (auto unless
--batch-size). Writes the section baseline-<arch>-<device> of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import SMALL_PAGE_PIXELS, load_average, page_images, real_shape_engine, stamp, tiny_engine
from benchmarks.common import write_section as write_results
from benchmarks.engine import force_length


def cookbook(engine: Any, images: list[Any]) -> tuple[float, list[list[int]]]:
    """One page at a time: processor-built inputs, model.generate, batch_decode. Seconds and tokens."""
    import torch

    model = engine.model
    outputs: list[list[int]] = []
    started = time.perf_counter()
    for image in images:
        inputs = engine.build_inputs([image])  # stands in for processor(text=[...], images=[...])
        inputs = {k: v.to(engine.device) for k, v in inputs.items()}
        with torch.inference_mode():
            ids = model.generate(**inputs, max_new_tokens=engine.generation_config.max_new_tokens)
        trimmed = ids[:, inputs["input_ids"].shape[1] :]
        engine.tokenizer.batch_decode(trimmed, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        outputs.append(trimmed[0].tolist())
    _sync(engine)
    return time.perf_counter() - started, outputs


def _sync(engine: Any) -> None:
    if engine.device == "cuda":
        import torch

        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["tiny", "3b"], default="3b")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None, help="docparse's batch size (default: auto)")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--max-pixels", type=int, default=SMALL_PAGE_PIXELS)
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()

    header = stamp()
    build = real_shape_engine if args.arch == "3b" else tiny_engine
    engine = build(args.device, args.dtype, args.new_tokens, args.batch_size)
    if args.batch_size is None:
        engine._batch_size = engine.plan_batch_size(args.max_pixels).batch_size
    settings = force_length(engine, args.new_tokens)
    images = page_images(args.pages, args.max_pixels)
    if engine.device == "cuda":  # kernels compiled and cached once, outside both timings
        engine.generate(images[:2], settings)

    cook_s, cook_tokens = cookbook(engine, images)
    print(f"cookbook: {cook_s:.1f} s for {len(images)} pages", flush=True)
    started = time.perf_counter()
    answers = engine.generate_tokens(images, settings)
    _sync(engine)
    ours_s = time.perf_counter() - started
    print(f"docparse: {ours_s:.1f} s for {len(images)} pages", flush=True)
    same = sum(list(a.token_ids) == t for a, t in zip(answers, cook_tokens, strict=True))
    tokens = sum(len(t) for t in cook_tokens)
    assert tokens == args.new_tokens * len(images), "output length was not forced"

    sizes = sorted({im.size for im in images})
    body = (
        f"## Cookbook loop against docparse's engine ({args.arch}, {args.device}, {engine.model.dtype})\n\n"
        f"{header}- load average at end: {load_average()}\n"
        f"- {len(images)} pages ({', '.join(f'{w}x{h}' for w, h in sizes)}, max_pixels {args.max_pixels}), "
        f"{args.new_tokens} new tokens forced per page, greedy, same model and generation config\n"
        f"- cookbook inputs built by docparse's build_inputs (equal to Qwen2_5_VLProcessor's, tested; "
        f"torchvision is not installed for AutoProcessor)\n\n"
        "| way | batch | seconds | pages/s | new tokens/s | vs cookbook |\n|---|---|---|---|---|---|\n"
        f"| cookbook: one page per model.generate | 1 | {cook_s:.1f} | {len(images) / cook_s:.4f} | "
        f"{tokens / cook_s:.2f} | 1.00x |\n"
        f"| docparse engine.generate | {engine.batch_size} | {ours_s:.1f} | {len(images) / ours_s:.4f} | "
        f"{tokens / ours_s:.2f} | {cook_s / ours_s:.2f}x |\n\n"
        f"Same generated tokens on both sides: {same} of {len(images)} pages (batched float arithmetic may "
        f"differ in the last bits from one page alone; with random weights near-ties flip).\n"
    )
    print(body)
    if not args.no_write:
        write_results(f"baseline-{args.arch}-{args.device}", body)


if __name__ == "__main__":
    main()
