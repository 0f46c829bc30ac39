"""Whole documents from pages: furniture, footnotes, cross-page merges, heading levels and title, on real pages."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pymupdf
import pytest

from docparse.assemble import assemble
from docparse.config import AssembleOptions, WriteOptions
from docparse.document import (
    SCHEMA_VERSION,
    Block,
    Box,
    Cell,
    Document,
    Heading,
    Inline,
    Page,
    Paragraph,
    Table,
    Text,
    block_text,
    plain_text,
)
from docparse.pipeline import render
from docparse.writers import write
from docparse.writers.json import document_schema
from tests.paths import DATA, PDF_FIXTURES

ANSWERS = DATA / "answers"
VALIDATOR = jsonschema.Draft202012Validator(document_schema())
MD = WriteOptions(format="md")
KEEP = WriteOptions(format="md", keep_furniture=True)


def rendered(stem: str, merge: bool = True) -> Document:
    return render(sorted((ANSWERS / stem).glob("page-*.html")), assemble_options=AssembleOptions(merge=merge))


def blocks_of(doc: Document) -> list[tuple[int, Block]]:
    return [(page.number, block) for page in doc.pages for block in page.blocks]


def squash(text: str) -> str:
    return " ".join(text.split())


# --- the recorded multi-page answers -----------------------------------------------------------


@pytest.mark.parametrize(
    "stem", ["tab-longtable-doc-continued", "col-multicolumn-lipsum-table", "cjk-korean-nars-report-4pp"]
)
def test_recorded_boxes_sit_on_the_text_of_the_real_page(stem: str) -> None:
    pdf_path = PDF_FIXTURES / f"{stem}.pdf"
    if not pdf_path.exists():
        pytest.skip(f"{pdf_path} is absent: this test reads ../shared/fixtures beside the checkout")
    pdf = pymupdf.open(pdf_path)
    doc = rendered(stem, merge=False)
    checked = 0
    for number, block in blocks_of(doc):
        if not isinstance(block, Heading | Paragraph) or block.box is None:
            continue
        # The text layer inside the box (grown by one model pixel, about 0.6 pt) holds the block's first word.
        box = block.box
        clip = pymupdf.Rect(box.x0 - 1, box.y0 - 1, box.x1 + 1, box.y1 + 1)
        inside = squash(pdf[number - 1].get_textbox(clip)).replace("ﬁ", "fi")
        first_word = plain_text(block.content).split()[0]
        assert first_word.strip("*") in inside, (number, first_word, inside[:80])
        checked += 1
    assert checked >= 10


def test_longtable_table_continued_on_the_next_page_is_one_table() -> None:
    doc = rendered("tab-longtable-doc-continued")
    tables = [(n, b) for n, b in blocks_of(doc) if isinstance(b, Table)]
    assert len(tables) == 1
    number, table = tables[0]
    assert number == 2
    assert [part.page for part in table.parts] == [2, 3]
    assert all(part.box is not None for part in table.parts)
    text = block_text(table)
    # Rows of both pages, in order; the repeated head of page 3 is gone, its column names kept once.
    assert text.index("longtable columns are specified") < text.index("This goes at the") < text.index("usual foot")
    assert text.count("First\tSecond") == 1
    assert "top of every other page" not in text
    md = write(doc, MD)
    assert md.count("| First | Second |") + md.count("<th>First</th>") == 1
    assert "(continued)" not in md
    assert "Chunk Size" in md


def test_no_merge_keeps_the_table_in_its_two_pieces() -> None:
    doc = rendered("tab-longtable-doc-continued", merge=False)
    tables = [(n, b) for n, b in blocks_of(doc) if isinstance(b, Table)]
    assert [n for n, _ in tables] == [2, 3]
    assert all(not t.parts for _, t in tables)
    # "Table 1: (continued)" is then a caption, shown with its table.
    assert "Table 1: (continued)" in write(doc, MD)


def test_longtable_furniture_is_out_of_markdown_and_in_json() -> None:
    doc = rendered("tab-longtable-doc-continued")
    md = write(doc, MD)
    assert "longtable.sty" not in md and "Page 2" not in md and "Page 3" not in md
    kept = write(doc, KEEP)
    assert "longtable.sty" in kept and "Page 3" in kept
    data = json.loads(write(doc, WriteOptions(format="json")))
    furniture = [b["text"] for p in data["pages"] for b in p["blocks"] if b["role"] == "furniture"]
    assert furniture == ["longtable.sty", "Page 2", "longtable.sty", "Table 1: (continued)", "Page 3"]


def test_longtable_footnotes_stay_on_their_page_marked() -> None:
    doc = rendered("tab-longtable-doc-continued")
    notes = [(n, block_text(b)) for n, b in blocks_of(doc) if b.role == "footnote"]
    assert [n for n, _ in notes] == [3, 3, 3]
    assert notes[0][1] == "1This is a footnote."
    html = write(doc, WriteOptions(format="html"))
    assert html.count('class="footnote" data-role="footnote"') == 3
    # The paragraph that carries the footnote mark is body text.
    body = [b for n, b in blocks_of(doc) if b.role == "body" and "LTchunksize" in block_text(b)]
    assert len(body) == 1


def test_multicolumn_paragraph_cut_by_the_page_break_is_joined() -> None:
    doc = rendered("col-multicolumn-lipsum-table")
    joined = [(n, b) for n, b in blocks_of(doc) if "Nam feugiat" in block_text(b)]
    assert len(joined) == 1
    number, block = joined[0]
    assert number == 1 and isinstance(block, Paragraph)
    assert block_text(block).endswith("Nam feugiat lacus vel est. Curabitur consectetuer.")
    assert [p.page for p in block.parts] == [1, 2]
    assert not any(block_text(b).startswith("lacus vel est") for _, b in blocks_of(doc))
    md = write(doc, MD)
    assert "Nam feugiat lacus vel est." in md.replace("\n", " ")
    # The page numbers at the foot of each page are furniture.
    assert [block_text(b) for _, b in blocks_of(doc) if b.role == "furniture"] == ["1", "2"]
    assert "\n1\n" not in md and not md.rstrip().endswith("\n2")


def test_multicolumn_title_and_headings() -> None:
    doc = rendered("col-multicolumn-lipsum-table")
    assert doc.title == "Two-Column Document with Lorem Ipsum"
    headings = [(b.level, block_text(b)) for _, b in blocks_of(doc) if isinstance(b, Heading)]
    assert headings == [(1, "Two-Column Document with Lorem Ipsum"), (2, "Abstract")]
    html = write(doc, WriteOptions(format="html"))
    assert "<title>Two-Column Document with Lorem Ipsum</title>" in html


def test_korean_running_header_is_furniture_and_the_cover_label_is_not() -> None:
    doc = rendered("cjk-korean-nars-report-4pp")
    furniture = [(n, block_text(b)) for n, b in blocks_of(doc) if b.role == "furniture"]
    assert furniture == [(2, "이슈와 논점"), (4, "이슈와 논점")]
    # The same words as a big label on the cover (another place on the page) stay.
    md = write(doc, MD)
    assert md.count("이슈와 논점\n") == 1
    assert write(doc, KEEP).count("이슈와 논점\n") == 3


def test_korean_footnotes_title_and_numbered_headings() -> None:
    doc = rendered("cjk-korean-nars-report-4pp")
    assert doc.title == "코로나-19 관련 보험약관상 재해보험금 지급문제 및 개선과제"
    notes = [(n, block_text(b)[:3]) for n, b in blocks_of(doc) if b.role == "footnote"]
    assert (2, "3) ") in notes and (3, "9) ") in notes and (1, "* 경") in notes
    # Footnote marks in body text do not make the paragraph a footnote.
    assert all(b.role == "body" for _, b in blocks_of(doc) if block_text(b).startswith("2020.1.1. 시행된3)"))
    levels = {block_text(b): b.level for _, b in blocks_of(doc) if isinstance(b, Heading)}
    assert levels["코로나-19 관련 보험약관상 재해보험금 지급문제 및 개선과제"] == 1
    assert {levels[h] for h in ("1 들어가며", "2 코로나-19 관련 보험 현황", "3 문제점", "4 개선과제", "5 맺으며")} == {
        2
    }
    # Korean has no letter case: the paragraph cut at the foot of page 2 is not guessed into page 3.
    assert not any(b.parts for _, b in blocks_of(doc))


@pytest.mark.parametrize(
    "stem", ["tab-longtable-doc-continued", "col-multicolumn-lipsum-table", "cjk-korean-nars-report-4pp"]
)
@pytest.mark.parametrize("merge", [True, False])
def test_assembled_json_validates_and_round_trips_exactly(stem: str, merge: bool) -> None:
    doc = rendered(stem, merge=merge)
    text = doc.to_json()
    VALIDATOR.validate(json.loads(text))
    again = Document.from_json(text)
    assert again == doc
    assert again.to_json() == text


def test_json_boxes_in_points_and_on_a_0_to_1000_grid() -> None:
    data = json.loads(rendered("tab-longtable-doc-continued").to_json())
    page = data["pages"][0]
    assert page["unit"] == "pt" and page["image_size"] == [1064, 1484]
    table = next(b for b in page["blocks"] if b["type"] == "table")
    x0, y0, x1, y1 = table["box"]
    assert table["box_norm"] == [
        round(x0 * 1000 / page["width"]),
        round(y0 * 1000 / page["height"]),
        round(x1 * 1000 / page["width"]),
        round(y1 * 1000 / page["height"]),
    ]
    assert [p["page"] for p in table["parts"]] == [2, 3]
    assert table["parts"][0]["box"] == table["box"]
    assert all(0 <= v <= 1000 for p in table["parts"] for v in p["box_norm"])


# --- rules on hand-built pages -----------------------------------------------------------------


def t(text: str) -> tuple[Inline, ...]:
    return (Text(text),)


def page(number: int, *blocks: Block) -> Page:
    return Page(number=number, width=600, height=800, unit="pt", image_size=(1050, 1400), blocks=blocks)


def para(text: str, y: float = 300) -> Paragraph:
    return Paragraph(content=t(text), box=Box(50, y, 550, y + 40), raw_class="p")


def doc_of(*pages: Page) -> Document:
    return Document(source="x.pdf", pages=pages)


def cells(*texts: str, header: bool = False) -> tuple[Cell, ...]:
    return tuple(Cell(content=t(x), header=header) for x in texts)


def table(*rows: tuple[Cell, ...], caption: str = "") -> Table:
    return Table(rows=rows, caption=t(caption) if caption else (), box=Box(50, 100, 550, 400), raw_class="table")


def only_text(doc: Document) -> list[list[str]]:
    return [[block_text(b) for b in p.blocks] for p in doc.pages]


def test_a_one_page_document_keeps_its_blocks() -> None:
    doc = doc_of(page(1, Heading(level=2, content=t("Report"), box=Box(50, 40, 300, 60)), para("7", 760)))
    out = assemble(doc, AssembleOptions())
    assert out.pages == doc.pages
    assert out.title == "Report"


@pytest.mark.parametrize(
    ("end", "start", "joined"),
    [
        ("the cut is in a hyphen-", "ated word.", "the cut is in a hyphenated word."),
        ("the anti-", "Darwinian view.", "the anti-Darwinian view."),
        ("a sentence that goes on", "and on.", "a sentence that goes on and on."),
        ("ends with a number 1990-", "2000 range.", None),
        ("this one ended.", "then another.", None),
        ("a question?", "no.", None),
        ("closed in quotes.”", "and more.", None),
        ("goes on", "But starts a new one.", None),
    ],
)
def test_paragraph_join_rules(end: str, start: str, joined: str | None) -> None:
    doc = doc_of(page(1, para("Intro."), para(end, 600)), page(2, para(start, 100), para("Next.")))
    out = only_text(assemble(doc, AssembleOptions()))
    if joined is None:
        assert out == [["Intro.", end], [start, "Next."]]
    else:
        assert out == [["Intro.", joined], ["Next."]]


def test_hyphen_inside_a_text_is_kept_and_styled_tail_is_rejoined() -> None:
    from docparse.document import Styled

    head = Paragraph(content=(Text("a well-known "), Styled("italic", t("hyph-"))), box=Box(50, 600, 550, 640))
    doc = doc_of(page(1, head), page(2, para("enation rule.", 100)))
    (block,) = assemble(doc, AssembleOptions()).pages[0].blocks
    assert block_text(block) == "a well-known hyphenation rule."


def test_paragraph_over_three_pages_is_joined_twice() -> None:
    doc = doc_of(page(1, para("one goes", 600)), page(2, para("on and", 100)), page(3, para("on.", 100)))
    out = assemble(doc, AssembleOptions())
    assert only_text(out) == [["one goes on and on."], [], []]
    assert [p.page for p in out.pages[0].blocks[0].parts] == [1, 2, 3]


def test_no_join_across_a_gap_in_page_numbers_or_with_no_merge() -> None:
    gap = doc_of(page(1, para("goes", 600)), page(3, para("on.", 100)))
    assert only_text(assemble(gap, AssembleOptions())) == [["goes"], ["on."]]
    near = doc_of(page(1, para("goes", 600)), page(2, para("on.", 100)))
    assert only_text(assemble(near, AssembleOptions(merge=False))) == [["goes"], ["on."]]


def test_table_merge_drops_the_repeated_header_and_needs_the_same_columns() -> None:
    head = cells("Name", "Value", header=True)
    first = table(head, cells("a", "1"))
    again = table(head, cells("b", "2"))
    out = assemble(doc_of(page(1, first), page(2, again)), AssembleOptions())
    (merged,) = out.pages[0].blocks
    assert isinstance(merged, Table)
    assert [[plain_text(c.content) for c in row] for row in merged.rows] == [["Name", "Value"], ["a", "1"], ["b", "2"]]
    assert out.pages[1].blocks == ()
    # Without a repeated header the rows simply follow.
    out = assemble(doc_of(page(1, first), page(2, table(cells("b", "2")))), AssembleOptions())
    assert len(out.pages[0].blocks[0].rows) == 3  # type: ignore[union-attr]
    # Colspans count: a 2-cell row spanning 3 columns still makes 3 columns.
    wide = table(cells("x", "y", "z"))
    spanned = table((Cell(content=t("b"), colspan=2), Cell(content=t("2"))))
    out = assemble(doc_of(page(1, wide), page(2, spanned)), AssembleOptions())
    assert len(out.pages[1].blocks) == 0


def test_no_table_merge_when_the_columns_differ_or_a_paragraph_stands_between() -> None:
    two = table(cells("Name", "Value", header=True), cells("a", "1"))
    three = table(cells("b", "2", "3"))
    out = assemble(doc_of(page(1, two), page(2, three)), AssembleOptions())
    assert [len(p.blocks) for p in out.pages] == [1, 1]
    assert not any(b.parts for p in out.pages for b in p.blocks)
    between = assemble(
        doc_of(page(1, two), page(2, para("Some text first."), table(cells("b", "2")))), AssembleOptions()
    )
    assert [len(p.blocks) for p in between.pages] == [1, 2]
    captioned = table(cells("b", "2"), caption="Table 2: Another table")
    out = assemble(doc_of(page(1, two), page(2, captioned)), AssembleOptions())
    assert [len(p.blocks) for p in out.pages] == [1, 1]


def test_table_with_a_continued_caption_of_its_own_merges() -> None:
    two = table(cells("Name", "Value", header=True), cells("a", "1"))
    cont = table(cells("b", "2"), caption="Table 1 (continued)")
    out = assemble(doc_of(page(1, two), page(2, cont)), AssembleOptions())
    assert [len(p.blocks) for p in out.pages] == [1, 0]
    assert plain_text(out.pages[0].blocks[0].caption) == ""  # type: ignore[union-attr]


def test_furniture_needs_repetition_in_the_same_band() -> None:
    running = Paragraph(content=t("Journal of Things 12 (2024)"), box=Box(50, 20, 550, 35))
    other = Paragraph(content=t("Journal of Things 13 (2024)"), box=Box(50, 22, 550, 37))
    low = Paragraph(content=t("Journal of Things 14 (2024)"), box=Box(50, 400, 550, 415))
    doc = doc_of(page(1, running, para("Body one.")), page(2, other, para("Body two.")), page(3, low))
    out = assemble(doc, AssembleOptions())
    assert [[b.role for b in p.blocks] for p in out.pages] == [["furniture", "body"], ["furniture", "body"], ["body"]]


def test_a_number_with_text_below_it_is_not_a_page_number() -> None:
    number = Paragraph(content=t("12"), box=Box(290, 700, 310, 712))
    below = Paragraph(content=t("Fine print under it."), box=Box(50, 730, 550, 760))
    doc = doc_of(page(1, para("A."), number, below), page(2, para("B.")))
    out = assemble(doc, AssembleOptions())
    assert [b.role for b in out.pages[0].blocks] == ["body", "body", "body"]


def test_heading_levels_agree_across_pages() -> None:
    title = Heading(level=1, content=t("The Title"), box=Box(50, 40, 550, 80))
    first = Heading(level=2, content=t("1 Introduction"), box=Box(50, 100, 550, 120))
    sub = Heading(level=2, content=t("1.1 Scope"), box=Box(50, 200, 550, 220))
    second = Heading(level=1, content=t("2 Methods"), box=Box(50, 50, 550, 70))
    plain = Heading(level=1, content=t("Acknowledgements"), box=Box(50, 300, 550, 320))
    doc = doc_of(page(1, title, first, sub), page(2, second, plain))
    out = assemble(doc, AssembleOptions())
    assert out.title == "The Title"
    levels = [(b.level, block_text(b)) for p in out.pages for b in p.blocks if isinstance(b, Heading)]
    assert levels == [
        (1, "The Title"),
        (2, "1 Introduction"),
        (3, "1.1 Scope"),
        (2, "2 Methods"),
        (2, "Acknowledgements"),
    ]


def test_no_title_when_the_document_does_not_start_at_page_1() -> None:
    doc = doc_of(page(2, Heading(level=1, content=t("Mid"), box=Box(50, 40, 550, 80))), page(3, para("Body.")))
    assert assemble(doc, AssembleOptions()).title is None


def test_markdown_page_markers_and_html_page_breaks() -> None:
    doc = rendered("col-multicolumn-lipsum-table")
    md = write(doc, WriteOptions(format="md", page_markers=True))
    assert md.startswith("<!-- page 1 -->\n\n# Two-Column")
    assert "\n<!-- page 2 -->\n\nSuspendisse vel felis." in md
    html = write(doc, WriteOptions(format="html", page_breaks=True))
    assert 'id="page-1"' in html and 'id="page-2"' in html
    assert html.count('<hr class="page-break" data-page="2">') == 1
    assert "page-break" not in write(doc, WriteOptions(format="html")).split("</style>")[1]
    assert 'data-pages="1 2"' in html


def test_writers_keep_a_document_without_merges_as_before() -> None:
    doc = doc_of(page(1, para("Alpha.")), page(2, para("Beta.")))
    out = assemble(doc, AssembleOptions())
    assert out.pages == doc.pages
    assert write(out, MD) == "Alpha.\n\nBeta.\n"


def test_saved_json_renders_again_without_a_model(tmp_path: Path) -> None:
    doc = rendered("tab-longtable-doc-continued")
    saved = tmp_path / "doc.json"
    saved.write_text(doc.to_json(), encoding="utf-8")
    import docparse

    loaded = docparse.load(saved)
    assert loaded == doc
    assert docparse.write(loaded, "md") == write(doc, MD)
    assert docparse.write(loaded, "md", keep_furniture=True) == write(doc, KEEP)


def test_an_older_1_0_document_still_reads() -> None:
    data = json.loads(rendered("col-multicolumn-lipsum-table", merge=False).to_json())
    data["schema_version"] = "1.0"
    data.pop("title")
    for p in data["pages"]:
        for b in p["blocks"]:
            for key in ("role", "parts", "box_norm"):
                b.pop(key)
    doc = Document.from_json(data)
    assert doc.schema_version == SCHEMA_VERSION and all(b.role == "body" for p in doc.pages for b in p.blocks)
    VALIDATOR.validate(json.loads(doc.to_json()))


def test_replace_keeps_blocks_frozen() -> None:
    block = para("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.role = "furniture"  # type: ignore[misc]


def test_a_running_head_set_as_a_heading_is_not_the_title() -> None:
    def head() -> Heading:
        return Heading(level=1, content=t("Journal of Things"), box=Box(50, 20, 550, 35))

    title = Heading(level=1, content=t("A Real Title"), box=Box(50, 100, 550, 140))
    doc = doc_of(page(1, head(), title, para("Body.")), page(2, head(), para("More.")))
    out = assemble(doc, AssembleOptions())
    assert out.title == "A Real Title"
    assert [b.role for b in out.pages[1].blocks] == ["furniture", "body"]
