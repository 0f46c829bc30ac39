"""The server engine against local scripted servers: the request it sends, retries, timeouts, faults, startup errors."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pymupdf
import pytest
from PIL import Image, ImageDraw

from docparse.config import ModelOptions, RasterOptions, ServerOptions
from docparse.engines.base import GenerationSettings
from docparse.engines.open import open_engine
from docparse.engines.openai import OpenAIEngine, calibration_sizes, open_openai_engine
from docparse.engines.openai_http import retry_after
from docparse.errors import EngineError, ModelUnavailableError, UsageError
from docparse.inputs.rasterize import open_input
from docparse.keywords import convert_options
from docparse.prompt import DEFAULT_MAX_NEW_TOKENS, DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT
from tests.fake_openai import TEXT_TOKENS, FakeServer, fake_server, image_of
from tests.test_cli import assert_one_line_error, run_cli

MODEL = ModelOptions(model="tiny")


def page(shade: int, size: tuple[int, int] = (560, 728)) -> Image.Image:
    """A page image whose top-left pixel's red value is `shade` (the fake server keys faults on it)."""
    image = Image.new("RGB", size, (255, 255, 255))
    image.putpixel((0, 0), (shade, 10, 20))
    for x in range(0, size[0], 7):
        image.putpixel((x, size[1] // 2), (x % 256, 0, 0))
    return image


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def base(server: FakeServer) -> Iterator[str]:
    with fake_server(server) as address:
        yield address


class SleepRecorder:
    """Stands in for time.sleep in the engine: records the waits asked for, waits not at all."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def engine_at(base: str, **server: object) -> tuple[OpenAIEngine, SleepRecorder]:
    options = ServerOptions(api_base=base, **server)  # type: ignore[arg-type]
    engine = open_openai_engine(MODEL, options, RasterOptions())
    sleeps = SleepRecorder()
    engine.sleep = sleeps
    return engine, sleeps


def test_request_is_the_local_prompt_with_the_image_as_sent(server: FakeServer, base: str) -> None:
    engine, _ = engine_at(base)
    sent = page(3)
    [answer] = engine.generate([sent])
    engine.close()
    [request] = server.pages()
    body = request.body
    assert body is not None
    assert body["model"] == "tiny"
    system, user = body["messages"]
    assert system == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    # Text, then image: the order of docparse.prompt.chat_text and the local engine.
    assert user["role"] == "user"
    assert [part["type"] for part in user["content"]] == ["text", "image_url"]
    assert user["content"][0]["text"] == DEFAULT_PROMPT
    received = image_of(body)
    assert received.size == sent.size
    assert received.tobytes() == sent.tobytes()  # lossless, not resampled
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == DEFAULT_MAX_NEW_TOKENS
    assert "seed" not in body and "repetition_penalty" not in body
    g = answer.generation
    assert (g.model, g.prompt, g.finish_reason) == ("tiny", DEFAULT_PROMPT, "stop")
    assert g.tokens_in == TEXT_TOKENS + (560 // 28) * (728 // 28)
    assert g.tokens_out == 17
    assert answer.text.startswith("<html><body><p data-bbox=")


def test_calibration_measures_the_text_tokens_at_both_pixel_bounds(server: FakeServer, base: str) -> None:
    engine, _ = engine_at(base)
    engine.close()
    assert engine.calibration.text_tokens == TEXT_TOKENS
    sizes = [s.size for s in server.seen if s.body is not None and s.body["max_tokens"] == 1]
    assert sizes == list(calibration_sizes(RasterOptions()))
    (w0, h0), (w1, h1) = sizes
    assert w0 * h0 >= RasterOptions().min_pixels and w1 * h1 <= RasterOptions().max_pixels
    assert all(side % 28 == 0 for size in sizes for side in size)


def test_settings_reach_the_request(server: FakeServer, base: str) -> None:
    engine, _ = engine_at(base)
    engine.generate([page(1)], GenerationSettings(max_new_tokens=99, temperature=0.7, seed=5, repetition_penalty=1.3))
    engine.close()
    body = server.pages()[0].body
    assert body is not None
    assert (body["max_tokens"], body["temperature"], body["seed"], body["repetition_penalty"]) == (99, 0.7, 5, 1.3)


def test_a_server_that_rejects_repetition_penalty_gets_the_request_without_it(base: str) -> None:
    server = FakeServer(reject_fields=("repetition_penalty",))
    with fake_server(server) as address:
        engine, _ = engine_at(address)
        [answer] = engine.generate([page(1)], GenerationSettings(repetition_penalty=1.3))
        engine.generate([page(2)], GenerationSettings(repetition_penalty=1.3))
        engine.close()
    assert answer.text
    assert [s.body is not None and "repetition_penalty" in s.body for s in server.pages()] == [False, False]


def test_finish_reason_length_is_truncation(server: FakeServer, base: str) -> None:
    server.fault_by_pixel = {1: ["length"]}
    engine, _ = engine_at(base)
    answers = engine.generate([page(1), page(2)])
    engine.close()
    assert [a.generation.finish_reason for a in answers] == ["length", "stop"]


def test_429_waits_as_retry_after_says(server: FakeServer, base: str) -> None:
    server.faults = {1: "429"}
    engine, sleeps = engine_at(base)
    [answer] = engine.generate([page(1)])
    engine.close()
    assert answer.text
    assert [s.fault for s in server.pages()] == ["429", None]
    assert sleeps.waits == [1.0]
    assert engine.retries == 1


@pytest.mark.parametrize("fault", ["500", "503", "drop", "garbage"])
def test_server_errors_and_dropped_connections_are_retried_with_backoff(
    server: FakeServer, base: str, fault: str
) -> None:
    server.faults = {1: fault, 2: fault, 3: fault}
    engine, sleeps = engine_at(base)
    [answer] = engine.generate([page(1)])
    engine.close()
    assert answer.text.startswith("<html>")
    assert [s.fault for s in server.pages()] == [fault, fault, fault, None]
    # Full jitter: each wait lies between 0 and 0.5 s * 2**try.
    assert len(sleeps.waits) == 3
    assert all(0 <= w <= 0.5 * 2**i for i, w in enumerate(sleeps.waits))


def test_retries_run_out_into_one_line_engine_error(server: FakeServer, base: str) -> None:
    server.faults = dict.fromkeys(range(1, 10), "500")
    engine, sleeps = engine_at(base, retries=2)
    with pytest.raises(EngineError) as info:
        engine.generate([page(1)])
    engine.close()
    message = str(info.value)
    assert "after 3 tries" in message and "HTTP 500" in message and "engine overloaded" in message
    assert "\n" not in message
    assert len(server.pages()) == 3 and len(sleeps.waits) == 2


def test_a_request_past_the_timeout_fails_alone_and_the_rest_of_the_call_completes(server: FakeServer) -> None:
    server.fault_by_pixel = {2: ["slow"]}
    server.slow_seconds = 3.0
    with fake_server(server) as address:
        engine, _ = engine_at(address, timeout=0.5, concurrency=2)
        with pytest.raises(EngineError, match=r"no answer within 0\.5 s \(--timeout\)"):
            engine.generate([page(1), page(2), page(3)])
        engine.close()
    # Pages 1 and 3 were still sent and answered; the slow one was sent once (a timeout is not repeated).
    shades = sorted(image_of(s.body).getpixel((0, 0))[0] for s in server.pages() if s.body)  # type: ignore[index]
    assert shades == [1, 2, 3]
    assert [s.fault for s in server.pages()].count("slow") == 1


def test_the_page_time_budget_caps_the_wait(server: FakeServer, base: str) -> None:
    server.fault_by_pixel = {1: ["slow"]}
    engine, _ = engine_at(base)
    with pytest.raises(EngineError, match=r"no answer within the page time budget \(--page-timeout\)"):
        engine.generate([page(1)], GenerationSettings(time_limit=0.5))
    engine.close()


def test_a_resized_image_is_an_error_for_that_page(server: FakeServer, base: str) -> None:
    server.faults = {1: "resize"}
    engine, _ = engine_at(base)
    with pytest.raises(EngineError, match=r"did not take page image 560x728 as sent.*max_pixels"):
        engine.generate([page(1)])
    [answer] = engine.generate([page(2)])
    engine.close()
    assert answer.generation.finish_reason == "stop"


def test_a_server_with_smaller_pixel_bounds_is_refused_at_startup() -> None:
    server = FakeServer(shrink_above=1000 * 28 * 28)
    with fake_server(server) as address, pytest.raises(ModelUnavailableError) as info:
        open_openai_engine(MODEL, ServerOptions(api_base=address), RasterOptions())
    message = str(info.value)
    assert "resizes page images" in message and "--mm-processor-kwargs" in message
    assert f'"max_pixels": {RasterOptions().max_pixels}' in message


def test_concurrency_bounds_requests_in_flight_across_threads(server: FakeServer) -> None:
    server.latency = 0.2
    with fake_server(server) as address:
        engine, _ = engine_at(address, concurrency=3)
        results: list[list[str]] = []

        def call(first: int) -> None:
            answers = engine.generate([page(first + i) for i in range(4)])
            results.append([a.text for a in answers])

        threads = [threading.Thread(target=call, args=(10 * n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        engine.close()
    assert len(results) == 3 and all(len(r) == 4 for r in results)
    assert len(server.pages()) == 12
    assert server.most_in_flight == 3


def test_answers_keep_image_order(server: FakeServer) -> None:
    server.answer = lambda w, h: f"{w}x{h}"
    with fake_server(server) as address:
        engine, _ = engine_at(address, concurrency=4)
        sizes = [(560, 728), (28 * 30, 28 * 20), (28 * 16, 28 * 16), (28 * 40, 28 * 12), (588, 588)]
        answers = engine.generate([page(i, size) for i, size in enumerate(sizes)])
        engine.close()
    assert [a.text for a in answers] == [f"{w}x{h}" for w, h in sizes]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0", 0.0), ("1.5", 1.5), ("-4", 0.0), ("9999", 120.0), ("soon", None), (None, None)],
)
def test_retry_after_values(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


def test_retry_after_http_date() -> None:
    waited = retry_after("Wed, 21 Oct 2015 07:28:00 GMT")
    assert waited == 0.0  # a date in the past: retry now


# ---- startup: one clear line, exit 3 -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def png_input(tmp_path: Path) -> Path:
    path = tmp_path / "page.png"
    image = page(1, (700, 900))
    draw = ImageDraw.Draw(image)
    for row in range(8):
        draw.rectangle((60, 80 + 60 * row, 600, 100 + 60 * row), fill=(0, 0, 0))  # lines of "text"
    image.save(path)
    return path


def test_cli_down_server_is_exit_3_in_one_line(png_input: Path, capsys: pytest.CaptureFixture[str]) -> None:
    address = f"http://127.0.0.1:{free_port()}/v1"
    code, out, err = run_cli([str(png_input), "--engine", "openai", "--api-base", address, "-q"], capsys)
    assert code == 3 and out == ""
    assert_one_line_error(err)
    assert f"cannot reach the server at {address}" in err and "is it running?" in err


def test_cli_wrong_key_is_exit_3(
    png_input: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCPARSE_TEST_KEY", "wrong")
    with fake_server(FakeServer(key="right")) as address:
        args = [str(png_input), "--engine", "openai", "--api-base", address, "--served-model", "tiny", "-q"]
        code, _, err = run_cli([*args, "--api-key-env", "DOCPARSE_TEST_KEY"], capsys)
    assert code == 3
    assert_one_line_error(err)
    assert "refused the API key (HTTP 401" in err and "$DOCPARSE_TEST_KEY" in err
    assert "wrong" not in err


def test_cli_right_key_is_sent_from_the_named_variable(
    png_input: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCPARSE_TEST_KEY", "right")
    with fake_server(FakeServer(key="right")) as address:
        args = [str(png_input), "--engine", "openai", "--api-base", address, "--served-model", "tiny", "-q"]
        code, out, _ = run_cli([*args, "--api-key-env", "DOCPARSE_TEST_KEY"], capsys)
    assert code == 0 and "Page text" in out


def test_cli_unset_key_variable_is_a_usage_error(png_input: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_server(FakeServer()) as address:
        args = [str(png_input), "--engine", "openai", "--api-base", address, "--api-key-env", "DOCPARSE_UNSET_VAR_X"]
        code, _, err = run_cli(args, capsys)
    assert code == 2
    assert_one_line_error(err)
    assert "DOCPARSE_UNSET_VAR_X" in err and "not set" in err


def test_cli_unknown_model_lists_what_the_server_serves(png_input: Path, capsys: pytest.CaptureFixture[str]) -> None:
    served = ("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-72B-Instruct")
    with fake_server(FakeServer(models=served)) as address:
        code, _, err = run_cli([str(png_input), "--engine", "openai", "--api-base", address, "-q"], capsys)
        code_one, _, err_one = run_cli(
            [
                str(png_input),
                "--engine",
                "openai",
                "--api-base",
                address,
                "--model",
                "Qwen/Qwen2.5-VL-3B-Instruct",
                "-q",
            ],
            capsys,
        )
    assert code == code_one == 3
    for message in (err, err_one):
        assert_one_line_error(message)
        assert "does not serve 'Qwen/Qwen2.5-VL-3B-Instruct'" in message and "Qwen/Qwen2.5-VL-7B-Instruct" in message
        assert "--served-model" in message


def test_cli_without_model_uses_the_one_model_the_server_serves_and_says_so(
    png_input: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = FakeServer(models=("my-qwen",))
    with fake_server(server) as address:
        code, out, err = run_cli([str(png_input), "--engine", "openai", "--api-base", address, "--to", "json"], capsys)
        assert code == 0, err
        assert "no --model given: using my-qwen, the one model the server serves" in err
        assert json.loads(out)["pages"][0]["generation"]["model"] == "my-qwen"
        # Named explicitly, a model the server lacks is still refused, even when it serves only one.
        code, _, err = run_cli(
            [str(png_input), "--engine", "openai", "--api-base", address, "--model", "other", "--no-cache"], capsys
        )
    assert code == 3 and "does not serve 'other'; it serves: my-qwen" in err


def test_cli_api_base_without_v1_says_so(png_input: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_server(FakeServer()) as address:
        root = address.removesuffix("/v1")
        code, _, err = run_cli([str(png_input), "--engine", "openai", "--api-base", root, "-q"], capsys)
    assert code == 3
    assert_one_line_error(err)
    assert "HTTP 404" in err and "ends in /v1" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-base", "http://x/v1"], "--api-base only applies to --engine openai"),
        (["--api-base", "http://x/v1", "--served-model", "m"], "--api-base, --served-model only apply to"),
        (["--engine", "openai"], "needs --api-base"),
        (["--engine", "openai", "--api-base", "localhost:8000"], "http(s) address"),
        (["--engine", "gpu"], "--engine"),
        (["--engine", "vllm", "--api-base", "http://x/v1"], "only applies to --engine openai"),
        (["--tensor-parallel", "2"], "only apply to --engine vllm"),
    ],
)
def test_cli_engine_usage_errors(
    png_input: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run_cli([str(png_input), *args], capsys)
    assert code == 2
    assert_one_line_error(err)
    assert message in err


def test_open_engine_picks_by_options(base: str) -> None:
    options = convert_options(engine="openai", api_base=base + "/", served_model="tiny", concurrency=2)
    engine = open_engine(options)
    try:
        assert isinstance(engine, OpenAIEngine)
        assert (engine.model_id, engine.batch_size, engine.concurrency) == ("tiny", 1, 2)
        assert engine.identity() == {"engine": "openai", "served_model": "tiny", "root": "/models/tiny"}
    finally:
        engine.close()
    with pytest.raises(UsageError):
        convert_options(engine="openai", api_base=base, concurrency=0)


# ---- a whole document through the CLI ------------------------------------------------------------


def four_page_pdf(path: Path) -> Path:
    doc = pymupdf.open()
    for number in range(1, 5):
        pdf_page = doc.new_page(width=612, height=792)
        pdf_page.insert_text((72, 100), f"Page {number} of the batch", fontsize=20)
    doc.save(path)
    return path


def test_cli_batch_with_faults_converts_the_other_pages_and_maps_boxes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("docparse.engines.openai_http.BACKOFF_BASE", 0.01)  # short waits between tries
    # Page 1: a 429 then an answer; page 2: too slow (fails alone, not repeated); page 3: 500 on
    # all 6 tries (fails alone); page 4: dropped once, then answered.
    server = FakeServer(slow_seconds=3.0)
    server.faults = {1: "429", 3: "slow", **dict.fromkeys(range(4, 10), "500"), 10: "drop"}
    pdf = four_page_pdf(tmp_path / "batch.pdf")
    out = tmp_path / "batch.json"
    with fake_server(server) as address:
        args = [str(pdf), "-o", str(out), "--engine", "openai", "--api-base", address, "--served-model", "tiny"]
        code, _, err = run_cli([*args, "--timeout", "1", "--max-retries", "0", "--concurrency", "1", "-q"], capsys)
    assert code == 1  # some pages failed; the document is still written
    doc = json.loads(out.read_text())
    statuses = [p["status"] for p in doc["pages"]]
    assert statuses == ["ok", "failed", "failed", "ok"]
    assert "no answer within 1 s" in doc["pages"][1]["warnings"][0]
    assert "after 6 tries: HTTP 500" in doc["pages"][2]["warnings"][0]
    assert len(server.pages()) == 11
    # Each answered page's box is the left half of the top quarter of the image it was sent with:
    # mapped to PDF points, that is the left half of the top quarter of the 612 x 792 pt page.
    for number in (0, 3):
        pdf_page = doc["pages"][number]
        block = pdf_page["blocks"][0]
        assert block["text"] == "Page text"
        x0, y0, x1, y1 = block["box"]
        assert (x0, y0) == (0, 0)
        assert x1 == pytest.approx(306, abs=0.5) and y1 == pytest.approx(198, abs=0.5)
    assert doc["metadata"]["model"] == "tiny"
    assert "Traceback" not in err


def test_cli_pages_go_concurrently_and_a_failing_one_fails_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("docparse.engines.openai_http.BACKOFF_BASE", 0.01)
    doc = pymupdf.open()
    widths = (612, 500, 420, 360)  # each page its own image width, so faults can be keyed on it
    for number, width in enumerate(widths, start=1):
        doc.new_page(width=width, height=792).insert_text((40, 100), f"Page {number}", fontsize=20)
    pdf = tmp_path / "widths.pdf"
    doc.save(pdf)
    with open_input(pdf, RasterOptions()) as rendered:
        image_widths = [p.image.width for p in rendered.pages()]
    assert len(set(image_widths)) == 4
    server = FakeServer(latency=0.3)
    server.fault_by_width = {image_widths[1]: ["500"] * 6, image_widths[2]: ["429"]}
    out = tmp_path / "widths.json"
    with fake_server(server) as address:
        args = [str(pdf), "-o", str(out), "--engine", "openai", "--api-base", address, "--served-model", "tiny"]
        code, _, _ = run_cli([*args, "--concurrency", "4", "--max-retries", "0", "-q"], capsys)
    assert code == 1
    pages = json.loads(out.read_text())["pages"]
    assert [p["status"] for p in pages] == ["ok", "failed", "ok", "ok"]
    assert "after 6 tries: HTTP 500" in pages[1]["warnings"][0]
    assert 2 <= server.most_in_flight <= 4  # pages were in flight together, never more than --concurrency


def test_python_api_takes_the_engine_kind(tmp_path: Path, png_input: Path) -> None:
    import docparse

    with fake_server(FakeServer()) as address:
        doc = docparse.convert(png_input, engine="openai", api_base=address, served_model="tiny")
    assert [p.status for p in doc.pages] == ["ok"]
    assert doc.metadata["model"] == "tiny"
    assert docparse.write(doc, "md").strip() == "Page text"
