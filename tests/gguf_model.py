"""The tiny random Qwen2.5-VL as GGUF files for --engine llamacpp, made by llama.cpp's own converter.

The converter is not on PyPI: it ships in llama-cpp-python's source distribution (vendor/llama.cpp).
Tests find that tree at $DOCPARSE_LLAMA_CPP_SOURCE, else at test-artifacts/llama.cpp in the checkout,
where .ci/run unpacks it (README "Running the tests"). Without it, or without llama_cpp, the tests
skip locally and fail under CI=true (tests.requires.unavailable).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO
from tests.requires import unavailable
from tests.tiny_model import INIT_STD, build_serving_model

CI_HINT = ".ci/run installs llama-cpp-python and unpacks its source to test-artifacts/llama.cpp"
# llama.cpp's converter maps the vision merger's layers by block number: it needs at least 3 blocks.
VISION_DEPTH = 4


def llama_cpp_source() -> Path:
    """llama.cpp's source tree (convert_hf_to_gguf.py, conversion/, gguf-py/), or skip the test."""
    source = Path(os.environ.get("DOCPARSE_LLAMA_CPP_SOURCE") or REPO / "test-artifacts" / "llama.cpp")
    if not (source / "convert_hf_to_gguf.py").is_file() or not (source / "gguf-py").is_dir():
        unavailable(f"llama.cpp's converter is not at {source} (set DOCPARSE_LLAMA_CPP_SOURCE)", CI_HINT)
    return source


def require_llama_cpp() -> None:
    """Skip (locally) or fail (CI) unless llama-cpp-python with its mtmd library imports."""
    if importlib.util.find_spec("llama_cpp") is None:
        unavailable("llama-cpp-python is not installed (pip install 'docparse[llamacpp]')", CI_HINT)
    try:
        from llama_cpp import mtmd_cpp  # noqa: F401
    except (ImportError, OSError) as exc:
        unavailable(f"llama-cpp-python's mtmd library does not load: {exc}", CI_HINT)


def build_gguf_model(folder: Path, init_std: float = INIT_STD) -> tuple[Path, Path, Path]:
    """The tiny checkpoint (with a chat template) at folder/hf and its GGUF files: (checkpoint, model, mmproj)."""
    require_llama_cpp()
    source = llama_cpp_source()
    checkpoint = folder / "hf"
    build_serving_model(checkpoint, vision_depth=VISION_DEPTH, init_std=init_std)
    out = folder / "gguf"
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "gguf_convert.py"), str(source), str(checkpoint), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return checkpoint, out / "model.gguf", out / "mmproj.gguf"
