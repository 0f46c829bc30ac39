"""CPU dtype and thread count: one 3B-shape decoder MLP (2048 -> 11008 -> 2048) at decode and prefill sizes.

Run from the repo root:  python -m benchmarks.cpu_threads
Times the MLP of one Qwen2.5-VL-3B text layer (gate, up, SiLU, down: 68 M weights, 82% of the
layer's weights) on rows of 1 to 16 tokens (one decode step at batch 1 to 16) and 256 tokens
(prefill: compute-bound; bfloat16 only where the CPU has it natively), in float32 and bfloat16,
with 1 thread and with every core torch uses by default; the best of --repeat runs is kept,
since other users share the cores.
Writes the section cpu-threads of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import load_average, stamp
from benchmarks.common import write_section as write_results


def mlp(dtype: torch.dtype) -> tuple[torch.nn.Linear, torch.nn.Linear, torch.nn.Linear]:
    torch.manual_seed(0)
    gate = torch.nn.Linear(2048, 11008, bias=False, dtype=dtype)
    up = torch.nn.Linear(2048, 11008, bias=False, dtype=dtype)
    down = torch.nn.Linear(11008, 2048, bias=False, dtype=dtype)
    return gate, up, down


def best(fn: object, repeat: int) -> float:
    seconds = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        seconds = min(seconds, time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    header = stamp()
    cores = torch.get_num_threads()
    threads = sorted({1, cores})
    rows: list[str] = []
    results: dict[tuple[str, int, int], float] = {}
    for dtype in (torch.float32, torch.bfloat16):
        gate, up, down = mlp(dtype)
        # Emulated bfloat16 prefill takes minutes per call without AVX512-BF16/AMX: decode sizes only.
        native = dtype == torch.float32 or torch.ops.mkldnn._is_mkldnn_bf16_supported()
        for tokens in (1, 2, 4, 8, 16, 256) if native else (1, 2, 4, 8, 16):
            repeat = args.repeat
            x = torch.randn(tokens, 2048, dtype=dtype)

            def run(x: torch.Tensor = x, layers: tuple[torch.nn.Linear, ...] = (gate, up, down)) -> None:
                with torch.inference_mode():
                    layers[2](torch.nn.functional.silu(layers[0](x)) * layers[1](x))

            for n in threads:
                torch.set_num_threads(n)
                run()
                seconds = best(run, repeat)
                name = str(dtype).split(".")[1]
                results[(name, tokens, n)] = seconds
                gain = f"{results[(name, 1, n)] / seconds * tokens:.2f}x" if tokens <= 16 else "-"
                rows.append(f"| {name} | {tokens} | {n} | {1000 * seconds:.2f} | {gain} |")
                print(rows[-1], flush=True)
    torch.set_num_threads(cores)
    body = (
        "## CPU dtype and threads (one 3B-shape MLP layer)\n\n"
        f"{header}- load average at end: {load_average()}\n\n"
        "| dtype | tokens | threads | ms (best of runs) | tokens/s vs 1 token |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    print(body)
    if not args.no_write:
        write_results("cpu-threads", body)


if __name__ == "__main__":
    main()
