"""GGUF models without llama.cpp: told from checkpoints, a repository's files picked, offline and usage errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from docparse.engines.choice import is_gguf_model
from docparse.engines.gguf import DEFAULT_GGUF_REPO, gguf_identity, pick_files
from docparse.errors import ModelUnavailableError, UsageError
from docparse.keywords import convert_options
from tests.gguf_model import require_llama_cpp
from tests.paths import REPO

# The files of ggml-org/Qwen2.5-VL-3B-Instruct-GGUF, as that repository names them.
RELEASE = [
    ".gitattributes",
    "README.md",
    "Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf",
    "Qwen2.5-VL-3B-Instruct-Q8_0.gguf",
    "Qwen2.5-VL-3B-Instruct-f16.gguf",
    "mmproj-Qwen2.5-VL-3B-Instruct-Q8_0.gguf",
    "mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf",
]


def test_the_quant_picks_the_model_file_and_the_projector() -> None:
    assert pick_files(RELEASE, "Q4_K_M", "r") == (
        "Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf",
        "mmproj-Qwen2.5-VL-3B-Instruct-f16.gguf",  # no Q4_K_M projector: the most precise one
    )
    assert pick_files(RELEASE, "q8_0", "r") == (
        "Qwen2.5-VL-3B-Instruct-Q8_0.gguf",
        "mmproj-Qwen2.5-VL-3B-Instruct-Q8_0.gguf",
    )
    with pytest.raises(
        ModelUnavailableError, match=r"no GGUF file for --quant Q5_K_M; the repository offers: Q4_K_M, Q8_0, f16"
    ):
        pick_files(RELEASE, "Q5_K_M", "r")
    with pytest.raises(ModelUnavailableError, match="no vision projector"):
        pick_files([n for n in RELEASE if "mmproj" not in n], "Q4_K_M", "r")
    # Q4_K is not Q4_K_M: a quant matches as a whole word.
    assert pick_files([*RELEASE, "x-Q4_K_M_L.gguf"], "Q4_K_M", "r")[0] == "Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf"


def test_gguf_models_are_told_from_checkpoints(tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert is_gguf_model(str(weights)) and is_gguf_model(DEFAULT_GGUF_REPO) and is_gguf_model("a/b.gguf")
    assert is_gguf_model("Qwen/Qwen2.5-VL-3B-Instruct", mmproj="m.gguf")
    assert not is_gguf_model("Qwen/Qwen2.5-VL-3B-Instruct") and not is_gguf_model(str(tmp_path))


def test_the_cache_key_names_the_file_or_the_repository_and_quant(tmp_path: Path) -> None:
    model, mmproj = tmp_path / "m.gguf", tmp_path / "p.gguf"
    model.write_bytes(b"GGUF one")
    mmproj.write_bytes(b"GGUF two")
    local = gguf_identity(str(model), str(mmproj), "Q4_K_M", None)
    other = tmp_path / "m2.gguf"
    other.write_bytes(b"GGUF three")
    assert local != gguf_identity(str(other), str(mmproj), "Q4_K_M", None)
    assert local == gguf_identity(str(model), str(mmproj), "Q8_0", None)  # --quant does not pick a local file
    hub = gguf_identity("Qwen/Qwen2.5-VL-3B-Instruct", None, "q4_k_m", None)
    assert hub["model"] == DEFAULT_GGUF_REPO and hub["quant"] == "Q4_K_M"
    assert hub != gguf_identity(DEFAULT_GGUF_REPO, None, "Q8_0", None)


def test_engine_options_given_to_another_engine_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="--mmproj and --threads only apply to --engine llamacpp"):
        convert_options(engine="transformers", mmproj="p.gguf")
    assert convert_options(mmproj="p.gguf").engine == "llamacpp"  # auto: a projector means a GGUF model
    with pytest.raises(UsageError, match="--quantize int8 applies to --engine transformers"):
        convert_options(engine="llamacpp", quantize="int8")
    with pytest.raises(UsageError, match="--api-base"):
        convert_options(engine="llamacpp", api_base="http://x/v1")


def docparse(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "docparse", str(REPO / "samples" / "report.pdf"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_uncached_repository_offline_is_one_line_and_exit_3(tmp_path: Path) -> None:
    require_llama_cpp()  # else the engine reports the missing library first
    done = docparse(["--engine", "llamacpp"], tmp_path)
    assert done.returncode == 3
    [line] = [x for x in done.stderr.splitlines() if "error" in x]
    assert f"model {DEFAULT_GGUF_REPO} could not be had" in line and "HF_HUB_OFFLINE is set" in line
    assert "--model MODEL.gguf --mmproj MMPROJ.gguf" in line and "Traceback" not in done.stderr


def test_a_gguf_file_without_its_projector_is_a_usage_error(tmp_path: Path) -> None:
    require_llama_cpp()  # else the engine reports the missing library first
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    done = docparse(["--engine", "llamacpp", "--model", str(model)], tmp_path)
    assert done.returncode == 2 and "give its vision projector with --mmproj" in done.stderr
    done = docparse(["--engine", "llamacpp", "--model", str(model), "--mmproj", str(tmp_path / "none.gguf")], tmp_path)
    assert done.returncode == 3 and "no such file" in done.stderr
