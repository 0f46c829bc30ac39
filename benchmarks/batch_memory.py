"""Peak memory of the batch scheduler over many pages: a generated N-page PDF through a fake engine.

Usage: .venv/bin/python -m benchmarks.batch_memory [PAGES] [BATCH_SIZE]
Prints the resident set size before the run, the peak during it (sampled every 20 ms) and after.
The fake engine answers instantly, so rendering (the producer) is the pace; what is measured is
whether page images pile up: they must not, the scheduler holds at most batch_size * 2 of them.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pymupdf
from PIL import Image

from docparse.config import ConvertOptions
from docparse.document import Generation
from docparse.engines.base import GREEDY, Answer, GenerationSettings
from docparse.run.events import FileDone
from docparse.run.scheduler import run_batch


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class InstantEngine:
    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.concurrency = 1
        self.model_id = "instant"

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        gen = Generation(model="instant", prompt="p", tokens_in=1, tokens_out=1, seconds=0.0, finish_reason="stop")
        return [Answer('<p data-bbox="10 10 100 30">text</p>', gen) for _ in images]

    def close(self) -> None:
        pass


def main() -> None:
    pages = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.pdf"
        doc = pymupdf.open()
        for i in range(pages):
            page = doc.new_page()
            for line in range(40):
                page.insert_text(
                    (50, 60 + 18 * line), f"Page {i + 1} line {line + 1}: the quick brown fox", fontsize=11
                )
        doc.save(path)
        doc.close()
        before = rss_mib()
        peak = before
        running = True

        def sample() -> None:
            nonlocal peak
            while running:
                peak = max(peak, rss_mib())
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        done: list[FileDone] = []
        run_batch([path], ConvertOptions(), lambda: InstantEngine(batch),
                  events=lambda e: done.append(e) if isinstance(e, FileDone) else None)  # fmt: skip
        seconds = time.perf_counter() - started
        running = False
        sampler.join()
        after = rss_mib()
        assert done and done[0].document is not None and len(done[0].document.pages) == pages
    print(f"{pages} pages, batch {batch}: {seconds:.1f} s ({pages / seconds:.1f} pages/s); "
          f"RSS before {before:.0f} MiB, peak {peak:.0f} MiB, after {after:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
