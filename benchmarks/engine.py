"""Engine throughput against batch size: prefill and decode apart, tokens/s and pages/s.

Run from the repo root (one 3B process at a time: it peaks at about 16 GiB in float32):
  python -m benchmarks.engine --arch 3b --batches 1,2,4 --new-tokens 32 --max-pixels 100352   # CPU
  python -m benchmarks.engine --arch 3b --device cuda --batches 1,8,32,64 --new-tokens 256    # GPU
The model is the published Qwen2.5-VL-3B shape with random weights (benchmarks/configs), built in
memory; the output length is forced (min_new_tokens = max_new_tokens, no stop on repetition) so
every batch size does the same work per page. Every forward call of the model is timed: the
first of a generate call is the prefill, the others are decode steps; the vision encoder, which
generate runs before the prefill, is timed on its own. Writes the section engine-<device> of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Any

from benchmarks.common import SMALL_PAGE_PIXELS, load_average, page_images, real_shape_engine, stamp, tiny_engine
from benchmarks.common import write_section as write_results


class ForwardTimer:
    """Wraps the model's forward and its vision encoder's forward, recording seconds per call."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.forward: list[float] = []
        self.vision: list[float] = []
        self.forward_cpu: list[float] = []  # process CPU seconds: what other users of the cores cannot inflate
        self.vision_cpu: list[float] = []
        self._wrap(engine.model, self.forward, self.forward_cpu)
        self._wrap(engine.model.model.visual, self.vision, self.vision_cpu)

    def _wrap(self, module: Any, into: list[float], cpu: list[float]) -> None:
        inner = module.forward
        sync = self._sync

        @functools.wraps(inner)  # generate() checks its kwargs against forward's signature
        def timed(*a: Any, **k: Any) -> Any:
            sync()
            started, started_cpu = time.perf_counter(), time.process_time()
            out = inner(*a, **k)
            sync()
            into.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            return out

        module.forward = timed

    def _sync(self) -> None:
        if self.engine.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def reset(self) -> None:
        for times in (self.forward, self.vision, self.forward_cpu, self.vision_cpu):
            times.clear()


def force_length(engine: Any, new_tokens: int) -> Any:
    """Settings and config so that every page decodes exactly `new_tokens` tokens."""
    from docparse.engines.base import GenerationSettings

    engine.generation_config.max_new_tokens = new_tokens
    engine.generation_config.min_new_tokens = new_tokens
    return GenerationSettings(stop_on_repetition=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["tiny", "3b"], default="3b")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batches", default="1,2,4")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--max-pixels", type=int, default=SMALL_PAGE_PIXELS)
    parser.add_argument("--warmup", action="store_true", help="one untimed batch-1 call first (GPU)")
    parser.add_argument(
        "--cache",
        choices=["dynamic", "static"],
        default="dynamic",
        help="KV cache; static lets transformers compile the decode step (CUDA)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    header = stamp()
    started = time.perf_counter()
    build = real_shape_engine if args.arch == "3b" else tiny_engine
    engine = build(args.device, args.dtype, args.new_tokens, max(batches))
    build_s = time.perf_counter() - started
    settings = force_length(engine, args.new_tokens)
    if args.cache == "static":
        engine.generation_config.cache_implementation = "static"
    images = page_images(max(batches), args.max_pixels)
    sizes = sorted({im.size for im in images})
    timer = ForwardTimer(engine)
    if args.warmup:
        engine.generate_tokens(images[:1], settings)

    rows: list[str] = []
    base_decode = base_pages = base_cpu = None
    for batch in batches:
        timer.reset()
        started = time.perf_counter()
        pages = engine.generate_tokens(images[:batch], settings)
        total = time.perf_counter() - started
        assert all(len(p.token_ids) == args.new_tokens for p in pages), "output length was not forced"
        vision = sum(timer.vision)
        prefill = timer.forward[0]
        steps = timer.forward[1:]
        step = statistics.median(steps)
        step_cpu = statistics.median(timer.forward_cpu[1:])
        decode_tps = batch / step
        pages_s = batch / total
        base_decode = base_decode or decode_tps
        base_pages = base_pages or pages_s
        base_cpu = base_cpu or batch / step_cpu
        before_cpu = timer.forward_cpu[0] + sum(timer.vision_cpu)
        tokens_in = sum(p.tokens_in for p in pages)
        rows.append(
            f"| {batch} | {tokens_in} | {vision:.2f} | {prefill:.2f} | {tokens_in / (vision + prefill):.1f} | "
            f"{step * 1000:.1f} | {decode_tps:.2f} | {decode_tps / base_decode:.2f}x | {total:.1f} | "
            f"{pages_s:.4f} | {pages_s / base_pages:.2f}x | {before_cpu:.1f} | {1000 * step_cpu:.0f} | "
            f"{batch / step_cpu / base_cpu:.2f}x |"
        )
        print(rows[-1], flush=True)

    weights = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    body = (
        f"## Engine throughput against batch size ({args.arch}, {args.device}, {engine.model.dtype}, "
        f"{args.cache} KV cache)\n\n"
        f"{header}- load average at end: {load_average()}\n"
        f"- model: {'Qwen2.5-VL-3B shape, random weights' if args.arch == '3b' else 'tiny test model'}, "
        f"{weights / 2**30:.2f} GiB of weights, attention {engine.model.config._attn_implementation}; built in "
        f"{build_s:.0f} s\n"
        f"- pages: {len(sizes)} sizes {', '.join(f'{w}x{h}' for w, h in sizes)} (max_pixels {args.max_pixels}), "
        f"{args.new_tokens} new tokens forced per page\n"
        f"- prefill tokens/s counts the prompt tokens (vision + prefill); decode tokens/s is batch / median "
        f"step time; pages/s is batch / whole generate call; the CPU columns are this process's CPU seconds "
        f"(time.process_time), which other users of the cores do not inflate (wall times do)\n\n"
        "| batch | prompt tokens | vision s | prefill s | prefill tok/s | decode ms/step | decode tok/s | "
        "vs batch 1 | call s | pages/s | vs batch 1 | CPU s vision+prefill | CPU ms/step | "
        "decode tok per CPU s vs batch 1 |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    if engine.device == "cuda":
        import torch

        seconds = weights / 3.35e12 if "H100" in torch.cuda.get_device_name(0) else float("nan")
        body += (
            f"\nWeight-bandwidth limit of one decode step: {weights / 2**30:.2f} GiB read per step / 3.35 TB/s "
            f"(H100 SXM HBM3) = {seconds * 1000:.2f} ms; peak GPU memory "
            f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB.\n"
        )
    print(body)
    if not args.no_write:
        suffix = "" if args.cache == "dynamic" else f"-{args.cache}"
        suffix += "" if args.threads is None else f"-{args.threads}thread"
        write_results(f"engine-{args.arch}-{args.device}{suffix}", body)


if __name__ == "__main__":
    main()
