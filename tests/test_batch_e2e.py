"""Batch conversion through the real CLI in a subprocess on the tiny random Qwen2.5-VL: a folder with broken
files, the cache across formats and prompts, and a run killed with SIGKILL that resumes with only the
missing model calls. Model calls are counted from the report's per-page `model_calls` and `cached`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pymupdf
import pytest

from tests.paths import PDF_FIXTURES, REPO, shared_file

SAMPLE = REPO / "samples" / "report.pdf"
pytestmark = pytest.mark.slow


def command(args: list[str], model: Path, cache: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_HUB_OFFLINE": "1", "DOCPARSE_CACHE_DIR": str(cache)})
    model_args = ["--model", str(model), "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "12"]
    model_args += ["--max-retries", "0", "--max-pixels", "200704"]
    return [sys.executable, "-m", "docparse", *args, *model_args], env


def docparse(args: list[str], model: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    argv, env = command(args, model, cache)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def report(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_a_folder_of_fixtures_on_the_tiny_model_then_again_in_json_then_with_another_prompt(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    shared_file("fixtures", "pdfs", "MANIFEST.tsv")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    for name in ["broken-empty-0bytes.pdf", "enc-pdfplumber-pw-test.pdf", "blank-page-no-content.pdf",
                 "chem-maleimide-structure-tiny.pdf"]:  # fmt: skip
        shutil.copy(PDF_FIXTURES / name, docs / name)
    (docs / "notes.pdf").write_text("not a PDF\n")
    shutil.copy(SAMPLE, docs / "sub" / "report.pdf")
    cache, out, rep = tmp_path / "cache", tmp_path / "out", tmp_path / "report.json"

    proc = docparse([str(docs), "-o", str(out), "--report", str(rep)], tiny_model_dir, cache)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "\x1b" not in proc.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.md")) == [
        "blank-page-no-content.md",
        "chem-maleimide-structure-tiny.md",
        "sub/report.md",
    ]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("docparse: error:")]
    assert len(errors) == 3, proc.stderr
    first = report(rep)
    failed = {Path(f["input"]).name for f in first["files"] if f["status"] == "failed"}
    assert failed == {"broken-empty-0bytes.pdf", "enc-pdfplumber-pw-test.pdf", "notes.pdf"}
    assert all(f["error"] for f in first["files"] if f["status"] == "failed")
    assert first["totals"]["model_calls"] == 2 and first["totals"]["pages_cached"] == 0

    proc = docparse([str(docs), "-o", str(out), "--to", "json", "--report", str(rep)], tiny_model_dir, cache)
    assert proc.returncode == 1, proc.stderr
    assert "loading" not in proc.stderr  # every page came from the cache: the model was not even loaded
    again = report(rep)
    assert again["totals"]["model_calls"] == 0 and again["totals"]["pages_cached"] == 2
    md_json = json.loads((out / "sub" / "report.json").read_text())
    assert (
        md_json["pages"][0]["generation"]["tokens_out"]
        == next(f for f in first["files"] if f["input"].endswith("report.pdf"))["pages"][0]["tokens_out"]
    )

    proc = docparse([str(docs), "-o", str(out), "--report", str(rep), "--prompt", "QwenVL HTML"], tiny_model_dir, cache)
    assert proc.returncode == 1, proc.stderr
    assert report(rep)["totals"]["model_calls"] == 2  # a new prompt: every page asks the model again


def many_pages(path: Path, count: int) -> Path:
    doc = pymupdf.open()
    for i in range(count):
        page = doc.new_page(width=300, height=400)
        for line in range(8):
            page.insert_text((30, 50 + 30 * line), f"Page {i + 1}, line {line + 1}: some words", fontsize=11)
    doc.save(path)
    return path


def kill_after_answers(proc: subprocess.Popen[str], answers: Path, count: int, seconds: float) -> None:
    """SIGKILL a running docparse once the page cache's `answers` folder holds `count` answers (within `seconds`)."""
    deadline = time.monotonic() + seconds
    try:
        while len(list(answers.glob("*/*.json"))) < count:
            assert proc.poll() is None, (
                f"finished before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
            )
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)


def test_a_run_killed_with_sigkill_resumes_with_only_the_missing_model_calls(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    many_pages(docs / "long.pdf", 5)
    shutil.copy(SAMPLE, docs / "short.pdf")
    cache, out = tmp_path / "cache", tmp_path / "out"
    # One page per call, so that the kill lands between answers (auto would send all six pages at once).
    argv, env = command([str(docs), "-o", str(out), "-q", "--batch-size", "1"], tiny_model_dir, cache)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    answers = cache / "answers"
    kill_after_answers(proc, answers, 2, seconds=240)
    assert proc.returncode == -signal.SIGKILL
    held = len(list(answers.glob("*/*.json")))
    assert 2 <= held < 6
    assert not (out / "long.md").exists()  # no partial output: the long document was not complete
    rep = tmp_path / "resume.json"
    resumed = docparse([str(docs), "-o", str(out), "--report", str(rep), "--batch-size", "1"], tiny_model_dir, cache)
    assert resumed.returncode == 0, resumed.stderr
    totals = report(rep)["totals"]
    assert totals["model_calls"] == 6 - held and totals["pages_cached"] == held

    fresh_out, fresh_rep = tmp_path / "fresh", tmp_path / "fresh.json"
    fresh_args = [str(docs), "-o", str(fresh_out), "--report", str(fresh_rep), "--batch-size", "1"]
    fresh = docparse(fresh_args, tiny_model_dir, tmp_path / "c2")
    assert fresh.returncode == 0, fresh.stderr
    assert report(fresh_rep)["totals"]["model_calls"] == 6
    for name in ("long.md", "short.md"):
        assert (out / name).read_text() == (fresh_out / name).read_text()
