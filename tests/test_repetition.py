"""Repetition in recorded answers: cut to one copy through `docparse render`, page flagged, real pages untouched."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from docparse.cli.app import main
from docparse.reader.qwenvl import read_answer
from docparse.reader.repetition import collapse_blocks, collapse_text, is_degenerate
from docparse.run.build import build_page
from tests.paths import DATA, QWENVL_FIXTURES

FIXTURE_02 = DATA / "qwenvl" / "02-cookbook-qwen25-techreport-truncated-1024tok.html"


def render_json(tmp_path: Path, raw: str, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    path = tmp_path / "page.html"
    path.write_text(raw, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(path), "--image-size", "1000x1000", "--to", "json", "-q"])
    out, _ = capsys.readouterr()
    assert exit_info.value.code == 0
    return json.loads(out)["pages"][0]  # type: ignore[no-any-return]


def html(body: str) -> str:
    return f"```html\n<html><body>\n{body}\n</body></html>\n```"


def cut(body: str) -> str:
    """An answer that never ended, as a loop's does: stopped at the token limit, no closing tags."""
    return f"```html\n<html><body>\n{body}"


def texts(page: dict) -> list[str]:  # type: ignore[type-arg]
    return [b["text"] for b in page["blocks"]]


def test_repeated_blocks_are_cut_to_one_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = '<p data-bbox="10 100 900 120">Table 3: results on the benchmark.</p>\n' * 40
    page = render_json(tmp_path, cut(f'<h1 data-bbox="10 10 900 50">Title</h1>\n{loop}'), capsys)
    assert texts(page) == ["Title", "Table 3: results on the benchmark."]
    assert page["status"] == "repetition"
    assert any("39 repeated block(s)" in w for w in page["warnings"])


def test_a_cycle_of_blocks_is_cut_to_one_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cycle = '<p data-bbox="1 1 2 2">Alpha line.</p><p data-bbox="1 3 2 4">Beta line.</p>' * 10
    page = render_json(tmp_path, cut(cycle + '<p data-bbox="1 5 2 6">Closing.</p>'), capsys)
    assert texts(page) == ["Alpha line.", "Beta line.", "Closing."]
    assert page["status"] == "repetition"


def test_a_line_looping_inside_a_paragraph_is_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = '<p data-bbox="1 1 2 2">We train on data. ' + "The model is trained on data. " * 50 + "</p>"
    page = render_json(tmp_path, cut(body), capsys)
    assert texts(page) == ["We train on data. The model is trained on data."]
    assert page["status"] == "repetition"
    assert any("inside blocks" in w for w in page["warnings"])


def test_a_table_whose_rows_repeat_keeps_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "<tr><td>Qwen2.5-VL</td><td>90.1</td></tr>" * 30
    head = "<tr><th>Model</th><th>Score</th></tr><tr><td>A</td><td>1</td></tr>"
    body = f'<table data-bbox="1 1 500 500">{head}{rows}</table>'
    page = render_json(tmp_path, cut(body), capsys)
    table = page["blocks"][0]
    assert [[c["content"][0]["text"] for c in row] for row in table["rows"]] == [
        ["Model", "Score"],
        ["A", "1"],
        ["Qwen2.5-VL", "90.1"],
    ]
    assert page["status"] == "repetition"


def test_a_complete_answer_keeps_its_real_repeats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # longtable's demo really has rows of "Lots of lines | like this."; an answer that ended by
    # itself is not a loop, and its rows stay as the page has them.
    rows = "<tr><td>Lots of lines</td><td>like this.</td></tr>" * 12
    page = render_json(tmp_path, html(f'<table data-bbox="1 1 500 500">{rows}</table>'), capsys)
    assert len(page["blocks"][0]["rows"]) == 12
    assert page["status"] == "ok"


def test_a_truncated_loop_is_flagged_repetition_not_a_wall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # What a real loop looks like: the same cell until the token limit, cut mid-tag.
    raw = '```html\n<html><body>\n<table data-bbox="1 1 9 9"><tr>' + "<td>0.00</td>" * 300 + "<td>0.0"
    page = render_json(tmp_path, raw, capsys)
    cells = page["blocks"][0]["rows"][0]
    assert len(cells) < 10
    assert page["status"] == "repetition"


def test_legitimate_repeats_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = (
        '<p data-bbox="1 1 2 2">Yes, yes. No no no.</p><p data-bbox="1 1 2 2">Same.</p><p data-bbox="1 1 2 2">Same.</p>'
        '<table data-bbox="1 1 2 2"><tr><td>-</td><td>-</td></tr><tr><td>-</td><td>-</td></tr>'
        "<tr><td>1</td><td>2</td></tr></table>"
    )
    page = render_json(tmp_path, html(body), capsys)
    assert texts(page)[:3] == ["Yes, yes. No no no.", "Same.", "Same."]
    assert page["status"] == "ok"


@pytest.mark.parametrize("path", sorted(QWENVL_FIXTURES.glob("*.html")), ids=lambda p: p.stem)
def test_real_answers_have_no_false_repetition(path: Path) -> None:
    result = read_answer(path.read_text(encoding="utf-8"))
    blocks, warnings = collapse_blocks(result.blocks)
    assert warnings == []
    assert blocks == result.blocks


def test_fixture_02_stays_truncated() -> None:
    page = build_page(
        number=1,
        raw=FIXTURE_02.read_text(encoding="utf-8"),
        image_size=(1008, 1540),
        page_size=None,
        unit="px",
        generation=None,
    )
    assert page.status == "truncated"


def test_collapse_text_on_cjk_and_numbers() -> None:
    assert collapse_text("中文" + "的" * 40 + "好")[0] == "中文的好"
    assert collapse_text("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18")[1] == 0
    assert is_degenerate("| 0 | " * 30)
    assert not is_degenerate("the quick brown fox jumps over the lazy dog")


def test_collapse_is_bounded_on_five_megabytes() -> None:
    text = "Header. " + "abc def ghi " * 420_000
    start = time.perf_counter()
    out, dropped = collapse_text(text)
    assert time.perf_counter() - start < 20
    assert out == "Header. abc def ghi "
    assert dropped == len(text) - len(out)


def test_a_five_megabyte_looping_table_renders_in_bounded_time() -> None:
    row = "<tr><td>0.00</td><td>x</td></tr>"
    raw = '```html\n<html><body>\n<table data-bbox="1 1 2 2">' + row * (5_000_000 // len(row))
    start = time.perf_counter()
    page = build_page(number=1, raw=raw, image_size=None, page_size=None, unit="px", generation=None)
    assert time.perf_counter() - start < 40
    assert page.status == "repetition"
    [table] = page.blocks
    assert len(table.rows) == 1  # type: ignore[union-attr]
