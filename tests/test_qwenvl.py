"""The QwenVL HTML reader: real answers, every variation the format allows, and inputs that must not break it."""

from __future__ import annotations

import json
import time
from typing import Any

import lxml.etree
import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docparse.document import (
    Block,
    Box,
    Cell,
    Chart,
    Chemistry,
    Code,
    Figure,
    Formula,
    Heading,
    Inline,
    LineBreak,
    Link,
    ListBlock,
    Math,
    Music,
    Other,
    Paragraph,
    Styled,
    Table,
    Text,
    block_text,
    block_to_json,
    plain_text,
)
from docparse.reader.blocks import BlockReader
from docparse.reader.qwenvl import ReadResult, read_answer
from tests.paths import DATA, QWENVL_FIXTURES, shared_file

F01 = "01-cookbook-qwen25-techreport-72b.html"
F02 = "02-cookbook-qwen25-techreport-truncated-1024tok.html"
F04 = "04-blog-german-chinese-footnotes-twocol.html"
F05 = "05-blog-chinese-physics-formulas.html"
F07 = "07-blog-magazine-image-caption.html"
F08 = "08-blog-screenshot-ordinary-html-negative.html"
KNOWN = [F01, F02, F04, F05, F07, F08]
# Every recorded answer in ../shared (new ones included); the known names when it is absent, to skip.
ALL_FIXTURES = sorted({p.name for p in QWENVL_FIXTURES.glob("*.html")} | set(KNOWN))


def fixture(name: str) -> str:
    return shared_file("fixtures", "qwenvl", name).read_text(encoding="utf-8")


def kinds(result: ReadResult) -> list[str]:
    return [type(b).__name__ for b in result.blocks]


def only(result: ReadResult, cls: type[Any]) -> list[Any]:
    return [b for b in result.blocks if isinstance(b, cls)]


def squash(text: str) -> str:
    """Whitespace collapsed and `$` removed: inline math prints as `$latex$`, formulas without delimiters."""
    return " ".join(text.replace("$", " ").split())


def visible_text(raw: str) -> list[str]:
    """Each run of visible text in a raw answer, computed by lxml itself (style/head/script excluded)."""
    lines = raw.strip().splitlines()
    if lines and lines[0].startswith("```"):
        lines = lines[1:]
    if lines and lines[-1].strip() == "```":
        lines = lines[:-1]
    try:
        root = lxml.html.document_fromstring("\n".join(lines))
    except lxml.etree.ParserError:  # nothing but whitespace or a doctype
        return []
    for bad in root.xpath("//head|//style|//script"):
        bad.drop_tree()
    return [squash(t) for t in root.itertext() if t.strip()]


def all_text(result: ReadResult) -> str:
    return squash("\n".join(block_text(b) for b in result.blocks))


def walk_inlines(items: tuple[Inline, ...]) -> list[Inline]:
    out: list[Inline] = []
    stack = list(reversed(items))
    while stack:
        item = stack.pop()
        out.append(item)
        if isinstance(item, Styled | Link):
            stack.extend(reversed(item.children))
    return out


# --- the recorded answers -------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_every_piece_of_visible_text_survives(name: str) -> None:
    raw = fixture(name)
    result = read_answer(raw)
    assert isinstance(result, ReadResult)
    text = all_text(result)
    missing = [t for t in visible_text(raw) if t not in text]
    assert not missing, f"lost text: {missing[:3]}"
    for block in result.blocks:  # every block goes to JSON
        json.dumps(block_to_json(block))


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_inline_content_is_normalised(name: str) -> None:
    for block in read_answer(fixture(name)).blocks:
        if isinstance(block, Paragraph | Heading | Other):
            assert block.content, "empty text blocks are dropped"
            text = plain_text(block.content)
            assert text == text.strip() and "  " not in text and "\n" not in text
            assert all(t.text for t in walk_inlines(block.content) if isinstance(t, Text))


def test_01_blocks_boxes_and_mapping() -> None:
    result = read_answer(fixture(F01), image_size=(1008, 1540), page_size=(612, 935))
    assert kinds(result) == [
        "Heading", "Paragraph", "Figure", "Heading", "Paragraph", "Paragraph", "Paragraph", "Figure", "Paragraph",
    ]  # fmt: skip
    assert not result.truncated and result.structured and result.warnings == ()
    title = result.blocks[0]
    assert isinstance(title, Heading) and title.level == 2 and title.raw_class == "h2"
    assert plain_text(title.content) == "Qwen2.5 Technical Report"
    # <h2 data-bbox="310 94 658 132">, seen at 1008x1540, on a 612x935 page
    assert title.box == Box(188.21, 57.07, 399.5, 80.14)
    assert title.box == Box(
        *(round(v, 2) for v in (310 * 612 / 1008, 94 * 935 / 1540, 658 * 612 / 1008, 132 * 935 / 1540))
    )
    figure = result.blocks[7]
    assert isinstance(figure, Figure) and figure.raw_class == "div.image" and figure.caption == ()
    # <div class="image" data-bbox="88 1054 889 1322">
    assert figure.box == Box(53.43, 639.93, 539.75, 802.64)
    caption = result.blocks[8]
    assert isinstance(caption, Paragraph)
    assert plain_text(caption.content).endswith("in enhancing the model’s capabilities.")


def test_01_without_page_size_keeps_model_pixels() -> None:
    result = read_answer(fixture(F01), image_size=(1008, 1540))
    assert result.blocks[0].box == Box(310, 94, 658, 132)
    assert read_answer(fixture(F01)).blocks[0].box == Box(310, 94, 658, 132)


def test_02_truncated_keeps_its_last_partial_paragraph() -> None:
    result = read_answer(fixture(F02), image_size=(1008, 1540), page_size=(612, 935))
    assert result.truncated and result.structured
    assert any("cut off" in w for w in result.warnings)
    last = result.blocks[-1]
    assert isinstance(last, Paragraph)
    assert plain_text(last.content).endswith("in enhancing the model’s")
    assert [(h.level, plain_text(h.content)) for h in only(result, Heading)] == [
        (1, "Qwen2.5 Technical Report"),
        (2, "Abstract"),
    ]
    # the empty <p data-bbox> is dropped; <address> without a box is walked into: its <p> stays
    paragraphs = only(result, Paragraph)
    assert len(paragraphs) == 8 and len(only(result, Figure)) == 1
    assert paragraphs[0].box is None and plain_text(paragraphs[0].content) == "Qwen Team"
    # <a> without href stays inline text; the emoji is kept
    assert plain_text(paragraphs[1].content) == "🤗 https://huggingface.co/Qwen"
    # inline LaTeX becomes Math
    maths = [i for p in paragraphs for i in walk_inlines(p.content) if isinstance(i, Math)]
    assert (
        Math("0.5 \\mathrm{~B}, 1.5 \\mathrm{~B}, 3 \\mathrm{~B}, 7 \\mathrm{~B}, 14 \\mathrm{~B}, 32 \\mathrm{~B}")
        in maths
    )
    assert Math("72 \\mathrm{~B}") in maths


def test_04_footnote_marks_are_math_and_the_bare_p_is_dropped() -> None:
    result = read_answer(fixture(F04))
    assert not result.truncated and result.structured
    assert kinds(result) == ["Paragraph"] * 16
    first = result.blocks[0]
    assert isinstance(first, Paragraph)
    assert first.content[0] == Math("{ }^{8}")
    assert plain_text(first.content).startswith("${ }^{8}$ das Phon:")
    assert first.box == Box(219, 274, 630, 328)


def test_05_formulas_and_the_text_after_one() -> None:
    result = read_answer(fixture(F05))
    assert not result.truncated and result.structured
    formulas = only(result, Formula)
    assert [f.latex for f in formulas] == [
        "h=D \\tan \\theta \\approx D \\theta=D \\frac{\\lambda}{2 L}",
        "\\delta=2 e+\\frac{\\lambda}{2}=k \\lambda \\quad(k=1,2,3, \\cdots)",
        "r^{2}=R^{2}-(R-e)^{2}=2 R e-e^{2}",
        "\\delta=\\frac{r^{2}}{R}+\\frac{\\lambda}{2}=k \\lambda \\quad(k=1,2,3, \\cdots)",
    ]
    assert all(f.variant is None and f.raw_class == "div.formula" for f in formulas)
    i = result.blocks.index(formulas[1])
    after = result.blocks[i + 1]
    assert isinstance(after, Paragraph) and after.box == formulas[1].box == Box(778, 2296, 1524, 2484)
    assert after.content == (
        Text("暗环条件为 "),
        Math("\\quad \\delta=2 e+\\frac{\\lambda}{2}=(2 k+1) \\frac{\\lambda}{2} \\quad(k=0,1,2, \\cdots)"),
    )
    assert len(only(result, Figure)) == 4 and len(only(result, Heading)) == 1
    assert len(only(result, Paragraph)) == 14


def test_07_image_caption_is_attached_to_its_figure() -> None:
    result = read_answer(fixture(F07))
    assert not result.truncated and result.structured
    figure = result.blocks[0]
    assert isinstance(figure, Figure) and figure.raw_class == "div.image caption"
    assert figure.box == Box(30, 164, 1225, 807)
    assert plain_text(figure.caption).startswith("This is an image of a magazine cover.")
    assert plain_text(figure.caption).endswith("as far as you can see.")
    assert figure.inner_text == ()
    assert kinds(result)[1:] == ["Paragraph", "Heading", *["Paragraph"] * 6]


def test_08_ordinary_html_is_unstructured_but_kept() -> None:
    result = read_answer(fixture(F08))
    assert not result.structured and not result.truncated
    assert any("no data-bbox" in w and "not QwenVL HTML" in w for w in result.warnings)
    heading = result.blocks[0]
    assert isinstance(heading, Heading) and heading.level == 1 and heading.box is None
    assert plain_text(heading.content) == "淘宝·许愿淘彩头分25亿"
    text = all_text(result)
    assert "许下你的定制心愿" in text and "福寿康宁" in text
    assert "background-color" not in text and "淘宝许愿淘彩头分25亿" not in text  # style and <title>
    assert not only(result, Figure)  # <img src=...> with no box carries nothing


@pytest.mark.parametrize("name", [F01, F04, F05, F07])
def test_complete_answers_are_not_truncated(name: str) -> None:
    assert not read_answer(fixture(name)).truncated


def test_in_repo_copies_read_the_same() -> None:
    for name in (F01, F02):
        copy = (DATA / "qwenvl" / name).read_text(encoding="utf-8")
        assert read_answer(copy) == read_answer(fixture(name))


# --- the variations of the format -----------------------------------------------------------


def page(body: str) -> str:
    return f"<html><body>\n{body}\n</body></html>"


def test_fence_with_prose_before_and_after() -> None:
    raw = 'Sure! Here it is:\n```html\n<html><body><p data-bbox="1 2 3 4">Hello</p></body></html>\n```\nHope it helps.'
    result = read_answer(raw)
    assert [plain_text(b.content) for b in only(result, Paragraph)] == ["Hello"]
    assert len(result.blocks) == 1 and not result.truncated and result.structured
    assert any("prose" in w for w in result.warnings)


def test_missing_closing_fence_is_truncation() -> None:
    result = read_answer('```html\n<html><body><p data-bbox="1 2 3 4">Hello</p></body></html>')
    assert result.truncated and len(result.blocks) == 1


def test_closing_tags_in_the_wrong_order() -> None:
    result = read_answer('<html><body><p data-bbox="1 2 3 4">a</p></html></body>')
    assert not result.truncated and kinds(result) == ["Paragraph"]
    # and text after </html> is not lost either
    result = read_answer('<html><body><p data-bbox="1 2 3 4">a</p></body></html><p data-bbox="5 6 7 8">b</p>')
    assert [plain_text(b.content) for b in only(result, Paragraph)] == ["a", "b"]


def test_dot_qualified_formula_classes() -> None:
    raw = page(
        '<div class="formula.machine_printed" data-bbox="1 2 3 4"><img data-bbox="1 2 3 4"/><div>$$E=mc^2$$</div></div>'
        '<div class="formula.handwritten" data-bbox="5 6 7 8"><img data-bbox="5 6 7 8"/><div>\\[a+b\\]</div></div>'
        '<div class="formula" data-bbox="5 6 7 8"><div>$x$</div></div>'
    )
    printed, written, plain = only(read_answer(raw), Formula)
    assert (printed.latex, printed.variant, printed.raw_class) == (
        "E=mc^2",
        "machine_printed",
        "div.formula.machine_printed",
    )
    assert (written.latex, written.variant) == ("a+b", "handwritten")
    assert (plain.latex, plain.variant) == ("x", None)


def test_polygon_and_style_attributes_anywhere() -> None:
    raw = page(
        '<p style="color: red" data-polygon="1 2 30 2 30 40 1 40" data-bbox="1 2 30 40">'
        'red <span style="font-weight:bold" data-polygon="0 0 1 1">text</span></p>'
        '<h3 data-polygon="[[10, 20], [50, 20], [50, 60], [10, 60]]" style="x">only a polygon</h3>'
    )
    result = read_answer(raw)
    para, heading = result.blocks
    assert isinstance(para, Paragraph) and para.box == Box(1, 2, 30, 40)
    assert plain_text(para.content) == "red text"
    assert isinstance(heading, Heading) and heading.level == 3 and heading.box == Box(10, 20, 50, 60)
    assert result.warnings == ()


def test_half_written_attribute_at_the_end() -> None:
    raw = '```html\n<html><body>\n<p data-bbox="1 2 3 4">done</p>\n<p data-bbox="5 6 7'
    result = read_answer(raw)
    assert result.truncated and [block_text(b) for b in result.blocks] == ["done"]
    raw = page('<p data-bbox="1 2 3 4">done</p>')[: -len("</body></html>")] + '<p data-bbox="5 6 7 8">partial <b cla'
    result = read_answer(raw)
    assert result.truncated and [block_text(b) for b in result.blocks] == ["done", "partial"]


def test_table_with_spans_headers_and_a_style_block() -> None:
    raw = page(
        "<style>table { border-collapse: collapse } td { border: 1px solid }</style>"
        '<table data-bbox="10 20 300 400" class="table1" style="width:100%">'
        "<caption>Results</caption>"
        '<thead><tr><th colspan="2">Head</th><th rowspan="2">Side</th></tr></thead>'
        '<tbody><tr><td rowspan="2">a <b>bold</b></td><td colspan="x">b</td></tr>'
        '<tr><td colspan="0">c<br>d</td></tr></tbody></table>'
    )
    result = read_answer(raw)
    (table,) = result.blocks
    assert isinstance(table, Table)
    assert table.box == Box(10, 20, 300, 400) and table.raw_class == "table.table1"
    assert plain_text(table.caption) == "Results"
    assert table.rows == (
        (Cell(content=(Text("Head"),), colspan=2, header=True), Cell(content=(Text("Side"),), rowspan=2, header=True)),
        (Cell(content=(Text("a "), Styled("bold", (Text("bold"),))), rowspan=2), Cell(content=(Text("b"),))),
        (Cell(content=(Text("c"), LineBreak(), Text("d"))),),
    )
    assert "border" not in all_text(result)


def test_chart_with_its_data_table() -> None:
    raw = page(
        '<div class="chart" data-bbox="1 2 300 200"><img data-bbox="1 2 300 200"/>'
        "<table><tr><th>Year</th><th>Sales</th></tr><tr><td>2020</td><td>5</td></tr></table></div>"
    )
    (chart,) = read_answer(raw).blocks
    assert isinstance(chart, Chart) and chart.box == Box(1, 2, 300, 200) and chart.raw_class == "div.chart"
    assert chart.table is not None
    assert [[plain_text(c.content) for c in row] for row in chart.table.rows] == [["Year", "Sales"], ["2020", "5"]]
    assert chart.table.rows[0][0].header and chart.caption == ()
    (empty,) = read_answer(page('<div class="chart" data-bbox="1 2 3 4"><img data-bbox="1 2 3 4"/></div>')).blocks
    assert isinstance(empty, Chart) and empty.table is None


def test_music_abc_is_kept_byte_for_byte() -> None:
    abc = 'X:1\nT:Scale  in C\nM:4/4\nL:1/8\nK:C\n|: C D E F  G A B c :|\n"Am" e2 &amp; f2 |]'
    raw = page(
        f'<div class="music sheet" format="abc notation" data-bbox="1 2 3 4"><img data-bbox="1 2 3 4"/>'
        f"<div>\n{abc}\n  </div></div>"
    )
    result = read_answer(raw)
    (music,) = result.blocks
    assert isinstance(music, Music) and music.raw_class == "div.music sheet"
    assert music.abc == abc.replace("&amp;", "&")
    assert result.warnings == ()


def test_chemistry_smiles_is_kept_byte_for_byte() -> None:
    smiles = "C1=CC=C(C=C1)[N+](=O)[O-].Cl/C=C\\Br"
    raw = page(
        '<div class="chemical formula" format="smile" data-bbox="1 2 3 4"><img data-bbox="1 2 3 4"/>'
        f"<div>{smiles}</div></div>"
    )
    (chem,) = read_answer(raw).blocks
    assert isinstance(chem, Chemistry) and chem.smiles == smiles and chem.raw_class == "div.chemical formula"


def test_nested_lists() -> None:
    raw = page(
        '<ul data-bbox="1 2 3 4"><li data-bbox="1 2 3 3">one'
        "<ul><li>one.a</li><li>one.b<ol><li>deep</li></ol></li></ul></li>"
        "<li>two <i>it</i></li><li></li></ul>"
        '<ol data-bbox="5 6 7 8"><li>first</li><li>second</li></ol>'
    )
    bullets, numbers = read_answer(raw).blocks
    assert isinstance(bullets, ListBlock) and not bullets.ordered and bullets.raw_class == "ul"
    assert [plain_text(i.content) for i in bullets.items] == ["one", "two it"]  # the empty <li> is dropped
    one = bullets.items[0]
    assert one.box == Box(1, 2, 3, 3)
    (sub,) = one.children
    assert [plain_text(i.content) for i in sub.items] == ["one.a", "one.b"]
    (deepest,) = sub.items[1].children
    assert deepest.ordered and plain_text(deepest.items[0].content) == "deep"
    assert isinstance(numbers, ListBlock) and numbers.ordered and len(numbers.items) == 2
    assert block_text(bullets) == "one\none.a\none.b\ndeep\ntwo it"


def test_inline_markup() -> None:
    raw = page(
        '<p data-bbox="1 2 3 4">Plain <b>bold <i>both</i></b> <u>u</u> <s>s</s> <del>d</del> H<sub>2</sub>O '
        'x<sup>2</sup> <code>a  $x$ b</code> <a href="javascript:alert(1)">link</a> <a>no href</a><br>'
        "next <span>inner <font>deeper</font></span> <strong>  </strong>end</p>"
    )
    (para,) = read_answer(raw).blocks
    assert isinstance(para, Paragraph)
    assert para.content == (
        Text("Plain "),
        Styled("bold", (Text("bold "), Styled("italic", (Text("both"),)))),
        Text(" "),
        Styled("underline", (Text("u"),)),
        Text(" "),
        Styled("strike", (Text("s"),)),
        Text(" "),
        Styled("strike", (Text("d"),)),
        Text(" H"),
        Styled("sub", (Text("2"),)),
        Text("O x"),
        Styled("sup", (Text("2"),)),
        Text(" "),
        Styled("code", (Text("a $x$ b"),)),  # no math inside code
        Text(" "),
        Link("javascript:alert(1)", (Text("link"),)),  # the href as given: a sanitiser decides later
        Text(" no href"),
        LineBreak(),
        Text("next inner deeper end"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("costs $5", (Text("costs $5"),)),
        ("from $5 to $10 today", (Text("from $5 to $10 today"),)),
        ("$5-$10", (Text("$5-$10"),)),
        ("a $ b $ c", (Text("a $ b $ c"),)),
        ("escaped \\$x$ sign", (Text("escaped \\$x$ sign"),)),
        ("size $0.5 \\mathrm{~B}$, ok", (Text("size "), Math("0.5 \\mathrm{~B}"), Text(", ok"))),
        ("${ }^{8}$ das", (Math("{ }^{8}"), Text(" das"))),
        ("paid $5 for $x$", (Text("paid $5 for "), Math("x"))),
        (
            "see \\(a^2\\) and \\[b\\] and $$c$$",
            (Text("see "), Math("a^2"), Text(" and "), Math("b"), Text(" and "), Math("c")),
        ),
        ("line\n  broken   $y$", (Text("line broken "), Math("y"))),
    ],
)
def test_inline_math(text: str, expected: tuple[Inline, ...]) -> None:
    (para,) = read_answer(page(f'<p data-bbox="1 2 3 4">{text}</p>')).blocks
    assert isinstance(para, Paragraph) and para.content == expected


def test_images_in_every_form() -> None:
    raw = page(
        '<div class="image" data-bbox="1 2 3 4"><img data-bbox="1 2 3 4"/></div>'
        '<div class="image ocr" data-bbox="5 6 7 8"><img data-bbox="5 6 7 8"/><p>STOP</p><p>road  sign</p></div>'
        '<div class="image caption"><img data-bbox="9 9 19 19"/><p>Figure 2: a cat</p></div>'
        '<img data-bbox="20 20 30 30"/>'
    )
    plain, ocr, captioned, bare = read_answer(raw).blocks
    assert plain == Figure(box=Box(1, 2, 3, 4), raw_class="div.image")
    assert (
        isinstance(ocr, Figure)
        and ocr.caption == ()
        and ocr.inner_text == (Text("STOP"), LineBreak(), Text("road sign"))
    )
    assert isinstance(captioned, Figure) and plain_text(captioned.caption) == "Figure 2: a cat"
    assert captioned.box == Box(9, 9, 19, 19)  # the div has none: the img's
    assert bare == Figure(box=Box(20, 20, 30, 30), raw_class="img")


def test_code_keeps_its_whitespace() -> None:
    raw = page('<pre data-bbox="1 2 3 4" class="language-python">\ndef f(x):\n    return  x &lt; 2\n</pre>')
    (code,) = read_answer(raw).blocks
    assert code == Code(
        text="def f(x):\n    return  x < 2", language="python", box=Box(1, 2, 3, 4), raw_class="pre.language-python"
    )


def test_unknown_elements_are_kept_as_other_and_containers_walked_into() -> None:
    raw = page(
        '<address data-bbox="1 1 2 2">Some  Street 1</address>'
        '<div class="footnote" data-bbox="3 3 4 4">a <i>note</i></div>'
        '<span data-bbox="5 5 6 6">loose span</span>'
        "<section><h4>Inside</h4><p>para</p>tail text</section>"
        '<div class="sidebar" data-bbox="7 7 8 8"><p>one</p><p>two</p></div>'
        "<custom-tag>custom</custom-tag>"
    )
    result = read_answer(raw)
    assert [(type(b).__name__, getattr(b, "raw_class", ""), block_text(b)) for b in result.blocks] == [
        ("Other", "address", "Some Street 1"),
        ("Other", "div.footnote", "a note"),
        ("Other", "span", "loose span"),
        ("Heading", "h4", "Inside"),
        ("Paragraph", "p", "para"),
        ("Other", "section", "tail text"),
        ("Paragraph", "p", "one"),
        ("Paragraph", "p", "two"),
        ("Other", "custom-tag", "custom"),
    ]
    assert result.blocks[0].box == Box(1, 1, 2, 2)


def test_head_script_style_and_comments_are_never_content() -> None:
    raw = (
        "<html><head><title>TITLE</title><meta charset='gbk'><style>p{color:red}</style></head><body>"
        '<script>alert("x")</script><noscript>NOSCRIPT</noscript><!-- COMMENT -->'
        '<p data-bbox="1 2 3 4">kept<script>var y</script></p><template>TEMPLATE</template></body></html>'
    )
    result = read_answer(raw)
    assert [block_text(b) for b in result.blocks] == ["kept"]


def test_boxes_are_ordered_clamped_parsed_and_mapped() -> None:
    raw = page(
        '<p data-bbox="30 40 10 20">inverted</p>'
        '<p data-bbox=" 1.5, 2.25 ,10.75   20 ">floats</p>'
        '<p data-bbox="-5 10 120 300">outside</p>'
        '<p data-bbox="90 90 150 150">outside too</p>'
        '<p data-bbox="1 2 three 4">bad</p>'
        '<p data-bbox="1 2 3">short</p>'
        '<p data-bbox="nan 1 2 3">nan</p>'
    )
    result = read_answer(raw, image_size=(100, 200))
    boxes = [b.box for b in result.blocks]
    assert boxes == [
        Box(10, 20, 30, 40),
        Box(1.5, 2.25, 10.75, 20),
        Box(0, 10, 100, 200),
        Box(90, 90, 100, 150),
        None,
        None,
        None,
    ]
    assert sum("clamped" in w for w in result.warnings) == 1
    assert sum("unreadable data-bbox" in w for w in result.warnings) == 3
    mapped = read_answer(raw, image_size=(100, 200), page_size=(300.0, 100.0))
    assert [b.box for b in mapped.blocks][:3] == [Box(30, 10, 90, 20), Box(4.5, 1.12, 32.25, 10), Box(0, 5, 300, 100)]
    # no image size: no clamping, no mapping, even with a page size (and a warning says so)
    loose = read_answer(raw, page_size=(300.0, 100.0))
    assert loose.blocks[2].box == Box(-5, 10, 120, 300)
    assert any("without image_size" in w for w in loose.warnings)


def test_bad_sizes_are_ignored_with_a_warning() -> None:
    result = read_answer(page('<p data-bbox="1 2 3 4">x</p>'), image_size=(0, 10), page_size=(-1.0, 5.0))
    assert result.blocks[0].box == Box(1, 2, 3, 4) and len(result.warnings) == 2


@pytest.mark.parametrize(
    ("raw", "truncated"),
    [
        (page('<p data-bbox="1 2 3 4">x</p>'), False),
        ('<html><body><p data-bbox="1 2 3 4">x</p>', True),
        ('<html><body><p data-bbox="1 2 3 4">x', True),
        ('<html><body><p data-bbox="1 2 3 4">x</p></body', True),
        ('<p data-bbox="1 2 3 4">fragment</p>', False),
        ('<p data-bbox="1 2 3 4">fragment', True),
        ("costs $5, no markup", False),
        ('<html><body><p data-bbox="1 2 3 4">a < b</p></body></html>', False),
    ],
)
def test_truncation(raw: str, truncated: bool) -> None:
    assert read_answer(raw).truncated is truncated


def test_plain_text_answer_is_unstructured_and_kept() -> None:
    result = read_answer("The page shows a cat. It costs $5.")
    assert not result.structured
    assert [block_text(b) for b in result.blocks] == ["The page shows a cat. It costs $5."]
    assert isinstance(result.blocks[0], Other)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   \n ",
        "```html\n```",
        "\x00\x01\x02",
        "<!-- only a comment -->",
        "<html></html>",
        "\ud800\udfff<p>\ud83d</p>",
        "&#0;&#xD800;&#1;",
    ],
)
def test_degenerate_inputs_do_not_raise(raw: str) -> None:
    result = read_answer(raw)
    assert isinstance(result, ReadResult)
    for block in result.blocks:
        block_to_json(block)


def test_nul_bytes_and_surrogates_keep_the_rest() -> None:
    result = read_answer(page('<p data-bbox="1 2 3 4">a\x00b\ud800c</p>'))
    assert [block_text(b) for b in result.blocks] == ["ab\ufffdc"]


def test_an_internal_error_gives_the_text_and_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, root: object) -> list[Block]:
        raise RuntimeError("boom")

    monkeypatch.setattr(BlockReader, "read_tree", broken)
    result = read_answer(page('<p data-bbox="1 2 3 4">still <b>here</b></p><style>x{}</style>'))
    assert [block_text(b) for b in result.blocks] == ["still", "here"]
    assert all(isinstance(b, Other) for b in result.blocks)
    assert len(result.warnings) == 1 and "RuntimeError: boom" in result.warnings[0]
    assert result.structured


def test_degenerate_repetition_is_kept_as_is() -> None:
    raw = page('<table data-bbox="1 2 3 4">' + "<tr><td>same</td><td>cell</td></tr>" * 300)[: -len("</body></html>")]
    result = read_answer(raw)
    (table,) = result.blocks
    assert isinstance(table, Table) and len(table.rows) == 300 and result.truncated


# --- size, depth, and random input ----------------------------------------------------------


@pytest.mark.parametrize("tag", ["div", "b", "ul", "span", "table"])
def test_twenty_thousand_levels_of_nesting(tag: str) -> None:
    n = 20_000
    raw = page(
        f'<p data-bbox="1 2 3 4">before</p>{f"<{tag}>" * n}deep{f"</{tag}>" * n}<p data-bbox="1 2 3 4">after</p>'
    )
    start = time.perf_counter()
    result = read_answer(raw)
    assert time.perf_counter() - start < 5
    text = all_text(result)
    assert "before" in text and "deep" in text and "after" in text
    for block in result.blocks:  # the document model's recursive JSON code copes with what comes out
        json.dumps(block_to_json(block))


def test_deep_inline_nesting_inside_a_paragraph() -> None:
    raw = page(f'<p data-bbox="1 2 3 4">a {"<i>" * 20_000}b{"</i>" * 20_000} c</p>')
    (para,) = read_answer(raw).blocks
    assert block_text(para) == "a b c"
    block_to_json(para)


def test_a_five_megabyte_answer() -> None:
    row = '<p data-bbox="101 341 868 563">The same sentence, again and again, as a looping model writes it.</p>\n'
    raw = "```html\n<html><body>\n" + row * (5_000_000 // len(row))
    assert len(raw) > 4_900_000
    start = time.perf_counter()
    result = read_answer(raw, image_size=(1008, 1540), page_size=(612, 935))
    assert time.perf_counter() - start < 10
    assert result.truncated and len(result.blocks) == 5_000_000 // len(row)


def _sources() -> list[str]:
    texts = [(DATA / "qwenvl" / name).read_text(encoding="utf-8") for name in (F01, F02)]
    texts += [p.read_text(encoding="utf-8") for p in sorted(QWENVL_FIXTURES.glob("*.html"))]
    return texts


SOURCES = _sources()
SOUP = ["<", ">", "</", "<p", "<div class='formula'>", "</div>", "<table>", "<td colspan=99999999999>", "<tr>",
        "<ul><li>", "</li>", "$", "$$", "\\(", "&", "&#0;", "<br>", '"', "data-bbox='", "<img data-bbox='1 2'/>",
        "<style>", "</html>", "<html><body>", "```", "\x00", "\ud800", "<b><i>", "<![CDATA[", "<!--", "-->",
        "<script>", "<div class='chart'>", "<div class='music sheet'><div>", "<div class='image ocr'>"]  # fmt: skip


@st.composite
def mutated_answers(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["cut", "insert", "delete", "junk"]))
        if op == "cut":
            text = text[:i]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(SOUP)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 200)) :]
        else:
            text = text[:i] + draw(st.text(max_size=30)) + text[i:]
    return text


def check_result(result: ReadResult, image_size: tuple[int, int] | None = None) -> None:
    assert isinstance(result, ReadResult)
    assert isinstance(result.truncated, bool) and isinstance(result.structured, bool)
    assert all(isinstance(w, str) and "\n" not in w for w in result.warnings)
    assert not any(w.startswith("the reader failed") for w in result.warnings), result.warnings
    for block in result.blocks:
        json.dumps(block_to_json(block))
        box = getattr(block, "box", None)
        if box is not None:
            assert box.x0 <= box.x1 and box.y0 <= box.y1
            if image_size is not None:
                assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= image_size[0] and box.y1 <= image_size[1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text_never_raises(raw: str) -> None:
    check_result(read_answer(raw, image_size=(100, 100)), (100, 100))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SOUP) | st.text(max_size=8), max_size=60).map("".join))
def test_tag_soup_never_raises(raw: str) -> None:
    check_result(read_answer(raw, image_size=(50, 80), page_size=(10.0, 10.0)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_answers())
def test_mutated_answers_never_raise(raw: str) -> None:
    check_result(read_answer(raw, image_size=(2100, 3000)), (2100, 3000))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(SOURCES), st.integers(0, 4000))
def test_a_cut_answer_keeps_the_text_before_the_cut(source: str, cut: int) -> None:
    prefix = source[:cut]
    result = read_answer(prefix)
    check_result(result)
    if 0 < cut < len(source.rstrip()) and (prefix.startswith("<") or "```html" in prefix):
        assert result.truncated
    safe = prefix[: prefix.rfind("<")] if "<" in prefix else prefix
    if safe.strip():
        text = all_text(result)
        pieces = visible_text(safe)
        missing = [piece for piece in pieces[:-1] if piece not in text]  # the last may be cut mid-word
        assert not missing
