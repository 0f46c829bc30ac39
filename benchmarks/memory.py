"""Peak RSS of the CLI converting a generated 100-page and 1,000-page PDF on the tiny model.

Run from the repo root:  python -m benchmarks.memory            (about 5 minutes on 2 busy cores)
                         python -m benchmarks.memory --pages 20,200 --no-write   (a quick look)
Each PDF page holds a heading and a few paragraphs of different text (PyMuPDF draws them). The
CLI runs in a child process (`python -m docparse`, Markdown to a file, --quiet, no retries) on a
tiny random checkpoint; its peak RSS is the child's ru_maxrss from os.wait4. The pages are
rendered small (--max-pixels 50176, 64 image tokens) and 4 tokens are generated per page, so the
run measures what the pipeline holds per page, not the model's speed. Writes the section memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, stamp
from benchmarks.common import write_section as write_results

WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore"
WORDS_LIST = WORDS.split(" ")


def make_pdf(path: Path, pages: int) -> Path:
    """A text PDF of `pages` A4 pages, each with its own heading and paragraphs."""
    import pymupdf

    doc = pymupdf.open()
    for n in range(pages):
        page = doc.new_page(width=595, height=842)
        page.insert_text((72, 90), f"Section {n + 1}: generated page", fontsize=18)
        words = [WORDS_LIST[(n * 7 + i * 3) % len(WORDS_LIST)] for i in range(120)]
        for line in range(12):
            page.insert_text((72, 130 + 22 * line), " ".join(words[line * 10 : line * 10 + 10]), fontsize=11)
    doc.save(path)
    doc.close()
    return path


def peak_rss(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Run `args` as a child; its peak RSS in MiB, its wall seconds and its exit status."""
    started = time.perf_counter()
    # stderr to a file: a pipe nobody reads while waiting fills up and stalls a chatty child.
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        log.seek(0)
        err = log.read().decode(errors="replace").strip()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"exit {code}: {err[-500:]}", file=sys.stderr)
    return usage.ru_maxrss / 1024, seconds, code  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", default="100,1000")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    counts = [int(n) for n in args.pages.split(",")]

    from tests.tiny_model import build_tiny_model

    header = stamp()
    rows: list[str] = []
    peaks: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny")
        for count in counts:
            pdf = make_pdf(Path(tmp) / f"generated-{count}.pdf", count)
            out = Path(tmp) / f"generated-{count}.md"
            command = [sys.executable, "-m", "docparse", str(pdf), "-o", str(out), "--model", str(model)]
            command += ["--device", "cpu", "--min-pixels", "3136", "--max-pixels", "50176"]
            command += ["--max-new-tokens", "4", "--max-retries", "0", "--quiet"]
            # The page cache on, as a user runs it, but in a folder of its own (not the user's cache).
            env = {**os.environ, "DOCPARSE_CACHE_DIR": str(Path(tmp) / f"cache-{count}")}
            rss, seconds, code = peak_rss(command, env)
            peaks[count] = rss
            rows.append(f"| {count} | {pdf.stat().st_size / 2**20:.1f} | {rss:.0f} | {seconds:.0f} | {code} |")
            print(rows[-1], flush=True)
    growth = ""
    if len(counts) >= 2:
        low, high = counts[0], counts[-1]
        growth = (
            f"\nPeak RSS grows by {peaks[high] - peaks[low]:.0f} MiB from {low} to {high} pages "
            f"({(peaks[high] - peaks[low]) / (high - low) * 1024:.0f} KiB per extra page).\n"
        )
    body = (
        "## Peak memory against page count (tiny model, CLI)\n\n"
        f"{header}- per run: `python -m docparse PDF -o OUT.md --model TINY --device cpu --min-pixels 3136 "
        "--max-pixels 50176 --max-new-tokens 4 --max-retries 0 --quiet` (batch size auto, the page cache on, "
        "in a fresh folder per run); peak RSS from os.wait4\n\n"
        "| pages | PDF MiB | peak RSS MiB | seconds | exit |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n" + growth
    )
    print(body)
    if not args.no_write:
        write_results("memory", body)


if __name__ == "__main__":
    main()
