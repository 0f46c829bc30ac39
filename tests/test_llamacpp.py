"""--engine llamacpp with the real llama-cpp-python on the tiny random Qwen2.5-VL converted by llama.cpp's converter.

The random model's text is noise; what is asserted is what a user relies on: the same answer as the
transformers engine for the same weights (so the prompt, the image and its positions reach the model
as they do there), the image size checked from the token grid mtmd reports, pages decoded together
answering as they do alone, loops stopped while generating, seeded sampling, and the CLI on fixture PDFs
(pages, sizes, generation records, cache, exit codes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from docparse.config import ModelOptions, RasterOptions
from docparse.engines.base import GenerationSettings
from docparse.errors import EngineError
from tests.gguf_model import build_gguf_model
from tests.paths import PDF_FIXTURES, REPO, shared_file

pytestmark = pytest.mark.slow
MAX_NEW = 24


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return build_gguf_model(tmp_path_factory.mktemp("tiny-gguf"))


@pytest.fixture(scope="module")
def looping_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    # At Qwen's own init scale the random model writes one token forever under greedy decoding.
    return build_gguf_model(tmp_path_factory.mktemp("looping-gguf"), init_std=0.02)


def engine(files: tuple[Path, Path, Path], raster: RasterOptions | None = None, **options: object) -> object:
    from docparse.engines.llamacpp import load_llamacpp_engine

    _, model, mmproj = files
    fields: dict[str, object] = {"max_new_tokens": MAX_NEW, "threads": 2, **options}
    return load_llamacpp_engine(
        ModelOptions(model=str(model), mmproj=str(mmproj), **fields),  # type: ignore[arg-type]
        raster or RasterOptions(),
    )


@pytest.fixture(scope="module")
def llama(gguf: tuple[Path, Path, Path]) -> Iterator[object]:
    e = engine(gguf)
    yield e
    e.close()  # type: ignore[attr-defined]


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_same_answers_as_the_transformers_engine(gguf: tuple[Path, Path, Path], llama: object) -> None:
    from docparse.engines.transformers import load_engine

    checkpoint, _, _ = gguf
    hf = load_engine(ModelOptions(model=str(checkpoint), device="cpu", dtype="float32", max_new_tokens=MAX_NEW))
    images = [noise(28 * 16, 28 * 20), Image.new("RGB", (28 * 10, 28 * 12), "white"), noise(28 * 12, 28 * 8, 1)]
    want = [hf.generate([im])[0] for im in images]
    got = [llama.generate([im])[0] for im in images]  # type: ignore[attr-defined]
    # The retry ladder's repetition penalty means the same in both (over the prompt's and the answer's tokens).
    penalty = GenerationSettings(repetition_penalty=1.5)
    want.append(hf.generate(images[:1], penalty)[0])
    got.append(llama.generate(images[:1], penalty)[0])  # type: ignore[attr-defined]
    assert got[-1].text != got[0].text
    images.append(images[0])
    for w, g, im in zip(want, got, images, strict=True):
        assert g.text == w.text and len(g.text) > 0
        # Same prompt length: the chat template's text plus (h/28)*(w/28) image tokens.
        assert g.generation.tokens_in == w.generation.tokens_in
        assert g.generation.tokens_in > (im.width // 28) * (im.height // 28)
        assert (g.generation.tokens_out, g.generation.finish_reason) == (
            w.generation.tokens_out,
            w.generation.finish_reason,
        )
    hf.close()


def test_pages_decoded_together_answer_as_they_do_alone(llama: object) -> None:
    images = [noise(28 * 16, 28 * 20, 2), noise(28 * 8, 28 * 8, 3), Image.new("RGB", (28 * 12, 28 * 10), "gray")]
    alone = [llama.generate([im])[0].text for im in images]  # type: ignore[attr-defined]
    steps = llama.decode_steps  # type: ignore[attr-defined]
    together = llama.generate(images)  # type: ignore[attr-defined]
    # llama.cpp's kernels for several rows round differently from its one-row kernels: the random model's
    # near-tied logits may flip a late token (seen once at token 22 of 24), so the answers' starts are compared.
    assert [a.text[:12] for a in together] == [t[:12] for t in alone]
    assert sum(a.text == t for a, t in zip(together, alone, strict=True)) >= 2
    # One decode step served every page in flight: no more steps than the longest answer.
    assert llama.decode_steps - steps <= max(a.generation.tokens_out for a in together)  # type: ignore[attr-defined]


def test_an_image_llama_cpp_would_resize_fails_with_a_clear_message(gguf: tuple[Path, Path, Path]) -> None:
    # llama.cpp's bounds follow docparse's: an image above --max-pixels would be shrunk, one off the 28 grid rounded.
    small = engine(gguf, RasterOptions(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16))
    with pytest.raises(EngineError, match=r"did not take the 560x560 page image as is: it made 4x4 \(16 tokens\)"):
        small.generate([noise(28 * 20, 28 * 20)])  # type: ignore[attr-defined]
    with pytest.raises(EngineError, match="did not take the 300x280 page image as is"):
        small.generate([noise(300, 280)])  # type: ignore[attr-defined]
    [ok] = small.generate([noise(28 * 4, 28 * 4)])  # type: ignore[attr-defined]
    assert ok.generation.tokens_in > 16
    small.close()  # type: ignore[attr-defined]


def test_a_looping_page_is_stopped_while_generating(looping_gguf: tuple[Path, Path, Path]) -> None:
    looping = engine(looping_gguf, max_new_tokens=600)
    [free] = looping.generate([noise(56, 56)], GenerationSettings(stop_on_repetition=False, max_new_tokens=240))  # type: ignore[attr-defined]
    assert (free.generation.finish_reason, free.generation.tokens_out) == ("length", 240)
    [stopped] = looping.generate([noise(56, 56)])  # type: ignore[attr-defined]
    assert stopped.generation.finish_reason == "repetition"
    assert stopped.generation.tokens_out < 200
    # Seeded sampling is reproducible and gets away from the loop; a penalty changes the answer.
    hot = GenerationSettings(temperature=1.0, seed=3, max_new_tokens=24)
    a, b = looping.generate([noise(56, 56)], hot), looping.generate([noise(56, 56)], hot)  # type: ignore[attr-defined]
    assert a[0].text == b[0].text and a[0].generation.finish_reason == "length"
    # The time budget stops the call.
    [late] = looping.generate([noise(56, 56)], GenerationSettings(time_limit=1e-9, stop_on_repetition=False))  # type: ignore[attr-defined]
    assert late.generation.finish_reason == "time"
    looping.close()  # type: ignore[attr-defined]


def docparse(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(REPO)  # this checkout's docparse, wherever the venv's is installed from
    return subprocess.run(
        [sys.executable, "-m", "docparse", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_fixture_pdfs_through_the_cli(gguf: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, model, mmproj = gguf
    pdf = shared_file("fixtures", "pdfs", "math-code-and-formula.pdf")
    second = PDF_FIXTURES / "cjk-multilang-hello-world.pdf"
    args = ["--engine", "llamacpp", "--model", str(model), "--mmproj", str(mmproj), "--threads", "2"]
    args += ["--max-new-tokens", str(MAX_NEW), "--max-retries", "0", "--to", "json", "-o", str(tmp_path / "out")]
    report = tmp_path / "report.json"
    done = docparse([str(pdf), str(second), *args, "--pages", "1", "--report", str(report)], tmp_path)
    assert done.returncode == 0, done.stderr
    for name, pages in (("math-code-and-formula", 1), ("cjk-multilang-hello-world", 1)):
        doc = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert len(doc["pages"]) == pages
        meta = doc["metadata"]
        assert (meta["engine"], meta["quant"], meta["model"]) == ("llamacpp", None, str(model))
        for page in doc["pages"]:
            w, h = page["image_size"]
            assert w % 28 == 0 and h % 28 == 0 and abs(w / h - page["width"] / page["height"]) < 0.05
            gen = page["generation"]
            assert gen["tokens_in"] > (w // 28) * (h // 28)  # the whole image reached the model, unresized
            assert 1 <= gen["tokens_out"] <= MAX_NEW and gen["finish_reason"] in ("stop", "length")
    pages = [p for f in json.loads(report.read_text())["files"] for p in f["pages"]]
    assert len(pages) == 2 and all(p["model_calls"] == 1 for p in pages)
    # Again: every answer comes from the page cache (threads are not part of its key).
    again = docparse(
        [str(pdf), str(second), *args, "--pages", "1", "--threads", "1", "--report", str(report)], tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert all(p["model_calls"] == 0 for f in json.loads(report.read_text())["files"] for p in f["pages"])


def test_a_looping_page_through_the_cli(looping_gguf: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, model, mmproj = looping_gguf
    pdf = shared_file("fixtures", "pdfs", "math-code-and-formula.pdf")
    out = tmp_path / "out.json"
    args = ["--engine", "llamacpp", "--model", str(model), "--mmproj", str(mmproj), "--max-retries", "0"]
    done = docparse([str(pdf), "--pages", "1", "--max-new-tokens", "600", *args, "-o", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    [page] = json.loads(out.read_text())["pages"]
    assert page["status"] == "repetition" and page["generation"]["finish_reason"] == "repetition"
    assert page["generation"]["tokens_out"] < 400
