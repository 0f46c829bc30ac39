"""--quantize int8: the transformers engine with torch's dynamic int8 Linear layers, on the tiny random Qwen2.5-VL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from docparse.config import ModelOptions
from docparse.engines.cpu_dtypes import vision_dtype
from docparse.engines.transformers import load_engine
from docparse.errors import UsageError
from tests.paths import REPO, shared_file

MAX_NEW = 16


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_int8_replaces_every_linear_layer_and_still_answers(tiny_model_dir: Path) -> None:
    options = ModelOptions(model=str(tiny_model_dir), device="cpu", max_new_tokens=MAX_NEW)
    plain = load_engine(options)
    int8 = load_engine(ModelOptions(model=str(tiny_model_dir), device="cpu", max_new_tokens=MAX_NEW, quantize="int8"))
    linear = [m for m in int8.model.modules() if type(m) is torch.nn.Linear]
    quantized = [m for m in int8.model.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__]
    assert not linear and len(quantized) == sum(type(m) is torch.nn.Linear for m in plain.model.modules())
    images = [noise(56, 84), noise(112, 56, 1)]
    answers = int8.generate(images)
    reference = plain.generate(images)
    for a, r, im in zip(answers, reference, images, strict=True):
        assert a.generation.tokens_in == r.generation.tokens_in > (im.width // 28) * (im.height // 28)
        assert 1 <= a.generation.tokens_out <= MAX_NEW and a.text
    # int8 rounds the weights: on the random model the answers drift from float32's but share their start.
    assert sum(a.text[:2] == r.text[:2] for a, r in zip(answers, reference, strict=True)) >= 1
    plain.close()
    int8.close()


def test_int8_stops_a_loop(tmp_path: Path) -> None:
    from tests.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path / "looping", init_std=0.02)
    engine = load_engine(ModelOptions(model=str(folder), device="cpu", max_new_tokens=600, quantize="int8"))
    [answer] = engine.generate([noise(56, 56)])
    assert answer.generation.finish_reason == "repetition" and answer.generation.tokens_out < 200
    engine.close()


def test_int8_needs_a_cpu_and_float32(tiny_model_dir: Path) -> None:
    with pytest.raises(UsageError, match="leave --dtype out"):
        load_engine(ModelOptions(model=str(tiny_model_dir), device="cpu", dtype="bfloat16", quantize="int8"))


def test_the_vision_encoder_stays_float32_where_auto_picks_bfloat16() -> None:
    assert vision_dtype("cpu", "auto", torch.bfloat16) == torch.float32
    assert vision_dtype("cpu", "bfloat16", torch.bfloat16) == torch.bfloat16  # asked for: the whole model
    assert vision_dtype("cuda", "auto", torch.bfloat16) == torch.bfloat16
    assert vision_dtype("cpu", "auto", torch.float32) == torch.float32


@pytest.mark.slow
def test_a_fixture_pdf_with_int8_records_it_and_keys_the_cache_on_it(tiny_model_dir: Path, tmp_path: Path) -> None:
    pdf = shared_file("fixtures", "pdfs", "math-code-and-formula.pdf")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    report = tmp_path / "report.json"
    out = tmp_path / "out.json"

    def run(*extra: str) -> list[dict[str, object]]:
        args = [str(pdf), "--model", str(tiny_model_dir), "--device", "cpu", "--max-new-tokens", str(MAX_NEW)]
        args += ["--max-retries", "0", "--pages", "1-2", "-o", str(out), "--report", str(report), *extra]
        done = subprocess.run(
            [sys.executable, "-m", "docparse", *args], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        return [p for f in json.loads(report.read_text())["files"] for p in f["pages"]]

    assert all(p["model_calls"] == 1 for p in run("--quantize", "int8"))
    doc = json.loads(out.read_text())
    assert doc["metadata"]["quantize"] == "int8" and len(doc["pages"]) == 2
    for page in doc["pages"]:
        w, h = page["image_size"]
        assert w % 28 == 0 and h % 28 == 0 and page["generation"]["tokens_in"] > (w // 28) * (h // 28)
    assert all(p["model_calls"] == 0 for p in run("--quantize", "int8"))  # cached
    assert all(p["model_calls"] == 1 for p in run())  # float32 answers are other answers
    assert "quantize" not in json.loads(out.read_text())["metadata"]
