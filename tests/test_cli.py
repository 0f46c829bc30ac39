"""The CLI as a user meets it: help for every option, exit codes, stdout/stderr, the offline error, README examples."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from docparse.cli.app import main
from docparse.cli.convert import convert_app
from docparse.cli.render import render_app
from tests.paths import DATA, REPO, shared_file
from tests.requires import unavailable

SAMPLE = REPO / "samples" / "report.pdf"
FIXTURE_01 = DATA / "qwenvl" / "01-cookbook-qwen25-techreport-72b.html"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def assert_one_line_error(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize("app", [convert_app, render_app])
def test_every_option_has_help(app: typer.Typer) -> None:
    command = typer.main.get_command(app)
    for param in command.params:
        if isinstance(param, typer.core.TyperOption):
            assert param.help and len(param.help) > 10, param.name


def test_help_lists_options_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for option in [
        "--pages",
        "--password",
        "--model",
        "--device",
        "--dtype",
        "--attn",
        "--min-pixels",
        "--max-pixels",
        "--max-new-tokens",
        "--prompt",
        "--keep-raw",
        "--max-retries",
        "--page-timeout",
        "--to",
    ]:
        assert option in out
    assert "Exit codes" in out and "130" in out
    code, out, _ = run_cli(["render", "--help"], capsys)
    assert code == 0 and "--image-size" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.startswith("docparse ")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["missing.pdf"], 2, "no such file"),
        ([str(SAMPLE), "--pages", "0-2"], 2, "--pages"),
        ([str(SAMPLE), "--pages", "2"], 2, "has 1 page"),
        ([str(SAMPLE), "-o", "out.docx"], 2, "cannot tell the format"),
        ([str(SAMPLE), "-o", "out.md", "--to", "json"], 2, "disagrees"),
        ([str(SAMPLE), "--min-pixels", "2000000"], 2, "--min-pixels"),
        ([str(SAMPLE), "--device", "tpu"], 2, "tpu"),
        ([str(SAMPLE), "--bogus"], 2, "--bogus"),
        (["render", str(FIXTURE_01), "--page-size", "612x935"], 2, "--image-size"),
        (["render", str(FIXTURE_01), "--image-size", "big"], 2, "WIDTHxHEIGHT"),
        (["render", str(FIXTURE_01), "-o", ".", "--to", "md"], 2, "is a directory"),
        (["missing-folder/", "-o", "out"], 2, "missing-folder: no such file or folder"),
        ([str(SAMPLE), "-o", "out"], 2, "end it with / for a folder"),
        ([str(SAMPLE), "-o", "/proc/nope/out.md"], 2, "cannot create"),
        ([str(SAMPLE), "--keep-raw", "/proc/nope"], 2, "--keep-raw"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str],
    code: int,
    needle: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    got, out, err = run_cli(args, capsys)
    assert got == code
    assert out == ""
    assert needle in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "needle"),
    [("broken-empty-0bytes.pdf", "empty"), ("enc-pdfplumber-pw-test.pdf", "--password")],
)
def test_bad_inputs_exit_1_with_one_line(name: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_file("fixtures", "pdfs", name)
    code, out, err = run_cli([str(path)], capsys)
    assert code == 1
    assert out == ""
    assert needle in err
    assert_one_line_error(err)


def test_wrong_password_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_file("fixtures", "pdfs", "enc-pdfplumber-pw-test.pdf")
    code, _, err = run_cli([str(path), "--password", "nope"], capsys)
    assert code == 1 and "wrong password" in err


def test_render_writes_the_document_to_stdout_and_progress_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(["render", str(FIXTURE_01), "--image-size", "1008x1540"], capsys)
    assert code == 0
    assert "Qwen2.5 Technical Report" in out
    assert "Qwen2.5 Technical Report" not in err
    assert "page 1" in err
    code, out, err = run_cli(["render", str(FIXTURE_01), "-q"], capsys)
    assert code == 0 and err == ""


def test_render_to_a_file_picks_the_format_from_the_extension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "sub" / "doc.json"
    code, out, _ = run_cli(
        ["render", str(FIXTURE_01), "--image-size", "1008x1540", "--page-size", "612x935", "-o", str(target)],
        capsys,
    )
    assert code == 0 and out == ""
    data = json.loads(target.read_text())
    assert data["pages"][0]["unit"] == "pt"
    assert [p.name for p in target.parent.iterdir()] == ["doc.json"]  # no temporary left behind
    html = tmp_path / "doc.HTML"
    assert run_cli(["render", str(FIXTURE_01), "-o", str(html)], capsys)[0] == 0
    assert html.read_text().lstrip().lower().startswith("<!doctype html>")


def test_output_into_a_missing_folder_is_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "a" / "b" / "doc.md"
    assert run_cli(["render", str(FIXTURE_01), "-o", str(target)], capsys)[0] == 0
    assert "Technical Report" in target.read_text()


def _offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE", "TRANSFORMERS"))}
    env.update({"HF_HOME": str(tmp_path / "hf"), **extra})
    return env


@pytest.mark.parametrize(
    "extra",
    [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}],
    ids=["HF_HUB_OFFLINE", "hub-unreachable"],
)
def test_model_that_cannot_be_had_fails_fast_with_the_way_out(tmp_path: Path, extra: dict[str, str]) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "docparse", str(SAMPLE)],
        env=_offline_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("docparse: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in ("--model", "HF_HUB_OFFLINE", "--engine openai"):
        assert needle in errors[0]
    assert "Traceback" not in proc.stderr
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_quick_start_on_a_cpu_without_the_hub_fails_fast_in_one_line(tmp_path: Path) -> None:
    # The README's quick start on a CPU (--engine llamacpp, the default model's GGUF release), hub unreachable.
    if importlib.util.find_spec("llama_cpp") is None:
        unavailable("llama-cpp-python is not installed (pip install -e '.[llamacpp]')", ".ci/run installs it")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "docparse", str(SAMPLE), "--engine", "llamacpp", "-o", str(tmp_path / "r.md")],
        env=_offline_env(tmp_path, HF_ENDPOINT="http://127.0.0.1:9"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "docparse: loading ggml-org/Qwen2.5-VL-3B-Instruct-GGUF in llama.cpp ..."
    assert len(lines) == 2 and lines[1].startswith("docparse: error: model ggml-org/Qwen2.5-VL-3B-Instruct-GGUF")
    assert "--model MODEL.gguf --mmproj MMPROJ.gguf" in lines[1] and "HF_HUB_OFFLINE=1" in lines[1]
    assert not (tmp_path / "r.md").exists() and elapsed < 30, f"took {elapsed:.1f} s"


def test_readme_examples_that_need_no_model_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO)
    readme = (REPO / "README.md").read_text()
    commands = re.findall(
        r"^(docparse (?:render tests/\S+|config|schema|--show-completion|cache info)\b.*)$", readme, flags=re.MULTILINE
    )
    assert len(commands) >= 6
    for command in commands:
        words = shlex.split(command, comments=True)[1:]
        redirect = words[words.index(">") + 1] if ">" in words else None  # `> FILE`: written to a scratch folder
        words = words[: words.index(">")] if redirect else words
        args = [a for arg in words for a in (sorted(glob.glob(arg)) if "*" in arg else [arg])]
        code, out, err = run_cli(args, capsys)
        assert code == 0, (command, err)
        if redirect:
            (tmp_path / redirect).write_text(out)
        if args[0] == "render":
            assert "Qwen2.5" in out or "tests/data/answers/" in command, command
        assert out.strip(), command


ANSWERS = DATA / "answers"


@pytest.mark.parametrize("app", [convert_app, render_app])
def test_both_commands_take_the_assembly_and_layout_flags(app: typer.Typer) -> None:
    command = typer.main.get_command(app)
    names = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert {"--keep-furniture", "--no-merge", "--page-markers", "--page-breaks"} <= names


def test_render_flags_change_what_markdown_and_html_show(capsys: pytest.CaptureFixture[str]) -> None:
    pages = [str(p) for p in sorted((ANSWERS / "tab-longtable-doc-continued").glob("page-*.html"))]
    code, md, _ = run_cli(["render", *pages, "-q"], capsys)
    assert code == 0 and "longtable.sty" not in md and md.count("This goes at the") == 1
    code, kept, _ = run_cli(["render", *pages, "-q", "--keep-furniture", "--page-markers"], capsys)
    assert code == 0 and kept.count("longtable.sty") == 2
    assert "<!-- page 2 -->" in kept and "<!-- page 3 -->" in kept
    code, split, _ = run_cli(["render", *pages, "-q", "--no-merge", "--to", "json"], capsys)
    tables = [b for p in json.loads(split)["pages"] for b in p["blocks"] if b["type"] == "table"]
    assert code == 0 and len(tables) == 2
    code, html, _ = run_cli(["render", *pages, "-q", "--to", "html", "--page-breaks"], capsys)
    assert code == 0 and '<hr class="page-break" data-page="3">' in html and 'id="page-3"' in html


def test_render_a_saved_json_document_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pages = [str(p) for p in sorted((ANSWERS / "col-multicolumn-lipsum-table").glob("page-*.html"))]
    saved = tmp_path / "doc.json"
    code, _, _ = run_cli(["render", *pages, "-q", "-o", str(saved)], capsys)
    assert code == 0
    code, md, _ = run_cli(["render", *pages, "-q"], capsys)
    code_again, md_again, _ = run_cli(["render", str(saved), "-q"], capsys)
    assert code == code_again == 0 and md_again == md
    code, json_again, _ = run_cli(["render", str(saved), "-q", "--to", "json"], capsys)
    assert code == 0 and json_again == saved.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--no-merge"], "--no-merge"),
        (["--image-size", "10x10"], "raw answers only"),
        ([str(FIXTURE_01)], "not both or several"),
    ],
)
def test_render_json_with_options_for_raw_answers_is_a_usage_error(
    extra: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "doc.json"
    code, _, _ = run_cli(["render", str(FIXTURE_01), "--image-size", "1008x1540", "-q", "-o", str(saved)], capsys)
    assert code == 0
    code, _, err = run_cli(["render", str(saved), *extra], capsys)
    assert code == 2 and needle in err
    assert_one_line_error(err)


def test_render_a_json_file_that_is_not_a_document_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    code, _, err = run_cli(["render", str(bad)], capsys)
    assert code == 1 and "not a docparse JSON document" in err
    assert_one_line_error(err)


@pytest.mark.parametrize("name", ["report.pdf", "page.png", "noise.html"])
def test_render_refuses_a_file_that_is_no_model_answer(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    if name == "report.pdf":
        path.write_bytes(SAMPLE.read_bytes())
    elif name == "page.png":
        from PIL import Image

        Image.new("RGB", (40, 30), "white").save(path)
    else:
        path.write_bytes(bytes(range(256)) * 8)
    code, out, err = run_cli(["render", str(path)], capsys)
    assert code == 2 and out == ""
    assert_one_line_error(err)
    assert ("convert it with `docparse " in err) == (name != "noise.html"), err
    assert "warning" not in err


def test_render_takes_an_answer_full_of_replacement_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A model's text may hold U+FFFD (a random or confused model emits broken byte sequences): still an answer.
    path = tmp_path / "page.html"
    path.write_text('<p data-bbox="0 0 28 28">' + "\ufffd" * 400 + "</p>", encoding="utf-8")
    code, out, err = run_cli(["render", str(path), "--image-size", "28x28"], capsys)
    assert code == 0 and "\ufffd" in out, err


TINY = ["--device", "cpu", "--dtype", "float32", "--max-new-tokens", "8", "--max-retries", "0", "-q"]


@pytest.mark.parametrize("folder", ["out/", "existing"])
def test_one_input_into_an_output_folder_takes_its_name(
    folder: str,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing").mkdir()
    code, out, err = run_cli([str(SAMPLE), "-o", folder, "--model", str(tiny_model_dir), *TINY], capsys)
    assert code == 0, err
    assert out == ""
    written = tmp_path / folder.rstrip("/") / "report.md"
    assert written.is_file() and written.read_text(encoding="utf-8").strip()
    code, _, err = run_cli([str(SAMPLE), "-o", folder, "--to", "json", "--model", str(tiny_model_dir), *TINY], capsys)
    assert code == 0, err
    assert json.loads((written.parent / "report.json").read_text())["pages"][0]["number"] == 1


def test_keep_raw_keeps_every_attempt_and_render_of_the_folder_gives_the_same_document(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # The tiny model always runs to the token limit: the truncation ladder runs (more tokens, then bands).
    args = [str(SAMPLE), "--model", str(tiny_model_dir), *TINY[:-3], "--max-retries", "2", "-q"]
    code, converted, err = run_cli([*args, "--keep-raw", "raw"], capsys)
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "raw").iterdir())
    assert "report.page-0001.retry-1.html" in names, names
    assert any(".retry-2.band-" in n for n in names), names
    side = json.loads((tmp_path / "raw" / "report.page-0001.json").read_text())
    assert [len(call) for call in side["retries"]] == [1, 3]
    everything = sorted(glob.glob("raw/*"))  # answers, sidecars and retries, as a shell glob gives them
    code, rendered, err = run_cli(["render", *everything, "-q"], capsys)
    assert code == 0, err
    assert rendered == converted
    code, _, err = run_cli(["render", "raw/report.page-0001.json"], capsys)
    assert code == 2 and "--keep-raw sidecar" in err and "schema_version" not in err
    assert_one_line_error(err)


def _pdf(path: Path, pages: int, size: tuple[float, float] = (300, 400), fontsize: float = 14) -> Path:
    """A PDF of `pages` pages of `size` points, a line of text every 100 pt down each."""
    import pymupdf

    doc = pymupdf.open()
    for n in range(pages):
        page = doc.new_page(width=size[0], height=size[1])
        for top in range(0, int(size[1]), 100):
            page.insert_text((size[0] / 10, top + 20), f"{n + 1}", fontsize=fontsize)
    doc.save(path)
    doc.close()
    return path


def test_pages_in_a_batch_apply_to_each_file_and_skip_what_a_file_lacks(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    _pdf(docs / "a.pdf", 2), _pdf(docs / "b.pdf", 3), _pdf(docs / "c.pdf", 1)
    out = tmp_path / "out"
    args = [str(docs), "-o", str(out), "--pages", "2-3", "--to", "json", "--model", str(tiny_model_dir), *TINY]
    code, _, err = run_cli(args, capsys)
    assert code == 1, err  # c.pdf has none of the pages: reported, the rest converted
    assert [p["number"] for p in json.loads((out / "a.json").read_text())["pages"]] == [2]
    assert [p["number"] for p in json.loads((out / "b.json").read_text())["pages"]] == [2, 3]
    assert not (out / "c.json").exists()
    warnings = [line for line in err.splitlines() if "warning" in line and "--pages" in line]
    assert warnings == [f"docparse: warning: {docs / 'a.pdf'}: it has 2 pages: --pages 2-3 skipped where past its end"]
    assert f"error: {docs / 'c.pdf'} has 1 page: none of the pages asked for with --pages" in err
    # One file keeps the strict check.
    code, _, err = run_cli([str(docs / "a.pdf"), "--pages", "2-3", "--model", str(tiny_model_dir), *TINY], capsys)
    assert code == 2 and "has 2 pages" in err


@pytest.mark.parametrize("command", [[], ["render"]])
def test_help_groups_options_in_panels_with_plain_metavars(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from docparse.cli.help import PANELS

    code, out, _ = run_cli([*command, "--help"], capsys)
    assert code == 0
    headings = [line.rstrip(":") for line in out.splitlines() if line and not line[0].isspace() and line.endswith(":")]
    assert headings[0] == "Arguments" and set(headings[1:]) <= set(PANELS), headings
    assert headings[1:] == [p for p in PANELS if p in headings], "panels out of order"
    assert not re.search(r"<(list\[|str>|path>|int>|float>|[a-z_]+\|)", out), "a typer metavar such as <list[Path]>"
    assert "Usage: docparse" in out and "{" not in out.splitlines()[0]
    app = render_app if command else convert_app
    for param in typer.main.get_command(app).params:
        if isinstance(param, typer.core.TyperOption) and param.name not in ("install_completion", "show_completion"):
            assert param.rich_help_panel in PANELS, param.name  # typer's own two go under General


def test_wording_of_counts_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli([str(SAMPLE), "--api-base", "http://x/v1"], capsys)
    assert code == 2 and "--api-base only applies to --engine openai" in err
    from docparse.cli.display import plural, summary_line

    assert plural(1, "page") == "1 page" and plural(2, "file") == "2 files"
    totals = {"converted": 1, "files": 1, "failed": 0, "pages": 1, "pages_failed": 0, "pages_cached": 0}
    assert summary_line({**totals, "model_calls": 1}).startswith("done: 1 of 1 file converted; 1 page (")


def test_ctrl_c_while_the_engine_opens_stops_at_once(tmp_path: Path) -> None:
    import signal
    import socket

    # A server that accepts the connection and never answers: opening the engine waits (up to 10 s).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        api = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        proc = subprocess.Popen(
            [sys.executable, "-m", "docparse", str(SAMPLE), "--engine", "openai", "--api-base", api],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stderr is not None
        assert "connecting to" in proc.stderr.readline()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        proc.wait(timeout=30)
        waited = time.monotonic() - sent
        rest = proc.stderr.read()
    assert proc.returncode == 130, rest
    assert waited < 3, f"took {waited:.1f} s to stop"
    assert "finishing the pages in flight" not in rest and "error" not in rest
    assert rest.strip() == "docparse: interrupted"


def _tall_pdf(path: Path) -> Path:
    """A 5 x 2000 pt page (a till receipt): sides 400 times apart, twice what the model takes."""
    return _pdf(path, 1, (5, 2000), fontsize=4)


def test_a_page_too_tall_for_the_model_is_read_in_bands(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from docparse.prompt import MAX_ASPECT_RATIO

    pdf = _tall_pdf(tmp_path / "receipt.pdf")
    code, out, err = run_cli([str(pdf), "--to", "json", "--model", str(tiny_model_dir), *TINY], capsys)
    assert code == 0, err
    page = json.loads(out)["pages"][0]
    assert (page["width"], page["height"], page["unit"]) == (5, 2000, "pt")
    width, height = page["image_size"]
    assert width % 28 == 0 and height % 28 == 0 and height > MAX_ASPECT_RATIO * width
    assert page["status"] != "failed" and page["generation"]["tokens_out"] > 0
    assert any("times as tall as wide" in w and "bands" in w for w in page["warnings"]), page["warnings"]
    report = tmp_path / "report.json"
    code, again, err = run_cli(
        [str(pdf), "--to", "json", "--model", str(tiny_model_dir), *TINY, "--report", str(report)], capsys
    )
    assert code == 0 and json.loads(again)["pages"][0]["blocks"] == page["blocks"], err
    assert json.loads(report.read_text())["totals"]["model_calls"] == 0  # every band's answer came from the cache


def test_bands_of_a_tall_page_map_their_boxes_back_onto_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from docparse.inputs.tallpage import tall_rows
    from docparse.prompt import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
    from tests.fake_openai import FakeServer, fake_server

    pdf = _tall_pdf(tmp_path / "receipt.pdf")
    server = FakeServer()  # answers each image with a paragraph over the left half of its top quarter
    with fake_server(server) as address:
        args = [str(pdf), "--to", "json", "--engine", "openai", "--api-base", address, "--served-model", "tiny", "-q"]
        code, out, err = run_cli(args, capsys)
    assert code == 0, err
    page = json.loads(out)["pages"][0]
    rows = tall_rows(tuple(page["image_size"]), DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)
    assert len(rows) >= 3
    sizes = [seen.size for seen in server.seen if seen.size is not None and seen.body and seen.body["max_tokens"] > 1]
    assert sizes == [(page["image_size"][0], bottom - top) for top, bottom in rows]  # each band exactly as cut
    scale = 2000 / page["image_size"][1]
    boxes = [b["box"] for b in page["blocks"]]
    expected = [[0, top * scale, 2.5, (top + (bottom - top) // 4) * scale] for top, bottom in rows]
    assert boxes == [pytest.approx(e, abs=0.05) for e in expected]


def test_a_cpu_run_without_bounds_says_how_to_bound_it(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(SAMPLE), "--model", str(tiny_model_dir), *TINY[:-1]]
    code, _, err = run_cli(args, capsys)
    assert code == 0 and "on a CPU a page takes minutes" in err and "--page-timeout" in err, err
    code, _, err = run_cli([*args, "--page-timeout", "600"], capsys)
    assert code == 0 and "on a CPU a page takes minutes" not in err


def test_ci_runs_the_readme_quick_start_and_test_commands() -> None:
    def block(name: str) -> list[str]:
        proc = subprocess.run([str(REPO / ".ci" / "readme-commands"), name], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    readme = (REPO / "README.md").read_text()
    quick, test = block("quick-start"), block("test")
    assert len(quick) == 1 and len(test) == 1  # one command each, from a fresh clone
    for command in (quick[0], test[0]):
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 --index-url "
                                  "https://download.pytorch.org/whl/cpu && ")  # fmt: skip
    assert quick[0].endswith("docparse samples/report.pdf --engine llamacpp -o report.md")
    assert test[0].endswith(".venv/bin/python -m pytest")
    assert readme.index("<!-- ci: quick-start -->") < readme.index("## Use")  # the front door comes first
    ci = (REPO / ".ci" / "run").read_text()
    for name in ("quick-start", "test"):
        assert f'"$(.ci/readme-commands {name})"' in ci, name
    assert ".venv/bin/python -m pip install -q torch" not in ci  # the main venv gets torch only as the README says
    missing = subprocess.run([str(REPO / ".ci" / "readme-commands"), "no-such-block"], capture_output=True, text=True)
    assert missing.returncode != 0 and "no README block" in missing.stderr


def test_one_table_names_the_formats() -> None:
    import typing

    from docparse.formats import OUTPUT_SUFFIXES, SUFFIX_FORMATS, Format
    from docparse.writers import WRITERS

    assert set(typing.get_args(Format)) == set(OUTPUT_SUFFIXES) == set(WRITERS)
    assert {SUFFIX_FORMATS[s] for s in (".md", ".markdown", ".html", ".htm", ".json")} == set(WRITERS)
