"""The server engine against a real `transformers serve` process running the tiny model on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from PIL import Image

from docparse.config import ModelOptions, RasterOptions, ServerOptions
from docparse.engines.base import GenerationSettings
from docparse.engines.openai import open_openai_engine
from docparse.errors import ModelUnavailableError
from docparse.inputs.rasterize import open_input
from docparse.prompt import DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT, chat_text, image_token_count
from tests.fake_openai import RecordingProxy, image_of, serving
from tests.paths import REPO
from tests.serving import SERVE_PYTHON, free_port, serve_command
from tests.test_cli import run_cli

SAMPLE = REPO / "samples" / "report.pdf"
# `transformers serve` loads AutoProcessor, whose video processor needs torchvision: it runs from a
# venv of its own (.ci/run makes it) so that the main venv keeps the CPU build of torch.
START_TIMEOUT = 240.0

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Served:
    model_dir: Path
    base: str
    port: int
    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`transformers serve` pinned to the tiny checkpoint, started for this module and stopped after it."""
    if not SERVE_PYTHON.exists():
        pytest.skip(
            f"{SERVE_PYTHON} is absent: these tests run `transformers serve` from a venv with torchvision "
            "(.ci/run creates .venv-serve; or set DOCPARSE_SERVE_PYTHON)"
        )
    from tests.tiny_model import build_serving_model

    folder = tmp_path_factory.mktemp("serve")
    model_dir = build_serving_model(folder / "tiny")
    port = free_port()
    log = folder / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = serve_command(model_dir, port)
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx2.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start in {START_TIMEOUT:.0f} s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield Served(model_dir, base, port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def proxy(served: Served) -> Iterator[tuple[RecordingProxy, str]]:
    recorder = RecordingProxy(("127.0.0.1", served.port))
    with serving(recorder.handler()) as base:
        yield recorder, base


def test_cli_page_reaches_the_server_as_the_local_engine_sends_it(
    served: Served, proxy: tuple[RecordingProxy, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder, base = proxy
    out = tmp_path / "report.json"
    raw = tmp_path / "raw"
    args = [str(SAMPLE), "--pages", "1", "-o", str(out), "--engine", "openai", "--api-base", base]
    args += ["--model", str(served.model_dir), "--max-new-tokens", "24", "--max-retries", "0", "--keep-raw", str(raw)]
    code, _, err = run_cli([*args, "-q"], capsys)
    assert code == 0, err

    # Two calibration requests (one token each), then the page.
    assert [b["max_tokens"] for b in recorder.bodies] == [1, 1, 24]
    body = recorder.bodies[-1]
    system, user = body["messages"]
    assert system["content"] == DEFAULT_SYSTEM_PROMPT
    assert [p["type"] for p in user["content"]] == ["text", "image_url"]
    assert user["content"][0]["text"] == DEFAULT_PROMPT
    assert body["temperature"] == 0.0 and body["model"] == str(served.model_dir)

    # The image the server received is, pixel for pixel, the page docparse rendered.
    with open_input(SAMPLE, RasterOptions(pages=((1, 1),))) as doc:
        rendered = next(iter(doc.pages())).image
    received = image_of(body)
    assert received.size == rendered.size
    assert received.tobytes() == rendered.convert("RGB").tobytes()

    # The server's prompt is token for token the local engine's: same text, same image token count.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(served.model_dir)
    width, height = rendered.size
    local = chat_text(DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT, "<|image_pad|>" * image_token_count(width, height))
    local_tokens = len(tokenizer(local, add_special_tokens=False)["input_ids"])
    usage = recorder.answers[-1]["usage"]
    assert usage["prompt_tokens"] == local_tokens

    page = json.loads(out.read_text())["pages"][0]
    assert page["image_size"] == [width, height]
    generation = page["generation"]
    assert generation["tokens_in"] == local_tokens
    assert generation["tokens_out"] == usage["completion_tokens"]
    assert generation["model"] == str(served.model_dir)
    # The answer is what the local engine writes for the same page (greedy decoding, same weights).
    from docparse.engines.transformers import load_engine

    engine = load_engine(ModelOptions(model=str(served.model_dir), max_new_tokens=24, device="cpu"))
    [answer] = engine.generate([rendered])
    engine.close()
    saved = (raw / "report.page-0001.html").read_text()
    assert saved == answer.text
    # 24 tokens cut this answer: "length", recorded as the local engine records a cut answer.
    assert generation["finish_reason"] == answer.generation.finish_reason == "length"
    assert page["status"] != "ok"
    assert any("cut at 24 new tokens" in w for w in page["warnings"])


def test_engine_on_the_real_server_settings_concurrency_and_sizes(served: Served) -> None:
    engine = open_openai_engine(
        ModelOptions(model=str(served.model_dir), max_new_tokens=8),
        ServerOptions(api_base=served.base, concurrency=2),
        RasterOptions(),
    )
    try:
        sizes = [(28 * 20, 28 * 26), (28 * 30, 28 * 16), (28 * 16, 28 * 16)]
        images = [Image.new("RGB", size, (255, 255 - 40 * i, 255)) for i, size in enumerate(sizes)]
        answers = engine.generate(images)
        assert [a.generation.tokens_in for a in answers] == [
            engine.calibration.text_tokens + image_token_count(w, h) for w, h in sizes
        ]
        assert all(a.generation.tokens_out <= 8 for a in answers)
        # transformers serve refuses repetition_penalty (a vLLM extra) with 422: the engine drops it.
        [retried] = engine.generate(
            [images[0]], GenerationSettings(repetition_penalty=1.3, temperature=0.7, seed=3, max_new_tokens=4)
        )
        assert retried.generation.tokens_out <= 4
        assert engine._rejects_extras
    finally:
        engine.close()


def test_a_model_the_server_does_not_serve_is_refused(served: Served) -> None:
    with pytest.raises(ModelUnavailableError, match=r"does not serve 'Qwen/Qwen2\.5-VL-7B-Instruct'") as info:
        open_openai_engine(
            ModelOptions(model="Qwen/Qwen2.5-VL-7B-Instruct"), ServerOptions(api_base=served.base), RasterOptions()
        )
    assert str(served.model_dir) in str(info.value)
