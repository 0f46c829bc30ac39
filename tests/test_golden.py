"""Golden outputs of `docparse render` for every recorded real answer; regenerate with DOCPARSE_UPDATE_GOLDENS=1.

Answers 01 and 02 (Apache-2.0) have full golden HTML, Markdown and JSON in tests/data/golden.
Answers 04, 05, 07 and 08 carry no licence, so nothing of their text is stored here: their
goldens are outlines (block type, raw class, box in points, text length) and the tests check,
against the fixture itself, that all of its text comes through.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import lxml.html
import pytest

from docparse.cli.app import main
from docparse.document import block_text, document_from_json
from docparse.writers.json import document_schema
from tests.paths import DATA, QWENVL_FIXTURES, REPO, SHARED

GOLDEN = DATA / "golden"
UPDATE = os.environ.get("DOCPARSE_UPDATE_GOLDENS") == "1"
VALIDATOR = jsonschema.Draft202012Validator(document_schema())

# name -> (path relative to the repo root, --image-size, --page-size).
# The cookbook's page image is 1014x1532 px and the model saw it at 1008x1540; 04-08 have no
# published sizes, so their answers are rendered in model pixels onto an A4 page at 200 dpi.
LICENSED = {
    "01-cookbook-qwen25-techreport-72b": (
        "tests/data/qwenvl/01-cookbook-qwen25-techreport-72b.html",
        "1008x1540",
        "1014x1532px",
    ),
    "02-cookbook-qwen25-techreport-truncated-1024tok": (
        "tests/data/qwenvl/02-cookbook-qwen25-techreport-truncated-1024tok.html",
        "1008x1540",
        "1014x1532px",
    ),
}
UNLICENSED = {
    "04-blog-german-chinese-footnotes-twocol": ("2100x2968", "595x842"),
    "05-blog-chinese-physics-formulas": ("2100x2968", "595x842"),
    "07-blog-magazine-image-caption": ("1260x1400", "1260x1400px"),
    "08-blog-screenshot-ordinary-html-negative": ("1260x1400", "1260x1400px"),
}


def render(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["render", *args, "-q"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    return out


def check_golden(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"{path} is missing: run with DOCPARSE_UPDATE_GOLDENS=1, then review the diff")
    assert actual == path.read_text(encoding="utf-8"), f"{path} differs: review, then DOCPARSE_UPDATE_GOLDENS=1"


def visible_text(html: str) -> list[str]:
    """Runs of visible text in a raw answer (outside style/head), whitespace collapsed."""
    body = html.replace("```html", "").replace("```", "")
    root = lxml.html.fromstring(body)
    for bad in root.xpath("//style|//head|//script"):
        bad.drop_tree()
    # Display-formula delimiters are dropped by design: a Formula block holds the bare LaTeX.
    return [" ".join(t.replace("$$", "").split()) for t in root.itertext() if t.strip()]


@pytest.mark.parametrize("name", sorted(LICENSED))
@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_licensed_answers_match_their_goldens(
    name: str, fmt: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    rel, image_size, page_size = LICENSED[name]
    out = render([rel, "--image-size", image_size, "--page-size", page_size, "--to", fmt], capsys)
    check_golden(GOLDEN / f"{name}.{fmt}", out)
    if fmt == "json":
        VALIDATOR.validate(json.loads(out))


@pytest.mark.parametrize("name", sorted(LICENSED))
def test_licensed_answers_keep_all_their_text(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    rel, image_size, page_size = LICENSED[name]
    data = json.loads(render([rel, "--image-size", image_size, "--page-size", page_size, "--to", "json"], capsys))
    doc = document_from_json(data)
    text = " ".join(" ".join(block_text(b).split()) for b in doc.pages[0].blocks)
    for run in visible_text((REPO / rel).read_text(encoding="utf-8")):
        assert run in text, run
    for block in doc.pages[0].blocks:
        if block.box is not None:
            assert 0 <= block.box.x0 <= block.box.x1 <= 1014 and 0 <= block.box.y0 <= block.box.y1 <= 1532


def test_truncated_answer_renders_up_to_its_cut(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    rel, image_size, page_size = LICENSED["02-cookbook-qwen25-techreport-truncated-1024tok"]
    data = json.loads(render([rel, "--image-size", image_size, "--page-size", page_size, "--to", "json"], capsys))
    page = data["pages"][0]
    assert page["status"] == "truncated"
    assert page["blocks"][-1]["text"].endswith("in enhancing the model’s")
    md = render([rel, "--image-size", image_size, "--to", "md"], capsys)
    assert md.rstrip().endswith("in enhancing the model’s")


def outline(data: dict[str, object]) -> str:
    pages = data["pages"]
    assert isinstance(pages, list)
    rows = [
        {
            "type": b["type"],
            "raw_class": b["raw_class"],
            "box": b["box"],
            "chars": len(b["text"]),
        }
        for page in pages
        for b in page["blocks"]
    ]
    status = [{"status": p["status"], "warnings": len(p["warnings"])} for p in pages]
    lines = [json.dumps(row, ensure_ascii=False) for row in (*status, *rows)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(UNLICENSED))
def test_unlicensed_answers_match_their_outlines_and_keep_all_text(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = QWENVL_FIXTURES / f"{name}.html"
    if not source.exists():
        pytest.skip(f"{source} is absent: this test reads ../shared/fixtures beside the checkout")
    monkeypatch.chdir(REPO)
    image_size, page_size = UNLICENSED[name]
    rel = os.path.relpath(source, REPO)
    data = json.loads(render([rel, "--image-size", image_size, "--page-size", page_size, "--to", "json"], capsys))
    check_golden(GOLDEN / "outline" / f"{name}.jsonl", outline(data))
    VALIDATOR.validate(data)
    doc = document_from_json(data)
    text = " ".join(" ".join(block_text(b).split()) for b in doc.pages[0].blocks)
    for run in visible_text(source.read_text(encoding="utf-8")):
        assert run in text, run
    # The other two formats carry the same text.
    md = " ".join(render([rel, "--to", "md"], capsys).split())
    html = " ".join(lxml.html.fromstring(render([rel, "--to", "html"], capsys)).text_content().split())
    for run in visible_text(source.read_text(encoding="utf-8")):
        words = [w for w in run.replace("$", " ").split() if w.isalnum()]
        for word in words[:3]:
            assert word in html, word
            assert word in md.replace("\\", ""), word


def test_shared_is_where_the_tests_expect_it() -> None:
    if not SHARED.exists():
        pytest.skip("../shared is absent beside this checkout")
    assert (QWENVL_FIXTURES / "INDEX.tsv").exists()
