"""--ray benchmarks: the Ray path's overhead a page against the local scheduler (tiny model, same pages), and
pages/s against engine actors (1, 4, 16) with a stand-in engine of fixed latency; writes benchmarks/RESULTS-ray.md.

Run from the repo root, under the heavy lock (16 actors are 16 processes):
    flock /tmp/docparse-heavy.lock .venv/bin/python -m benchmarks.ray_cluster
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from benchmarks.common import ROOT, SMALL_PAGE_PIXELS, stamp
from docparse.config import ClusterOptions, ConvertOptions
from docparse.document import Generation
from docparse.engines.base import GREEDY, Answer, GenerationSettings
from docparse.files import write_atomic
from docparse.keywords import convert_options
from docparse.run.events import Event, FileDone

RESULTS = ROOT / "benchmarks" / "RESULTS-ray.md"
MIN_PIXELS = 4 * 28 * 28


class SleepEngine:
    """A stand-in engine of fixed latency: `seconds` a page (sleeping, so it costs no CPU), one page a call.
    It logs when it was ready and when each call started and ended (wall clock) to `log`."""

    def __init__(self, seconds: float, log: Path) -> None:
        self.seconds = seconds
        self.log = log
        self._write(f"ready {time.time()}")

    def _write(self, line: str) -> None:
        with self.log.open("a") as f:
            f.write(line + "\n")

    @property
    def model_id(self) -> str:
        return "stand-in"

    @property
    def batch_size(self) -> int:
        return 1

    @property
    def concurrency(self) -> int:
        return 1

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        start = time.time()
        time.sleep(self.seconds * len(images))
        self._write(f"call {start} {time.time()}")
        answer = '<html><body><p data-bbox="28 28 280 56">A page.</p></body></html>'
        generation = Generation(model="stand-in", prompt="QwenVL HTML", tokens_in=100, tokens_out=12,
                                seconds=self.seconds, finish_reason="stop")  # fmt: skip
        return [Answer(answer, generation) for _ in images]

    def close(self) -> None:
        pass


class SleepFactory:
    """What the actors call instead of open_engine (pickled by value: the workers need not import benchmarks/)."""

    def __init__(self, seconds: float, logs: Path) -> None:
        self.seconds = seconds
        self.logs = logs

    def __call__(self, options: ConvertOptions) -> SleepEngine:
        import os

        return SleepEngine(self.seconds, self.logs / f"{os.getpid()}.log")


def make_pdf(path: Path, pages: int) -> Path:
    import pymupdf

    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=300, height=400)
        for line in range(8):
            page.insert_text((30, 50 + 30 * line), f"Page {i + 1}, line {line + 1}: some words", fontsize=11)
    doc.save(path)
    return path


def pdfs(folder: Path, count: int, pages_each: int) -> list[Path]:
    return [make_pdf(folder / f"doc{i:03d}.pdf", pages_each) for i in range(count)]


def timed_cluster(sources: list[Path], options: ConvertOptions, workers: int, factory: object) -> tuple[float, int]:
    from docparse.run.cluster import run_cluster

    pages = 0

    def on_event(event: Event) -> None:
        nonlocal pages
        if isinstance(event, FileDone) and event.document is not None:
            pages += len(event.document.pages)

    start = time.perf_counter()
    run_cluster(sources, options, ClusterOptions(workers=workers), events=on_event, engine_factory=factory)
    return time.perf_counter() - start, pages


def scale(folder: Path, latency: float, per_actor: int, counts: list[int]) -> list[str]:
    """Pages/s with 1, 4, 16 actors of the stand-in engine, `per_actor` pages each (ideal: actors / latency).

    Steady: from the moment the last actor's engine was ready to the end of the last call. Busy: the share of
    that span the engines spent in calls (summed over actors, against actors x span): 100% is never idle."""
    options = convert_options(min_pixels=MIN_PIXELS, max_pixels=SMALL_PAGE_PIXELS, max_retries=0, batch_size=1)
    rows = [
        "| actors | pages | wall s (actor start incl.) | pages/s wall | steady s | pages/s steady | ideal pages/s "
        "| busy in steady |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for actors in counts:
        run = folder / f"actors-{actors}"
        (run / "logs").mkdir(parents=True)
        sources = pdfs(run, actors, per_actor)  # one document of `per_actor` pages per actor
        seconds, pages = timed_cluster(sources, options, actors, SleepFactory(latency, run / "logs"))
        ready, calls = 0.0, []
        for log in (run / "logs").glob("*.log"):
            for line in log.read_text().splitlines():
                kind, *times = line.split()
                if kind == "ready":
                    ready = max(ready, float(times[0]))
                else:
                    calls.append((float(times[0]), float(times[1])))
        end = max(e for _, e in calls)
        span = end - ready
        busy = sum(max(0.0, e - max(s, ready)) for s, e in calls)
        share = busy / (actors * span) if span > 0 else 0.0
        rows.append(f"| {actors} | {pages} | {seconds:.1f} | {pages / seconds:.2f} | {span:.1f} "
                    f"| {busy / latency / span:.2f} | {actors / latency:.2f} | {share:.0%} |")  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def overhead(folder: Path, pages: int, repeat: int) -> list[str]:
    """The same pages through the local scheduler and through one Ray actor, both on the tiny model, at two
    corpus sizes: the slope is the cost a page, the intercept the fixed cost (engine load, actor start)."""
    import torch

    from docparse.engines.open import open_engine
    from docparse.run.scheduler import run_batch
    from tests.tiny_model import build_tiny_model

    model = build_tiny_model(folder / "tiny")
    small, big = pdfs(folder, 1, pages // 4), pdfs(folder, 4, pages // 4)
    options = convert_options(model=str(model), device="cpu", dtype="float32", max_new_tokens=12, batch_size=1,
                              min_pixels=MIN_PIXELS, max_pixels=SMALL_PAGE_PIXELS, max_retries=0)  # fmt: skip
    torch.set_num_threads(1)  # as in the actor (Ray gives a one-CPU actor one thread)

    def local(sources: list[Path]) -> float:
        start = time.perf_counter()
        engine = open_engine(options)
        try:
            run_batch(sources, options, lambda: engine)
        finally:
            engine.close()
        return time.perf_counter() - start

    timed_cluster(small, options, 1, None)  # warm: the shipped package, the first worker processes
    local(small)
    n_small, n_big = pages // 4, 4 * (pages // 4)

    def ray_path(sources: list[Path]) -> float:
        return timed_cluster(sources, options, 1, None)[0]

    times = {name: (min(run(small) for _ in range(repeat)), min(run(big) for _ in range(repeat)))
             for name, run in (("local", local), ("ray", ray_path))}  # fmt: skip
    rows = [f"| path | {n_small} pages, s | {n_big} pages, s | s a page (slope) | fixed s (intercept) |",
            "|---|---:|---:|---:|---:|"]  # fmt: skip
    slopes = {}
    for name, (a, b) in times.items():
        slopes[name] = (b - a) / (n_big - n_small)
        label = "local scheduler" if name == "local" else "--ray, 1 engine actor"
        rows.append(f"| {label} | {a:.2f} | {b:.2f} | {slopes[name]:.3f} | {a - slopes[name] * n_small:.2f} |")
    rows.append(f"| overhead a page (ray slope - local slope) | | | {slopes['ray'] - slopes['local']:.3f} | |")
    for row in rows[2:]:
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds a page of the stand-in engine")
    parser.add_argument("--per-actor", type=int, default=20, help="pages each actor gets in the scale runs")
    parser.add_argument("--actors", default="1,4,16")
    parser.add_argument("--pages", type=int, default=80, help="pages of the overhead run's bigger corpus")
    parser.add_argument("--repeat", type=int, default=3, help="overhead runs of each kind (the fastest counts)")
    args = parser.parse_args()
    import cloudpickle
    import ray

    import docparse

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    counts = [int(n) for n in args.actors.split(",")]
    head = stamp()
    cpu = subprocess.run("lscpu | grep -E 'Model name|^CPU\\(s\\)'", shell=True, capture_output=True, text=True)
    ray.init(address="local", num_cpus=max(counts) + 2, include_dashboard=False, log_to_driver=False,
             runtime_env={"py_modules": [str(Path(docparse.__file__).parent)]})  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows_overhead = overhead(Path(tmp), args.pages, args.repeat)
            (Path(tmp) / "scale").mkdir()
            rows_scale = scale(Path(tmp) / "scale", args.latency, args.per_actor, counts)
    finally:
        ray.shutdown()
    body = (
        "# --ray: overhead a page and scale across engine actors\n\n"
        f"Made by `benchmarks/ray_cluster.py`.\n\n{head}\n```\n{cpu.stdout.strip()}\n```\n\n"
        f"A local Ray cluster ({max(counts) + 2} logical CPUs on this 2-core machine, no dashboard).\n\n"
        "## Overhead: the same pages through the local scheduler and through one engine actor\n\n"
        "Tiny random Qwen2.5-VL, 12 new tokens, one page a call, no page cache; each path timed whole (engine "
        "load, actor start, rendering, model, assembly) on 1 and on 4 PDFs of the same pages; the local run's "
        f"torch has one thread, as the actor's has; the fastest of {args.repeat} runs of each.\n\n"
        + "\n".join(rows_overhead)
        + "\n\n"
        "## Scale: pages/s against engine actors\n\n"
        f"A stand-in engine (benchmarks/ray_cluster.py SleepEngine) of {args.latency:g} s a page, one page a "
        f"call; {args.per_actor} pages per actor (one PDF each). Ideal: actors / latency. Steady: from the "
        "moment the last actor's engine was ready to the end of the last call (the wall time adds the start "
        "of the actors' processes, slow with 16 of them on 2 cores). Busy: the share of the steady span the "
        "engines spent in calls, from the engines' own logs.\n\n" + "\n".join(rows_scale) + "\n"
    )
    write_atomic(RESULTS, body.encode("utf-8"))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
