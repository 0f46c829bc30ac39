"""Batch conversion with faked engines: the scheduler's batches, concurrency and memory bound, the page cache,
and the CLI's outputs, report, exit codes and log lines over folders with broken files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from docparse.config import ConvertOptions, ModelOptions, RasterOptions
from docparse.document import Generation
from docparse.engines.base import GREEDY, Answer, Engine, GenerationSettings
from docparse.errors import EngineError, ModelUnavailableError
from docparse.inputs.rasterize import InputDocument
from docparse.pipeline import convert
from docparse.run.cache import PageCache
from docparse.run.events import Event, FileDone
from docparse.run.scheduler import run_batch
from tests.paths import PDF_FIXTURES, REPO, shared_file
from tests.test_cli import run_cli

SAMPLE = REPO / "samples" / "report.pdf"
SMALL = ConvertOptions(raster=RasterOptions(max_pixels=200_704))  # the smallest images: fast renders


def page_answer(image: Image.Image) -> str:
    """A well-formed answer that depends on the page's pixels only (the same page always reads the same)."""
    digest = hashlib.sha256(image.tobytes()).hexdigest()[:12]
    w = image.size[0]
    return (
        f'<html><body><h2 data-bbox="10 10 {w // 2} 40">Page {digest}</h2>'
        f'<p data-bbox="10 50 {w - 10} 90">Text {digest} here.</p></body></html>'
    )


def make_generation(finish: str, tokens_out: int) -> Generation:
    return Generation(
        model="fake", prompt="QwenVL HTML ", tokens_in=300, tokens_out=tokens_out, seconds=0.25,
        finish_reason=finish,  # type: ignore[arg-type]
    )  # fmt: skip


class FakeEngine:
    """An Engine answering `page_answer`; counts calls and pages; can fail, loop, wait at a barrier or signal."""

    def __init__(
        self,
        batch_size: int = 1,
        concurrency: int = 1,
        *,
        fail: Callable[[int], bool] = lambda _n: False,
        finish: str = "stop",
        barrier: threading.Barrier | None = None,
        on_call: Callable[[int], None] | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.fail = fail
        self.finish = finish
        self.barrier = barrier
        self.on_call = on_call
        self.calls: list[int] = []
        self.pages = 0
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return "fake"

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        with self._lock:
            self.calls.append(len(images))
            number = len(self.calls)
            self.pages += len(images)
        if self.on_call is not None:
            self.on_call(number)
        if self.barrier is not None:
            self.barrier.wait()
        if self.fail(number):
            raise EngineError("out of memory (fake)")
        out = []
        for image in images:
            text = page_answer(image)
            gen = make_generation(self.finish, len(text))
            out.append(Answer(text, gen))
        return out

    def close(self) -> None:
        pass


def copies(folder: Path, count: int) -> list[Path]:
    """`count` distinct one-page PDFs (different text, so different content hashes)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        doc = pymupdf.open()
        page = doc.new_page(width=300, height=400)
        page.insert_text((40, 60), f"Document number {i}", fontsize=14)
        path = folder / f"doc{i:02d}.pdf"
        doc.save(path)
        paths.append(path)
    return paths


def collect(
    sources: Sequence[Path], options: ConvertOptions, engine: Engine, cache: PageCache | None = None
) -> list[Event]:
    events: list[Event] = []
    run_batch(sources, options, lambda: engine, cache=cache, events=events.append)
    return events


def done(events: list[Event]) -> list[FileDone]:
    return sorted((e for e in events if isinstance(e, FileDone)), key=lambda e: e.index)


# --- the scheduler ------------------------------------------------------------------------------


def test_pages_of_several_documents_fill_one_batch(tmp_path: Path) -> None:
    engine = FakeEngine(batch_size=4)
    events = collect(copies(tmp_path, 6), SMALL, engine)
    assert engine.calls == [4, 2]  # six one-page documents: one full batch, then the rest
    results = done(events)
    assert [r.index for r in results] == list(range(6))
    assert all(r.document is not None and r.document.pages[0].status == "ok" for r in results)


def test_a_server_engine_gets_several_calls_in_flight(tmp_path: Path) -> None:
    # The barrier lets no call through until three are waiting at once: a scheduler that runs the calls
    # one after another breaks it (BrokenBarrierError after its timeout) and the pages fail.
    engine = FakeEngine(batch_size=1, concurrency=3, barrier=threading.Barrier(3, timeout=20))
    events = collect(copies(tmp_path, 6), SMALL, engine)
    assert engine.calls == [1] * 6
    assert all(r.document is not None and r.document.pages[0].status == "ok" for r in done(events))


def test_rendered_pages_in_memory_stay_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = pymupdf.open()
    for i in range(60):
        doc.new_page(width=300, height=400).insert_text((40, 60), f"Page {i}", fontsize=14)
    path = tmp_path / "long.pdf"
    doc.save(path)
    rendered = 0
    most = 0
    lock = threading.Lock()
    real_render = InputDocument.render

    def render(self: InputDocument, number: int) -> object:
        nonlocal rendered
        with lock:
            rendered += 1
        return real_render(self, number)

    engine = FakeEngine(batch_size=2)

    def on_call(_n: int) -> None:
        nonlocal most
        with lock:
            most = max(most, rendered - (engine.pages - engine.calls[-1]))

    engine.on_call = on_call
    monkeypatch.setattr(InputDocument, "render", render)
    events = collect([path], SMALL, engine)
    assert rendered == 60 and engine.pages == 60
    # Pages rendered and not yet answered never exceed batch_size * (concurrency + 1).
    assert most <= 4
    assert [p.number for p in done(events)[0].document.pages] == list(range(1, 61))  # type: ignore[union-attr]


def test_an_input_that_cannot_be_opened_is_reported_and_the_rest_convert(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    engine = FakeEngine()
    results = done(collect([empty, SAMPLE], SMALL, engine))
    assert results[0].error is not None and "empty" in str(results[0].error)
    assert results[1].document is not None and results[1].document.pages[0].status == "ok"


def test_stop_finishes_the_call_in_flight_and_reports_the_rest_interrupted(tmp_path: Path) -> None:
    stop = threading.Event()
    engine = FakeEngine(on_call=lambda _n: stop.set())
    events: list[Event] = []
    stopped = run_batch(copies(tmp_path, 4), SMALL, lambda: engine, events=events.append, stop=stop)
    assert stopped
    results = done(events)
    assert engine.calls == [1]
    assert results[0].document is not None  # the page in flight finished and its document is whole
    assert all(r.interrupted for r in results[1:])


# --- the page cache -----------------------------------------------------------------------------


def never() -> Engine:
    raise AssertionError("the model must not be loaded when every page is cached")


def test_a_second_run_makes_no_model_call_loads_no_model_and_renders_no_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = PageCache(tmp_path / "cache")
    engine = FakeEngine()
    blank = shared_file("fixtures", "pdfs", "blank-page-no-content.pdf")
    first = convert(SAMPLE, SMALL, lambda: engine, cache=cache)
    first_blank = convert(blank, SMALL, never, cache=cache)
    assert engine.calls == [1]

    def render(self: InputDocument, number: int) -> object:
        raise AssertionError("a page whose answers are all cached must not be rendered again")

    monkeypatch.setattr(InputDocument, "render", render)
    assert convert(SAMPLE, SMALL, never, cache=cache) == first
    assert convert(blank, SMALL, never, cache=cache) == first_blank


@pytest.mark.parametrize(
    "changed",
    [
        ConvertOptions(raster=RasterOptions(max_pixels=200_704), model=ModelOptions(prompt="QwenVL HTML")),
        ConvertOptions(raster=RasterOptions(max_pixels=200_704), model=ModelOptions(system_prompt="Be brief.")),
        ConvertOptions(raster=RasterOptions(max_pixels=200_704), model=ModelOptions(max_new_tokens=100)),
        ConvertOptions(raster=RasterOptions(max_pixels=200_704), model=ModelOptions(revision="abc123")),
        ConvertOptions(raster=RasterOptions(max_pixels=300_000)),
        ConvertOptions(raster=RasterOptions(max_pixels=200_704), engine="openai"),
        ConvertOptions(raster=RasterOptions(max_pixels=200_704), model=ModelOptions(dtype="bfloat16")),
    ],
    ids=["prompt", "system-prompt", "max-new-tokens", "revision", "max-pixels", "engine", "dtype"],
)
def test_changing_what_shapes_an_answer_asks_the_model_again(tmp_path: Path, changed: ConvertOptions) -> None:
    cache = PageCache(tmp_path / "cache")
    sources = copies(tmp_path / "in", 3)
    engine = FakeEngine()
    collect(sources, SMALL, engine, cache)
    assert len(engine.calls) == 3
    again = FakeEngine()
    collect(sources, changed, again, cache)
    assert len(again.calls) == 3
    third = FakeEngine()
    collect(sources, changed, third, cache)
    assert third.calls == []


def test_retried_pages_are_replayed_from_the_cache_with_no_call(tmp_path: Path) -> None:
    loop = '<html><body><p data-bbox="1 1 100 20">Intro.</p>' + '<p data-bbox="1 30 100 50">Again.</p>' * 30

    class Looping(FakeEngine):
        def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
            answers = super().generate(images, settings)
            if settings.repetition_penalty is None and settings.temperature is None:
                return [Answer(loop, make_generation("repetition", 400)) for _ in answers]
            return answers

    cache = PageCache(tmp_path / "cache")
    engine = Looping()
    first = convert(SAMPLE, SMALL, lambda: engine, cache=cache)
    assert first.pages[0].status == "retried" and first.pages[0].attempts == 2 and len(engine.calls) == 2
    again = convert(SAMPLE, SMALL, never, cache=cache)
    assert again == first


def test_failed_calls_and_answers_cut_by_the_time_budget_are_not_cached(tmp_path: Path) -> None:
    cache = PageCache(tmp_path / "cache")
    sources = copies(tmp_path / "in", 3)
    failing = FakeEngine(fail=lambda n: n == 2)
    results = done(
        collect(sources, ConvertOptions(raster=RasterOptions(max_pixels=200_704), max_retries=0), failing, cache)
    )
    assert [r.document.pages[0].status for r in results if r.document] == ["ok", "failed", "ok"]
    again = FakeEngine()
    collect(sources, ConvertOptions(raster=RasterOptions(max_pixels=200_704), max_retries=0), again, cache)
    assert again.calls == [1]  # only the page that failed
    timed = FakeEngine(finish="time")
    options = ConvertOptions(raster=RasterOptions(max_pixels=200_704), max_retries=0, page_timeout=5)
    convert(SAMPLE, options, lambda: timed, cache=cache)
    convert(SAMPLE, options, lambda: timed, cache=cache)
    assert timed.calls == [1, 1]


def test_a_corrupt_cache_entry_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    cache = PageCache(tmp_path / "cache")
    engine = FakeEngine()
    first = convert(SAMPLE, SMALL, lambda: engine, cache=cache)
    entries = sorted((tmp_path / "cache").rglob("*.json"))
    assert entries
    for i, entry in enumerate(entries):
        entry.write_bytes([b"", b"{not json", b'{"format": 1, "text": 5}', b"[]"][i % 4])
    again = FakeEngine()
    assert convert(SAMPLE, SMALL, lambda: again, cache=cache) == first
    assert again.calls == [1]


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> list[FakeEngine]:
    """`docparse` loads FakeEngines instead of a model; the list holds each one loaded."""
    loaded: list[FakeEngine] = []

    def load_engine(options: ModelOptions, max_pixels: int | None = None) -> FakeEngine:
        engine = FakeEngine(batch_size=options.batch_size or 1)
        loaded.append(engine)
        return engine

    import docparse.engines.transformers as transformers_engine

    monkeypatch.setattr(transformers_engine, "load_engine", load_engine)
    return loaded


def fixture_folder(tmp_path: Path) -> Path:
    """The shared fixture PDFs (broken, empty, encrypted ones included) plus a non-PDF and two good files."""
    shared_file("fixtures", "pdfs", "MANIFEST.tsv")
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ["broken-empty-0bytes.pdf", "broken-xref-issue297.pdf", "enc-pdfplumber-pw-test.pdf",
                 "blank-page-no-content.pdf", "chem-maleimide-structure-tiny.pdf"]:  # fmt: skip
        shutil.copy(PDF_FIXTURES / name, docs / name)
    (docs / "notes.pdf").write_text("meeting notes, not a PDF\n")
    (docs / "sub").mkdir()
    shutil.copy(SAMPLE, docs / "sub" / "report.pdf")
    return docs


def test_a_folder_with_bad_files_converts_the_rest_exits_1_and_reports_each_failure(
    tmp_path: Path, fake_model: list[FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = fixture_folder(tmp_path)
    out, report = tmp_path / "out", tmp_path / "report.json"
    code, stdout, err = run_cli([str(docs), "-o", str(out), "--report", str(report), "--max-pixels", "200704"], capsys)
    assert code == 1 and stdout == ""
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [
        "blank-page-no-content.md",
        "broken-xref-issue297.md",
        "chem-maleimide-structure-tiny.md",
        "sub/report.md",
    ]
    assert "Page " in (out / "sub" / "report.md").read_text()
    errors = [line for line in err.splitlines() if line.startswith("docparse: error:")]
    assert len(errors) == 3  # one line each: empty, encrypted, not a PDF
    assert any("empty" in e for e in errors) and any("--password" in e for e in errors)
    assert any("notes.pdf is not a PDF" in e for e in errors)
    data = json.loads(report.read_text())
    assert data["exit_code"] == 1
    status = {Path(f["input"]).name: (f["status"], f["error"]) for f in data["files"]}
    assert status["broken-empty-0bytes.pdf"][0] == "failed" and "empty" in status["broken-empty-0bytes.pdf"][1]
    assert status["enc-pdfplumber-pw-test.pdf"][0] == "failed"
    assert status["notes.pdf"][0] == "failed"
    assert status["report.pdf"] == ("converted", None)
    assert data["totals"] == {
        "files": 7, "converted": 4, "failed": 3, "interrupted": 0, "not_started": 0, "pages": 4,
        "pages_failed": 0, "pages_cached": 0, "model_calls": 2, "tokens_in": 600,
        "tokens_out": data["totals"]["tokens_out"],
    }  # fmt: skip
    page = next(f for f in data["files"] if f["input"].endswith("report.pdf"))["pages"][0]
    assert page["status"] == "ok" and page["attempts"] == 1 and page["cached"] is False and page["tokens_in"] == 300
    assert not list(out.rglob("*.part"))

    # Again, to JSON: no model is loaded and every page comes from the cache.
    engines = len(fake_model)
    code, _, err = run_cli(
        [str(docs), "-o", str(out), "--to", "json", "--report", str(report), "--max-pixels", "200704"], capsys
    )
    assert code == 1 and len(fake_model) == engines and "loading" not in err
    data = json.loads(report.read_text())
    assert data["totals"]["model_calls"] == 0 and data["totals"]["pages_cached"] == 2
    assert json.loads((out / "sub" / "report.json").read_text())["pages"][0]["status"] == "ok"


def test_exit_0_when_everything_converts_and_the_log_is_plain_lines(
    tmp_path: Path, fake_model: list[FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    copies(tmp_path / "in", 3)
    code, _, err = run_cli([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--max-pixels", "200704"], capsys)
    assert code == 0
    assert "\x1b" not in err  # stderr is not a terminal: no bars, no colour codes
    lines = err.splitlines()
    pattern = re.compile(
        r"^docparse: (loading \S+ \.\.\.|model ready in [\d.]+ s, batch size \d+"
        r"|doc0\d\.pdf page 1 \(1/1\): \d+ blocks, \d+ tokens in [\d.]+ s \(stop\)"
        r"|\S+doc0\d\.pdf -> \S+doc0\d\.md: 1 page \(0 failed, 0 from the cache\) in [\d.]+ s"
        r"|done: 3 of 3 files converted; 3 pages \(0 failed, 0 from the cache, 3 model calls\))$"
    )
    assert lines and all(pattern.match(line) for line in lines), err
    assert lines[-1].startswith("docparse: done: ")  # the run ends with its totals
    assert sum("page 1 (1/1)" in line for line in lines) == 3
    code, _, quiet = run_cli(
        [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q", "--max-pixels", "200704"], capsys
    )
    assert code == 0 and quiet == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "-o OUTPUT_FOLDER"),
        (["-o", "out.md"], "looks like a file"),
        (["-o", "out", "--glob", "*.txt"], "nothing to convert"),
        (["-o", "out", "--max-page-error-rate", "2"], "--max-page-error-rate"),
        (["-o", "out", "in/sub", "--keep-raw", "raw"], "same name"),
    ],
)
def test_usage_errors_of_a_batch_exit_2(
    args: list[str], needle: str, tmp_path: Path, fake_model: list[FakeEngine], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    copies(tmp_path / "in", 1)
    copies(tmp_path / "in" / "sub", 1)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["in", *args], capsys)
    assert code == 2 and needle in err and "Traceback" not in err
    assert fake_model == []


def test_exit_3_when_the_model_cannot_be_had_and_the_report_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def load_engine(_options: ModelOptions, _max_pixels: int | None = None) -> FakeEngine:
        raise ModelUnavailableError("model nowhere: not cached and HF_HUB_OFFLINE=1")

    import docparse.engines.transformers as transformers_engine

    monkeypatch.setattr(transformers_engine, "load_engine", load_engine)
    copies(tmp_path / "in", 2)
    report = tmp_path / "r.json"
    code, _, err = run_cli([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--report", str(report)], capsys)
    assert code == 3 and "model nowhere" in err
    data = json.loads(report.read_text())
    assert data["exit_code"] == 3 and "model nowhere" in data["error"]


def test_ctrl_c_finishes_the_page_in_flight_writes_what_is_complete_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(on_call=lambda n: os.kill(os.getpid(), signal.SIGINT) if n == 2 else None)
    import docparse.engines.transformers as transformers_engine

    monkeypatch.setattr(transformers_engine, "load_engine", lambda _o, _px=None: engine)
    copies(tmp_path / "in", 5)
    out, report = tmp_path / "out", tmp_path / "r.json"
    code, _, err = run_cli([str(tmp_path / "in"), "-o", str(out), "--report", str(report), "-q"], capsys)
    assert code == 130
    assert len(engine.calls) == 2  # the call in flight when Ctrl-C came finished; no new one started
    assert sorted(p.name for p in out.iterdir()) == ["doc00.md", "doc01.md"]
    data = json.loads(report.read_text())
    assert data["exit_code"] == 130
    assert [f["status"] for f in data["files"]][:2] == ["converted", "converted"]
    assert all(f["status"] in ("interrupted", "not-started") for f in data["files"][2:])
    assert "interrupted" in err and "run the same command again" in err
    assert "error: interrupted" not in err  # Ctrl-C is what the user asked for, not an error


def test_fail_fast_stops_at_the_first_failure(
    tmp_path: Path, fake_model: list[FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "in"
    paths = copies(docs, 4)
    paths[1].write_bytes(b"")  # the second file is empty
    report = tmp_path / "r.json"
    code, _, err = run_cli([str(docs), "-o", str(tmp_path / "out"), "--fail-fast", "--report", str(report)], capsys)
    assert code == 1 and "--fail-fast" in err
    statuses = [f["status"] for f in json.loads(report.read_text())["files"]]
    assert statuses[:2] == ["converted", "failed"]
    assert "converted" not in statuses[2:] and (tmp_path / "out" / "doc00.md").exists()


@pytest.mark.parametrize(("rate", "code"), [("0", 1), ("0.5", 0)])
def test_max_page_error_rate_decides_whether_a_file_with_failed_pages_fails(
    rate: str, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = FakeEngine(fail=lambda n: n == 2)
    import docparse.engines.transformers as transformers_engine

    monkeypatch.setattr(transformers_engine, "load_engine", lambda _o, _px=None: engine)
    pdf = shared_file("fixtures", "pdfs", "cjk-korean-nars-report-4pp.pdf")  # 4 pages: 1 failed is 25 %
    report = tmp_path / "r.json"
    args = [str(pdf), "-o", str(tmp_path / "out.json"), "--max-page-error-rate", rate, "--report", str(report)]
    got, _, _ = run_cli([*args, "--max-retries", "0", "--max-pixels", "200704"], capsys)
    assert got == code
    data = json.loads((tmp_path / "out.json").read_text())  # written either way
    assert [p["status"] for p in data["pages"]] == ["ok", "failed", "ok", "ok"]
    entry = json.loads(report.read_text())["files"][0]
    assert entry["status"] == ("failed" if code else "converted") and entry["error"] == "1 of 4 pages failed"
    assert entry["pages"][1]["error"] == "out of memory (fake)"


def test_cache_info_and_clear(tmp_path: Path, fake_model: list[FakeEngine], capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    copies(tmp_path / "in", 2)
    code, _, _ = run_cli([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--cache-dir", str(cache), "-q"], capsys)
    assert code == 0
    code, out, _ = run_cli(["cache", "info", "--cache-dir", str(cache)], capsys)
    assert code == 0 and "answers: 2" in out and "pages: 2" in out
    code, out, _ = run_cli(["cache", "clear", "--cache-dir", str(cache)], capsys)
    assert code == 0 and "removed 4 entries" in out
    code, out, _ = run_cli(["cache", "info", "--cache-dir", str(cache)], capsys)
    assert "answers: 0" in out
    code, _, _ = run_cli(
        [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--no-cache", "-q", "--cache-dir", str(cache)], capsys
    )
    assert code == 0
    assert "answers: 0" in run_cli(["cache", "info", "--cache-dir", str(cache)], capsys)[1]


def test_every_exit_code_is_documented_in_help_and_readme(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    help_text = " ".join(out.split())
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("### Exit codes") :]
    for exit_code, words in [(0, "everything converted"), (1, "some files or pages"), (2, "usage error"),
                             (3, "the model could not be loaded"), (130, "interrupted")]:  # fmt: skip
        assert f"{exit_code} {words}" in help_text
        assert re.search(rf"^\| {exit_code} \| .*{words.split()[-1]}", table, flags=re.MULTILINE), exit_code
    for option in [
        "--glob",
        "--exclude",
        "--cache-dir",
        "--no-cache",
        "--report",
        "--fail-fast",
        "--max-page-error-rate",
    ]:
        assert option in out and f"`{option}" in readme


def test_a_symbolic_link_in_the_output_folder_cannot_carry_an_output_outside_it(
    tmp_path: Path, fake_model: list[FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    copies(tmp_path / "in" / "sub", 1)
    copies(tmp_path / "in", 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").symlink_to(outside)
    code, _, err = run_cli([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"], capsys)
    assert code == 1 and "outside -o" in err
    assert list(outside.iterdir()) == []
    assert (tmp_path / "out" / "doc00.md").exists()


def test_the_python_api_uses_a_page_cache_when_given_one(tmp_path: Path) -> None:
    import docparse

    engine = FakeEngine()
    first = docparse.convert(SAMPLE, engine=engine, cache_dir=tmp_path / "c", max_pixels=200_704)
    second = docparse.convert(SAMPLE, engine=engine, cache_dir=tmp_path / "c", max_pixels=200_704)
    assert first == second and engine.calls == [1]
    docparse.convert(SAMPLE, engine=engine, max_pixels=200_704)  # no cache: the model again
    assert engine.calls == [1, 1]


def test_an_engine_that_changes_its_batch_size_mid_run_still_finishes(tmp_path: Path) -> None:
    engine = FakeEngine(batch_size=1)

    def grow(n: int) -> None:
        if n == 1:
            engine.batch_size = 5  # more than the scheduler had room for when the run began

    engine.on_call = grow
    results = done(collect(copies(tmp_path, 8), SMALL, engine))
    assert all(r.document is not None for r in results)
    assert engine.calls[0] == 1 and max(engine.calls) == 5 and sum(engine.calls) == 8


def run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """stderr of `docparse ARGS` run with a pseudo-terminal as its stderr, as a person at a terminal sees it."""
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "docparse", *args], stdout=subprocess.DEVNULL, stderr=slave, env=env, cwd=REPO
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_a_terminal_gets_progress_bars_in_colour_unless_no_color(
    tmp_path: Path, fake_model: list[FakeEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    # The pages are cached by a run here first, so the terminal runs need no model at all.
    copies(tmp_path / "in", 2)
    cache = tmp_path / "cache"
    args = [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--cache-dir", str(cache), "--max-pixels", "200704"]
    assert run_cli([*args, "-q"], capsys)[0] == 0
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm-256color", "COLUMNS": "100"}
    coloured = run_on_a_terminal(args, env)
    assert "files" in coloured and "pages" in coloured and "2/2" in coloured and "pages/s" in coloured
    assert re.search(r"\x1b\[(3|9)\dm", coloured)  # colour codes
    assert "page 1 (1/1)" not in coloured  # the bars replace the per-page lines
    plain = run_on_a_terminal(args, env | {"NO_COLOR": "1"})
    assert "2/2" in plain and "pages/s" in plain
    assert not re.search(r"\x1b\[(3|9)\dm", plain)


def test_the_report_is_rewritten_during_a_run_and_stale_temporary_files_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import docparse.engines.transformers as transformers_engine
    import docparse.run.batch

    report = tmp_path / "r.json"
    seen: list[list[str]] = []

    def peek(n: int) -> None:  # what a killed run would leave: the report as of the files done so far
        if n == 2:
            seen.append([f["status"] for f in json.loads(report.read_text())["files"]])

    engine = FakeEngine(on_call=peek)
    monkeypatch.setattr(transformers_engine, "load_engine", lambda _o, _px=None: engine)
    monkeypatch.setattr(docparse.run.batch, "REPORT_EVERY", 0.0)
    copies(tmp_path / "in", 2)
    stale = tmp_path / "out" / ".doc00.md.x1y2z3.part"  # as write_atomic leaves it when killed mid-write
    stale.parent.mkdir()
    stale.write_text("half a docu")
    code, _, _ = run_cli([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--report", str(report), "-q"], capsys)
    assert code == 0
    assert seen == [["converted", "interrupted"]]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["doc00.md", "doc01.md"]
