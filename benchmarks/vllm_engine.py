"""The vLLM engine against the transformers engine, side by side: tokens/s and pages/s at 1 and N pages in flight.

Run from the repo root, one engine after the other (never both at once: each holds the whole model):
  flock /tmp/docparse-heavy.lock python -m benchmarks.vllm_engine --arch 3b --in-flight 1,8 --new-tokens 16
  python -m benchmarks.vllm_engine --arch 3b --device cuda --in-flight 1,64 --new-tokens 128 --max-pixels 1605632
  python -m benchmarks.vllm_engine --arch tiny --in-flight 1,2 --new-tokens 4 --no-write   # dry run, seconds
A random-weight checkpoint of the published Qwen2.5-VL-3B shape (benchmarks/configs) is written to a temporary
folder (bfloat16, 7.5 GB; the tiny model for --arch tiny) with the tests' small tokenizer; each engine then
loads it in a child process through docparse's own engine code (transformers from this venv, vLLM from
.venv-vllm or $DOCPARSE_VLLM_PYTHON), answers one warm-up page, then each in-flight count of pages at once,
output length forced (no end of sequence, no stop on repetition). Decode tokens/s is measured at one page
as (N - 1) / (time of N tokens - time of 1 token), and set against the weight-bandwidth roofline: memory
bandwidth (measured: a large tensor copy) over the bytes of weights one decode step reads. Writes the section
vllm-<device> of benchmarks/RESULTS-vllm.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, SMALL_PAGE_PIXELS, page_images, stamp, write_section

RESULTS = ROOT / "benchmarks" / "RESULTS-vllm.md"
# vLLM's venv: $DOCPARSE_VLLM_PYTHON, else this one if vLLM is installed here (docparse[vllm]), else .venv-vllm.
VLLM_PYTHON = Path(
    os.environ.get("DOCPARSE_VLLM_PYTHON")
    or (sys.executable if importlib.util.find_spec("vllm") else ROOT / ".venv-vllm" / "bin" / "python")
)


def build_checkpoint(folder: Path, arch: str) -> Path:
    """A Qwen2.5-VL checkpoint with random weights at `folder`: the 3B shape (bfloat16) or the tests' tiny one."""
    from tests.tiny_model import build_tiny_model

    tiny = build_tiny_model(folder / "tiny", head_dim=32)
    if arch == "tiny":
        return tiny
    import shutil

    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    raw = json.loads((ROOT / "benchmarks" / "configs" / "qwen2_5_vl_3b.json").read_text())
    raw.pop("_source")
    ids = json.loads((tiny / "config.json").read_text())
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        raw[key] = ids[key]
    raw["text_config"].update({k: ids["text_config"][k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")})
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(Qwen2_5_VLConfig(**raw), dtype=torch.bfloat16)
    out = folder / "qwen2_5_vl_3b-random"
    model.save_pretrained(out)
    del model
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "generation_config.json"):
        shutil.copy(tiny / name, out / name)
    return out


def bandwidth() -> float:
    """Bytes per second one large tensor copy moves on this device (read + write)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    src = torch.empty(2**28, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        dst.copy_(src)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() / best


def open_engine(kind: str, folder: Path, device: str, dtype: str, new_tokens: int, max_pixels: int, n: int) -> Any:
    from docparse.config import ModelOptions, RasterOptions, VllmOptions
    from docparse.engines.transformers import load_engine
    from docparse.engines.vllm import open_vllm_engine

    options = ModelOptions(model=str(folder), device=device, dtype=dtype, max_new_tokens=new_tokens, batch_size=n)  # type: ignore[arg-type]
    if kind == "transformers":
        engine = load_engine(options, max_pixels)
        engine.generation_config.min_new_tokens = new_tokens  # forced length
        return engine
    raster = RasterOptions(min_pixels=min(RasterOptions().min_pixels, max_pixels), max_pixels=max_pixels)
    engine = open_vllm_engine(options, VllmOptions(in_flight=n), raster)
    plain = engine.sampling

    def forced(settings: Any) -> Any:  # forced length: no end of sequence
        params = plain(settings)
        params.min_tokens, params.ignore_eos = params.max_tokens, True
        return params

    engine.sampling = forced  # type: ignore[method-assign]
    return engine


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One engine: load, warm up, time 1 token and N tokens at one page, then each in-flight count."""
    from docparse.engines.base import GenerationSettings

    flights = [int(x) for x in args.in_flight.split(",")]
    images = page_images(max(flights), args.max_pixels)
    # Rendering at min = max pixels can round a page up past the bound: vLLM's processor must take the largest.
    largest = max(image.width * image.height for image in images)
    started = time.perf_counter()
    engine = open_engine(args.worker, Path(args.model), args.device, args.dtype, args.new_tokens, largest, max(flights))
    load = time.perf_counter() - started
    full = GenerationSettings(max_new_tokens=args.new_tokens, stop_on_repetition=False)
    one = GenerationSettings(max_new_tokens=1, stop_on_repetition=False)
    engine.generate(images[:1], full)  # warm-up
    result: dict[str, Any] = {"engine": args.worker, "load_s": load, "runs": []}
    start = time.perf_counter()
    engine.generate(images[:1], one)
    first = time.perf_counter() - start
    for n in flights:
        start = time.perf_counter()
        answers = engine.generate(images[:n], full)
        wall = time.perf_counter() - start
        tokens = sum(a.generation.tokens_out for a in answers)
        result["runs"].append({"pages": n, "wall_s": wall, "tokens": tokens})
        if n == 1 and wall - first > 1e-3:  # the tiny model's N tokens can take no longer than its first
            result["decode_tok_s"] = (tokens - 1) / (wall - first)
    if hasattr(engine, "summary"):
        result["summary"] = engine.summary()
    engine.close()
    return result


def run_worker(kind: str, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    python = str(VLLM_PYTHON) if kind == "vllm" else sys.executable
    cmd = [python, "-m", "benchmarks.vllm_engine", "--worker", kind, "--model", str(model)]
    cmd += ["--device", args.device, "--dtype", args.dtype, "--new-tokens", str(args.new_tokens)]
    cmd += ["--max-pixels", str(args.max_pixels), "--in-flight", args.in_flight]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{kind} worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))


def weight_bytes(model: Path, dtype: str) -> int:
    """Bytes of the language model's weights one decode step reads (the vision encoder's aside)."""
    from safetensors import safe_open

    itemsize = 2 if dtype in ("bfloat16", "float16") else 4
    total = 0
    for file in model.glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            for name in f.keys():  # noqa: SIM118  (safe_open has keys(), not iteration)
                if "visual" not in name:
                    shape = f.get_slice(name).get_shape()
                    count = 1
                    for dim in shape:
                        count *= int(dim)
                    total += count
    return total * itemsize


def report(args: argparse.Namespace, results: list[dict[str, Any]], bw: float, weights: int) -> str:
    roof = bw / weights  # decode steps per second if each step only read the weights once
    lines = [
        f"- pages: {args.max_pixels // 784} image tokens each, {args.new_tokens} new tokens forced, "
        f"{args.dtype}; memory bandwidth {bw / 1e9:.1f} GB/s (copy), language-model weights "
        f"{weights / 2**30:.2f} GiB: roofline {roof:.2f} decode tokens/s at one page",
        "",
        "| engine | load s | pages in flight | wall s | tokens/s | pages/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for run in r["runs"]:
            lines.append(
                f"| {r['engine']} | {r['load_s']:.0f} | {run['pages']} | {run['wall_s']:.2f} | "
                f"{run['tokens'] / run['wall_s']:.2f} | {run['pages'] / run['wall_s']:.3f} |"
            )
    lines.append("")
    for r in results:
        if "decode_tok_s" in r:
            lines.append(
                f"- {r['engine']}: decode {r['decode_tok_s']:.2f} tokens/s at one page, "
                f"{100 * r['decode_tok_s'] / roof:.0f}% of the roofline"
            )
        if "summary" in r:
            lines.append(f"- {r['summary']}")
    base = {run["pages"]: run for run in results[0]["runs"]}
    for run in results[-1]["runs"]:
        ref = base.get(run["pages"])
        if ref is not None and len(results) > 1:
            ratio = (run["tokens"] / run["wall_s"]) / (ref["tokens"] / ref["wall_s"])
            lines.append(f"- {run['pages']} in flight: vllm / transformers tokens/s = {ratio:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("3b", "tiny"), default="3b")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", default=None, help="default: float32 on cpu, bfloat16 on cuda")
    parser.add_argument("--in-flight", default="1,8")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--max-pixels", type=int, default=SMALL_PAGE_PIXELS)
    parser.add_argument("--engines", default="transformers,vllm")
    parser.add_argument("--timeout", type=float, default=1500)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", choices=("transformers", "vllm"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dtype = args.dtype or ("float32" if args.device == "cpu" else "bfloat16")
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return
    head = stamp()
    with tempfile.TemporaryDirectory(dir=os.environ.get("DOCPARSE_BENCH_TMP")) as tmp:
        model = build_checkpoint(Path(tmp), args.arch)
        weights = weight_bytes(model, args.dtype)
        results = [run_worker(kind, model, args) for kind in args.engines.split(",")]
    body = head + report(args, results, bandwidth(), weights)
    print(body)
    if not args.no_write:
        title = f"## vLLM vs transformers, {args.arch}, {args.device}"
        write_section(f"vllm-{args.device}-{args.arch}", f"{title}\n\n{body}", RESULTS)


if __name__ == "__main__":
    main()
