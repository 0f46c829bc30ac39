"""Writers: JSON against the shipped schema, HTML structure and safety, GFM structure and escaping."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, get_args

import jsonschema
import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from docparse.config import WriteOptions
from docparse.document import (
    BLOCK_TYPES,
    SCHEMA_VERSION,
    Block,
    Box,
    Cell,
    Chart,
    Chemistry,
    Code,
    Document,
    Figure,
    FinishReason,
    Formula,
    Generation,
    Heading,
    Inline,
    LineBreak,
    Link,
    ListBlock,
    ListItem,
    Math,
    Music,
    Other,
    Page,
    PageStatus,
    Paragraph,
    Part,
    Role,
    Style,
    Styled,
    Table,
    Text,
    block_type_name,
    document_from_json,
)
from docparse.errors import UsageError
from docparse.writers import WRITERS, write
from docparse.writers.common import clean_text
from docparse.writers.json import document_schema
from docparse.writers.notation import MATHML_TAGS, SVG_TAGS

HTML = WriteOptions(format="html")
MD = WriteOptions(format="md")
JSON = WriteOptions(format="json")

VALIDATOR = jsonschema.Draft202012Validator(document_schema())
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
MARKDOWN.validateLink = lambda url: True  # type: ignore[method-assign]  # every link, to be checked

# --- documents built by hand ----------------------------------------------------------------

BOX = Box(10, 20.5, 300, 40.25)


def t(text: str) -> tuple[Inline, ...]:
    return (Text(text),)


RECT_TABLE = Table(
    rows=(
        (Cell(content=t("Name"), header=True), Cell(content=t("Value"), header=True)),
        (Cell(content=t("alpha")), Cell(content=(Math("x^2"),))),
        (Cell(content=t("beta")), Cell(content=t("a | b"))),
    ),
    caption=t("Table 1. Values"),
    box=Box(10, 100, 300, 200),
    raw_class="table",
)
SPAN_TABLE = Table(
    rows=(
        (Cell(content=t("Group"), header=True, rowspan=2), Cell(content=t("Scores"), header=True, colspan=2)),
        (Cell(content=t("A"), header=True), Cell(content=t("B"), header=True)),
        (Cell(content=t("g1")), Cell(content=t("1")), Cell(content=t("2"))),
    ),
    box=Box(10, 210, 300, 260),
    raw_class="table",
)
NESTED_LIST = ListBlock(
    ordered=False,
    items=(
        ListItem(
            content=t("first"),
            children=(
                ListBlock(
                    ordered=True,
                    items=(ListItem(content=t("one")), ListItem(content=t("two"), box=Box(30, 1, 90, 9))),
                ),
            ),
            box=Box(20, 0, 100, 10),
        ),
        ListItem(content=t("second")),
    ),
    box=Box(15, 0, 200, 40),
    raw_class="ul",
)
CODE_TEXT = 'print("```")\nx = `y`\n'
PAGE_1_BLOCKS: tuple[Block, ...] = (
    Heading(level=1, content=t("Report on Things"), box=BOX, raw_class="h1"),
    Heading(level=3, content=(Text("Part "), Styled("italic", t("two"))), box=BOX, raw_class="h3"),
    Paragraph(
        content=(
            Text("Plain, "),
            Styled("bold", t("bold")),
            Text(" "),
            Styled("italic", t("italic")),
            Text(" "),
            Styled("underline", t("under")),
            Text(" "),
            Styled("strike", t("struck")),
            Text(" H"),
            Styled("sub", t("2")),
            Text("O x"),
            Styled("sup", t("2")),
            Text(" "),
            Styled("code", t("a_b")),
            Text(" and "),
            Math(r"\alpha_1 * \beta_2"),
            LineBreak(),
            Link("https://example.org/a?b=1", t("a link")),
            Text(" "),
            Link("mailto:someone@example.org", t("mail")),
        ),
        box=BOX,
        raw_class="p",
    ),
    NESTED_LIST,
    ListBlock(ordered=True, items=(ListItem(content=t("numbered")),), raw_class="ol"),
    RECT_TABLE,
    SPAN_TABLE,
    Figure(
        caption=t("Figure 2. A cat."),
        inner_text=t("TEXT IN PICTURE"),
        box=Box(0, 300, 200, 400),
        raw_class="div.image",
    ),
    Formula(latex=r"E = mc^2 \quad a<b", variant="handwritten", box=BOX, raw_class="div.formula.handwritten"),
    Chart(
        table=Table(
            rows=(
                (Cell(content=t("year")), Cell(content=t("sales"))),
                (Cell(content=t("2020")), Cell(content=t("5"))),
            )
        ),
        caption=t("Sales by year"),
        box=BOX,
        raw_class="div.chart",
    ),
    Chemistry(smiles="C1=CC=CC=C1O", box=BOX, raw_class="div.chemical formula"),
    Music(abc="X:1\nT:Canon\nK:C\nCDEF|GABc|", box=BOX, raw_class="div.music sheet"),
    Code(text=CODE_TEXT, language="python", box=BOX, raw_class="pre"),
    Other(content=t("something else"), box=BOX, raw_class="div.mystery"),
)
FULL = Document(
    source="/data/in/report.pdf",
    metadata={"title": "Report", "pages": 2, "tags": ["a", "b"], "extra": {"x": None}},
    pages=(
        Page(
            number=1,
            width=612,
            height=792,
            unit="pt",
            image_size=(1008, 1316),
            blocks=PAGE_1_BLOCKS,
            generation=Generation(
                model="Qwen/Qwen2.5-VL-3B-Instruct",
                prompt="QwenVL HTML",
                tokens_in=1200,
                tokens_out=800,
                seconds=12.5,
                finish_reason="stop",
            ),
        ),
        Page(
            number=2,
            width=612.5,
            height=792,
            unit="px",
            image_size=None,
            blocks=(Paragraph(content=t("Page two text."), box=Box(1.5, 2, 3, 4), raw_class="p"),),
            status="truncated",
            warnings=("output cut at max_new_tokens=1024",),
            generation=Generation(
                model="m",
                prompt="QwenVL HTML",
                tokens_in=1,
                tokens_out=1024,
                seconds=3,
                finish_reason="length",
            ),
        ),
    ),
)
EMPTY = Document(source="empty.pdf", pages=())
EMPTY_PAGE = Document(
    source="blank.pdf", pages=(Page(number=1, width=100, height=100, unit="pt", image_size=None, blocks=()),)
)

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
HOSTILE_TEXT = f"before {SCRIPT} middle {IMG} after"
HOSTILE_HREFS = (
    "javascript:alert(1)",
    " JaVaScRiPt:alert(2)",
    "java\tscript:alert(3)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCg0KTwvc2NyaXB0Pg==",
    "vbscript:msgbox(5)",
    '"><script>alert(6)</script>',
)
HOSTILE = Document(
    source=f"{SCRIPT}.pdf",
    pages=(
        Page(
            number=1,
            width=1,
            height=1,
            unit="pt",
            image_size=None,
            status="failed",
            warnings=(SCRIPT,),
            blocks=(
                Heading(level=2, content=t(HOSTILE_TEXT), raw_class='h2" onclick="alert(1)'),
                Paragraph(
                    content=(
                        Text(HOSTILE_TEXT),
                        *(Link(href, t(f"link{i}")) for i, href in enumerate(HOSTILE_HREFS)),
                        Link("https://ok.example/?q=\"'><script>", t("fine")),
                        Math("</span><script>alert(1)</script>"),
                        Styled("bold", t(IMG)),
                    ),
                    raw_class="p",
                ),
                Table(rows=((Cell(content=t(SCRIPT), colspan=2),), (Cell(content=t(IMG)), Cell(content=t("x"))))),
                Figure(caption=t(SCRIPT), inner_text=t(IMG)),
                Formula(latex=SCRIPT, variant='x" onmouseover="alert(1)'),
                Chemistry(smiles=SCRIPT),
                Music(abc=IMG),
                Code(text=SCRIPT, language='py" onload="alert(1)'),
                Other(content=t("<iframe src=javascript:alert(1)></iframe>")),
            ),
        ),
    ),
)

DOCUMENTS = {"full": FULL, "empty": EMPTY, "empty_page": EMPTY_PAGE, "hostile": HOSTILE}


def page_of(*blocks: Block) -> Document:
    return Document(
        source="t.pdf",
        pages=(Page(number=1, width=10, height=10, unit="pt", image_size=None, blocks=blocks),),
    )


# --- helpers --------------------------------------------------------------------------------


def parse_html(out: str) -> Any:
    return lxml.html.document_fromstring(out.encode("utf-8"))


def md_to_html(md: str) -> Any:
    page = '<html><head><meta charset="utf-8"></head><body>' + MARKDOWN.render(md) + "</body></html>"
    return lxml.html.document_fromstring(page.encode("utf-8"))


def squash(text: str) -> str:
    return " ".join(text.split())


def all_inlines(value: Any) -> Iterator[Inline]:
    """Every inline in a model value (document, block, inline), depth first."""
    if isinstance(value, Text | Math | LineBreak):
        yield value
    elif isinstance(value, Styled | Link):
        yield value
        yield from all_inlines(value.children)
    elif isinstance(value, tuple | list):
        for v in value:
            yield from all_inlines(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from all_inlines(getattr(value, f.name))


NOTATION_TAGS = MATHML_TAGS | {t.lower() for t in SVG_TAGS}


def assert_inert(root: Any) -> None:
    """No script, no event handler, no resource, no href but http(s)/mailto in a parsed HTML tree."""
    allowed = {
        "html", "head", "meta", "title", "style", "body", "main", "section", "div", "p", "span", "br",
        "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "table", "caption", "thead", "tbody", "tr",
        "th", "td", "figure", "figcaption", "pre", "code", "strong", "em", "u", "s", "del", "sub", "sup", "a", "hr",
        "img", *MATHML_TAGS, *(t.lower() for t in SVG_TAGS),
    }  # fmt: skip
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue  # comments
        assert el.tag.split("}")[-1] in allowed, el.tag
        for name, value in el.attrib.items():
            assert not name.lower().startswith("on"), (el.tag, name)
            assert name not in ("srcdoc", "action", "formaction", "style", "xlink:href"), (el.tag, name)
            if el.tag.split("}")[-1] in NOTATION_TAGS:  # no paint server or link out of a formula or drawing
                assert "javascript" not in value.lower() and "url(" not in value.lower(), (el.tag, name, value)
            if name == "src":
                # Only the crops docparse writes: a PNG data URI or a path in a `*_files` folder beside the output.
                assert el.tag.split("}")[-1] == "img", el.tag
                assert re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/]*={0,2}|[^/:]+_files/[^/:]+\.png", value)
            if name == "href":
                assert re.match(r"(?i)(https?|mailto):", value), value


# --- registry -------------------------------------------------------------------------------


def test_registry_maps_every_format_to_its_writer() -> None:
    assert set(WRITERS) == {"md", "html", "json"}
    for name in WRITERS:
        out = write(FULL, WriteOptions(format=name))  # type: ignore[arg-type]
        assert out.endswith("\n") and not out.endswith("\n\n")


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown output format"):
        write(FULL, WriteOptions(format="pdf"))  # type: ignore[arg-type]


def test_hand_built_documents_cover_every_block_inline_and_style() -> None:
    blocks = [b for p in FULL.pages for b in p.blocks]
    assert {type(b) for b in blocks} == set(get_args(Block))
    inlines = list(all_inlines(FULL))
    assert {type(i) for i in inlines} == set(get_args(Inline))
    assert {i.style for i in inlines if isinstance(i, Styled)} == set(get_args(Style))


# --- JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCUMENTS)
def test_json_validates_against_the_schema(name: str) -> None:
    out = write(DOCUMENTS[name], JSON)
    assert out.endswith("}\n")
    VALIDATOR.validate(json.loads(out))


@pytest.mark.parametrize("name", DOCUMENTS)
def test_json_round_trips(name: str) -> None:
    doc = DOCUMENTS[name]
    assert document_from_json(json.loads(write(doc, JSON))) == doc


def test_json_round_trips_a_figure() -> None:
    doc = page_of(Figure(caption=t("cap"), inner_text=t("inside")))
    assert document_from_json(json.loads(write(doc, JSON))) == doc


def test_json_keeps_non_ascii_and_indents() -> None:
    out = write(page_of(Paragraph(content=t("Größe 東京 €"))), JSON)
    assert "Größe 東京 €" in out
    assert '\n  "pages": [' in out


def test_schema_declares_its_version_and_covers_the_model() -> None:
    schema = document_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(SCHEMA_VERSION)
    assert schema["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    defs = schema["$defs"]
    block_names = {block_type_name(b) for p in FULL.pages for b in p.blocks}
    # Every block type has its schema entry, and FULL holds one block of each.
    assert set(defs["block"]["properties"]["type"]["enum"]) == block_names == set(BLOCK_TYPES)
    shapes = {branch["if"]["properties"]["type"]["const"]: branch["then"]["$ref"] for branch in defs["block"]["allOf"]}
    assert shapes == {name: f"#/$defs/block_{name}" for name in BLOCK_TYPES}
    assert all(f"block_{name}" in defs for name in BLOCK_TYPES)
    assert set(defs["inline_styled"]["properties"]["style"]["enum"]) == set(get_args(Style))
    assert set(defs["role"]["enum"]) == set(get_args(Role))
    assert set(defs["page"]["properties"]["status"]["enum"]) == set(get_args(PageStatus))
    assert set(defs["generation"]["properties"]["finish_reason"]["enum"]) == set(get_args(FinishReason))


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


P0 = ("pages", 0)
B = (*P0, "blocks")  # page 1 blocks: 0 heading, 2 paragraph, 3 list, 5 table, 9 chart, 7 figure
MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "page number as string": _set((*P0, "number"), "1"),
    "page without unit": _delete((*P0, "unit")),
    "unit not pt/px": _set((*P0, "unit"), "cm"),
    "unknown status": _set((*P0, "status"), "partial"),
    "bad finish_reason": _set((*P0, "generation", "finish_reason"), "eos"),
    "generation missing tokens": _delete((*P0, "generation", "tokens_out")),
    "image_size of three": _set((*P0, "image_size"), [1, 2, 3]),
    "unknown block type": _set((*B, 0, "type"), "sidebar"),
    "block without text": _delete((*B, 0, "text")),
    "block with extra key": _set((*B, 0, "colour"), "red"),
    "heading level 7": _set((*B, 0, "level"), 7),
    "heading level as string": _set((*B, 0, "level"), "1"),
    "box of three numbers": _set((*B, 0, "box"), [1, 2, 3]),
    "box of strings": _set((*B, 0, "box"), ["1", "2", "3", "4"]),
    "paragraph content as string": _set((*B, 2, "content"), "text"),
    "unknown style": _set((*B, 2, "content", 1, "style"), "blink"),
    "unknown inline": _set((*B, 2, "content", 0, "type"), "span"),
    "text inline without text": _delete((*B, 2, "content", 0, "text")),
    "link without href": _delete((*B, 2, "content", -1, "href")),
    "list item without content": _delete((*B, 3, "items", 0, "content")),
    "nested list with type": _set((*B, 3, "items", 0, "children", 0, "type"), "list"),
    "colspan zero": _set((*B, 5, "rows", 0, 0, "colspan"), 0),
    "cell without header": _delete((*B, 5, "rows", 0, 0, "header")),
    "chart table as list": _set((*B, 9, "table"), []),
    "figure caption as string": _set((*B, 7, "caption"), "cap"),
    "other schema version": _set(("schema_version",), "2.0"),
    "metadata as list": _set(("metadata",), []),
    "missing pages": _delete(("pages",)),
    "missing title": _delete(("title",)),
    "unknown role": _set((*B, 0, "role"), "sidebar"),
    "block without role": _delete((*B, 0, "role")),
    "block without parts": _delete((*B, 0, "parts")),
    "part without page": _set((*B, 0, "parts"), [{"box": None, "box_norm": None}]),
    "box_norm over 1000": _set((*B, 0, "box_norm"), [0, 0, 1001, 10]),
    "box_norm of floats": _set((*B, 0, "box_norm"), [0.5, 0, 10, 10]),
    "unknown finish_reason": _set((*P0, "generation", "finish_reason"), "stopped"),
}


FULL_JSON = json.loads(write(FULL, JSON))


def test_mutation_targets_are_what_the_table_says() -> None:
    blocks = FULL_JSON["pages"][0]["blocks"]
    assert [blocks[i]["type"] for i in (0, 2, 3, 5, 7, 9)] == [
        "heading", "paragraph", "list", "table", "figure", "chart",
    ]  # fmt: skip


@pytest.mark.parametrize("name", MUTATIONS)
def test_schema_rejects_a_wrong_shape(name: str) -> None:
    # FULL's JSON itself validates: test_json_validates_against_the_schema[full].
    broken = copy.deepcopy(FULL_JSON)
    MUTATIONS[name](broken)
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(broken)


# --- HTML -----------------------------------------------------------------------------------


def test_html_is_a_self_contained_page() -> None:
    out = write(FULL, HTML)
    assert out.startswith("<!DOCTYPE html>\n")
    root = parse_html(out)
    assert root.find(".//meta[@charset]").get("charset") == "utf-8"
    assert root.findtext(".//title") == "Report on Things"
    assert root.find(".//style") is not None
    assert not root.xpath("//script | //link | //img | //iframe | //*[@src]")
    assert_inert(root)


def test_html_pages_are_sections_with_ids() -> None:
    root = parse_html(write(FULL, HTML))
    sections = root.xpath("//section[@class='page']")
    assert [s.get("id") for s in sections] == ["page-1", "page-2"]
    assert [s.get("data-page") for s in sections] == ["1", "2"]
    assert sections[0].get("data-width") == "612" and sections[1].get("data-width") == "612.5"
    assert [s.get("data-unit") for s in sections] == ["pt", "px"]


def test_html_blocks_keep_box_and_raw_class() -> None:
    root = parse_html(write(FULL, HTML))
    h1 = root.find(".//h1")
    assert h1.get("data-bbox") == "10 20.5 300 40.25"
    assert h1.get("data-raw-class") == "h1"
    assert root.xpath("//ul")[0].get("data-bbox") == "15 0 200 40"
    assert root.xpath("//ul/li")[0].get("data-bbox") == "20 0 100 10"
    assert root.xpath("//section[@id='page-2']/p")[0].get("data-bbox") == "1.5 2 3 4"
    assert root.find(".//figure[@class='figure']").get("data-raw-class") == "div.image"


def test_html_headings_paragraphs_and_inlines() -> None:
    root = parse_html(write(FULL, HTML))
    assert root.findtext(".//h1") == "Report on Things"
    assert root.find(".//h3").text_content() == "Part two"
    assert root.find(".//h3/em").text == "two"
    p = root.xpath("//section[@id='page-1']/p")[0]
    for tag, text in [("strong", "bold"), ("em", "italic"), ("u", "under"), ("s", "struck")]:
        assert p.find(tag).text == text
    assert [e.text for e in p.findall("sub")] == ["2"] and [e.text for e in p.findall("sup")] == ["2"]
    assert p.find("code").text == "a_b"
    math = p.find("span[@class='math']/math")
    assert math.get("display") == "inline" and math.find(".//mi").text == "α"
    assert math.findtext("semantics/annotation[@encoding='application/x-tex']") == r"\alpha_1 * \beta_2"
    assert p.find("br") is not None
    assert [(a.get("href"), a.text) for a in p.findall("a")] == [
        ("https://example.org/a?b=1", "a link"),
        ("mailto:someone@example.org", "mail"),
    ]


def test_html_nested_lists() -> None:
    root = parse_html(write(FULL, HTML))
    outer = root.xpath("//section[@id='page-1']/ul")[0]
    items = outer.findall("li")
    assert [li.text.strip() for li in items] == ["first", "second"]
    assert [li.text for li in items[0].findall("ol/li")] == ["one", "two"]
    assert root.xpath("//section[@id='page-1']/ol/li")[0].text == "numbered"


def test_html_tables_keep_spans_headers_and_caption() -> None:
    root = parse_html(write(FULL, HTML))
    rect, span = root.xpath("//section[@id='page-1']/table")
    assert rect.findtext("caption") == "Table 1. Values"
    assert [th.text for th in rect.findall("thead/tr/th")] == ["Name", "Value"]
    cells = rect.findall("tbody/tr/td")
    assert [td.text_content() for td in cells[::2]] + [cells[3].text] == ["alpha", "beta", "a | b"]
    assert cells[1].findtext(".//annotation") == "x^2" and cells[1].find(".//msup") is not None
    assert rect.get("data-bbox") == "10 100 300 200"
    group, scores = span.findall("thead/tr")[0]
    assert (group.tag, group.get("rowspan"), group.get("colspan")) == ("th", "2", None)
    assert (scores.tag, scores.get("colspan"), scores.text) == ("th", "2", "Scores")
    assert [th.text for th in span.findall("thead/tr")[1]] == ["A", "B"]
    assert [td.text for td in span.findall("tbody/tr/td")] == ["g1", "1", "2"]


def test_html_rowspan_never_crosses_from_thead_into_tbody() -> None:
    table = Table(
        rows=(
            (Cell(content=t("h"), header=True, rowspan=2), Cell(content=t("k"), header=True)),
            (Cell(content=t("v")),),
        )
    )
    root = parse_html(write(page_of(table), HTML))
    assert root.find(".//thead") is None
    assert root.xpath("//tbody/tr[1]/th")[0].get("rowspan") == "2"


def test_html_figure_formula_chart_and_literal_blocks() -> None:
    root = parse_html(write(FULL, HTML))
    fig = root.find(".//figure[@class='figure']")
    assert fig.find("div[@class='placeholder']") is not None
    assert fig.findtext("figcaption") == "Figure 2. A cat."
    assert "TEXT IN PICTURE" in fig.text_content()
    formula = root.find(".//div[@class='formula']")
    assert formula.get("data-variant") == "handwritten"
    math = formula.find("math")
    assert math.get("display") == "block" and math.find(".//msup") is not None
    assert math.findtext("semantics/annotation") == r"E = mc^2 \quad a<b"
    chart = root.find(".//figure[@class='chart']")
    assert [td.text for td in chart.findall("table/tbody/tr/td")] == ["year", "sales", "2020", "5"]
    assert chart.findtext("figcaption") == "Sales by year"
    assert root.findtext(".//pre[@class='smiles']") == "C1=CC=CC=C1O"
    assert root.findtext(".//pre[@class='abc']") == "X:1\nT:Canon\nK:C\nCDEF|GABc|"
    code = root.find(".//pre[@class='code']/code")
    assert (code.get("class"), code.text) == ("language-python", CODE_TEXT)
    assert root.findtext(".//div[@class='other']") == "something else"


def test_html_pre_keeps_a_leading_newline() -> None:
    # An HTML5 parser drops one newline right after <pre>; the writer doubles it.
    assert '<pre class="abc">\n\nX:1</pre>' in write(page_of(Music(abc="\nX:1")), HTML)


def test_html_page_status_note() -> None:
    root = parse_html(write(FULL, HTML))
    assert root.xpath("//section[@id='page-1']/div[@class='page-status']") == []
    (note,) = root.xpath("//section[@id='page-2']/div[@class='page-status']")
    assert note.get("data-status") == "truncated"
    assert "truncated" in note.text_content()
    assert "output cut at max_new_tokens=1024" in note.text_content()


def test_html_empty_document_and_empty_page() -> None:
    root = parse_html(write(EMPTY, HTML))
    assert root.find(".//main") is not None and root.find(".//section") is None
    assert root.findtext(".//title") == "empty.pdf"
    section = parse_html(write(EMPTY_PAGE, HTML)).xpath("//section")[0]
    assert section.get("id") == "page-1" and len(section) == 0 and not (section.text or "").strip()


def test_html_hostile_text_comes_out_inert_and_visible() -> None:
    out = write(HOSTILE, HTML)
    lowered = out.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<iframe" not in lowered
    assert "javascript:" not in re.sub(r">[^<]*<", "><", lowered)  # only ever in text, never markup
    root = parse_html(out)
    assert_inert(root)
    assert not root.xpath("//@*[starts-with(name(), 'on')]")
    text = root.text_content()
    assert text.count(HOSTILE_TEXT) >= 2  # heading and paragraph
    assert SCRIPT in root.findtext(".//title")
    for i in range(len(HOSTILE_HREFS)):
        assert f"link{i}" in text  # the text of a dropped link stays
    assert [a.get("href") for a in root.iter("a")] == ["https://ok.example/?q=\"'><script>"]
    assert root.find(".//h2").get("data-raw-class") == 'h2" onclick="alert(1)'
    assert root.find(".//div[@class='formula']").get("data-variant") == 'x" onmouseover="alert(1)'
    assert root.findtext(".//pre[@class='smiles']") == SCRIPT
    assert root.find(".//div[@class='page-status']").text_content().count(SCRIPT) == 1


def test_html_title_falls_back_to_the_file_name() -> None:
    doc = dataclasses.replace(page_of(Paragraph(content=t("x"))), source="/tmp/some dir/A & B.pdf")
    assert parse_html(write(doc, HTML)).findtext(".//title") == "A & B.pdf"


def test_html_drops_control_characters() -> None:
    out = write(page_of(Paragraph(content=t("a\x00b\x0cc\x1bd\r\ne"))), HTML)
    assert parse_html(out).findtext(".//p") == "ab cd\ne"


# --- Markdown -------------------------------------------------------------------------------


def test_markdown_layout() -> None:
    out = write(FULL, MD)
    assert out.endswith("\n") and not out.endswith("\n\n")
    assert "\n\n\n" not in out
    assert all(line == line.rstrip() for line in out.split("\n"))
    assert out.startswith("# Report on Things\n\n### Part *two*\n\n")
    assert out.endswith("something else\n\nPage two text.\n")


def test_markdown_empty_documents() -> None:
    assert write(EMPTY, MD) == ""
    assert write(EMPTY_PAGE, MD) == ""


def test_markdown_structure_parses_as_gfm() -> None:
    root = md_to_html(write(FULL, MD))
    assert root.findtext(".//h1") == "Report on Things"
    assert root.find(".//h3").text_content() == "Part two"
    p = root.findall(".//p")[0]
    for tag, text in [("strong", "bold"), ("em", "italic"), ("u", "under"), ("s", "struck"), ("code", "a_b")]:
        assert p.find(tag).text == text
    assert p.find("br") is not None
    assert [a.get("href") for a in p.findall("a")] == [
        "https://example.org/a?b=1",
        "mailto:someone@example.org",
    ]
    assert r"$\alpha_1 * \beta_2$" in p.text_content()
    (outer, numbered) = root.xpath("/html/body/ul | /html/body/ol")
    assert [li.text.strip() for li in outer.findall("li")] == ["first", "second"]
    assert [li.text for li in outer.findall("li/ol/li")] == ["one", "two"]
    assert [li.text for li in numbered.findall("li")] == ["numbered"]


def test_markdown_rectangular_table_is_a_pipe_table() -> None:
    out = write(page_of(RECT_TABLE), MD)
    assert out == ("*Table 1. Values*\n\n| Name | Value |\n| --- | --- |\n| alpha | $x^2$ |\n| beta | a \\| b |\n")
    root = md_to_html(out)
    assert [th.text for th in root.findall(".//thead/tr/th")] == ["Name", "Value"]
    assert [td.text for td in root.findall(".//tbody/tr/td")] == ["alpha", "$x^2$", "beta", "a | b"]


def test_markdown_table_without_header_row_still_gets_a_header_line() -> None:
    table = Table(rows=((Cell(content=t("a")), Cell(content=t("b"))), (Cell(content=t("c")), Cell(content=t("d")))))
    out = write(page_of(table), MD)
    assert out == "| a | b |\n| --- | --- |\n| c | d |\n"


def test_markdown_table_with_spans_is_an_html_table() -> None:
    out = write(page_of(SPAN_TABLE), MD)
    assert out.startswith("<table>") and "data-bbox" not in out
    root = md_to_html(out)
    assert root.xpath("//th[@rowspan='2']")[0].text == "Group"
    assert root.xpath("//th[@colspan='2']")[0].text == "Scores"
    assert [td.text for td in root.findall(".//tbody/tr/td")] == ["g1", "1", "2"]


def test_markdown_ragged_table_and_blank_lines_in_cells_stay_one_html_block() -> None:
    table = Table(rows=((Cell(content=t("a")),), (Cell(content=t("b\n\n\nc")), Cell(content=t("<b>d</b>")))))
    out = write(page_of(table), MD)
    assert "\n\n" not in out
    root = md_to_html(out)
    assert [td.text for td in root.findall(".//td")] == ["a", "b\nc", "<b>d</b>"]


def test_markdown_code_fence_survives_backticks() -> None:
    out = write(page_of(Code(text=CODE_TEXT, language="python")), MD)
    assert out.startswith("````python\n")
    (code,) = md_to_html(out).findall(".//pre/code")
    assert code.text == CODE_TEXT
    assert code.get("class") == "language-python"


def test_markdown_chemistry_music_and_formula_blocks() -> None:
    out = write(page_of(Chemistry(smiles="CCO"), Music(abc="X:1\nK:C\nCDEF|"), Formula(latex="a_1 * b_2")), MD)
    assert out == "```smiles\nCCO\n```\n\n```abc\nX:1\nK:C\nCDEF|\n```\n\n$$\na_1 * b_2\n$$\n"
    assert [c.text for c in md_to_html(out).findall(".//pre/code")] == ["CCO\n", "X:1\nK:C\nCDEF|\n"]


def test_markdown_math_is_verbatim_and_never_html() -> None:
    latex = r"\sum_{i=1}^{n} x_i * y_i \le [a, b] | \#"
    out = write(page_of(Paragraph(content=(Text("so "), Math(latex))), Formula(latex=latex)), MD)
    assert f"so ${latex}$\n" in out and f"$$\n{latex}\n$$\n" in out
    out = write(page_of(Paragraph(content=(Math("a<b"),)), Formula(latex="x <y\n<script>")), MD)
    assert "$a< b$" in out and "< script>" in out
    assert_inert(md_to_html(out))


@pytest.mark.parametrize(
    "latex",
    ["`", "``", "]( javascript:alert(1))", "[x](javascript:alert(1))", "![p](https://evil.example/p.png)"],
)
def test_markdown_math_cannot_set_markup_free(latex: str) -> None:
    # Math goes out unescaped: it must not pair with a code span's fence, nor make a link or image.
    para = Paragraph(content=(Math(latex), Styled("code", t(SCRIPT)), Text(" x "), Math("a")))
    out = write(page_of(para, Formula(latex=f"[t]: https://evil.example/t.png\n{latex}")), MD)
    root = md_to_html(out + "\n![t]\n")
    assert_inert(root)
    assert not root.xpath("//a | //img")
    assert SCRIPT in root.text_content()


def test_markdown_display_math_stays_one_paragraph() -> None:
    lines = ["a", "= b + c", "- d", "> e", "# f", "~~~", "1. g", "* h", "+ i", "| j |", "--- k"]
    out = write(page_of(Formula(latex="\n".join(lines) + "\n\n  \n")), MD)
    assert out.startswith("$$\na\n    = b + c\n    - d\n") and out.endswith("\n    --- k\n$$\n")
    body = md_to_html(out).find("body")
    assert [el.tag for el in body] == ["p"]
    assert squash(body.text_content()) == squash("$$ " + " ".join(lines) + " $$")


def test_markdown_figure_and_chart() -> None:
    out = write(page_of(*[b for b in PAGE_1_BLOCKS if isinstance(b, Figure | Chart)]), MD)
    assert out == (
        "<!-- figure -->\n\nTEXT IN PICTURE\n\n*Figure 2. A cat.*\n\n"
        "<!-- chart -->\n\n| year | sales |\n| --- | --- |\n| 2020 | 5 |\n\n*Sales by year*\n"
    )
    root = md_to_html(out)
    assert [e.text for e in root.findall(".//em")] == ["Figure 2. A cat.", "Sales by year"]


def test_markdown_model_markup_stays_literal() -> None:
    text = "Use *stars* and _under_ and <b>bold</b> and `tick` [x](y) ~~s~~ $5 &amp; | \\ end"
    out = write(page_of(Paragraph(content=t(text))), MD)
    root = md_to_html(out)
    (p,) = root.findall(".//p")
    assert p.text_content() == text
    assert len(p) == 0  # no element: no em, b, code, a, del


@pytest.mark.parametrize(
    "line",
    ["# not a heading", "> not a quote", "- not a list", "+ not a list", "1. not a list", "12) nor this",
     "---", "***", "===", "    not code", "```", "~~~", "<div>not html</div>", "| a | b |", "[ref]: /x"],
)  # fmt: skip
def test_markdown_line_starts_stay_text(line: str) -> None:
    out = write(page_of(Paragraph(content=t(f"first line\n{line}"))), MD)
    root = md_to_html(out)
    assert [el.tag for el in root.find("body")] == ["p"]
    assert squash(root.find(".//p").text_content()) == squash(f"first line {line}")
    out = write(page_of(Paragraph(content=t(line))), MD)
    assert squash(md_to_html(out).find(".//p").text_content()) == squash(line)


def test_markdown_heading_keeps_a_trailing_hash_and_one_line() -> None:
    out = write(page_of(Heading(level=2, content=(Text("C #"), LineBreak(), Text("x\ny")))), MD)
    assert out == "## C # x y\n"
    assert md_to_html(out).findtext(".//h2") == "C # x y"
    out = write(page_of(Heading(level=9, content=t("Item #"))), MD)
    assert out == "###### Item \\#\n"
    assert md_to_html(out).findtext(".//h6") == "Item #"


def test_markdown_consecutive_lists_stay_separate() -> None:
    a = ListBlock(ordered=False, items=(ListItem(content=t("a")),))
    b = ListBlock(ordered=False, items=(ListItem(content=t("b")),))
    c = ListBlock(ordered=False, items=(ListItem(content=t("c")),))
    n1 = ListBlock(ordered=True, items=(ListItem(content=t("1")), ListItem(content=t("2"))))
    n2 = ListBlock(ordered=True, items=(ListItem(content=t("3")),))
    empty = ListBlock(ordered=False, items=())
    out = write(page_of(a, b, empty, c, n1, n2), MD)
    assert out == "- a\n\n* b\n\n- c\n\n1. 1\n2. 2\n\n1) 3\n"
    root = md_to_html(out)
    assert [el.tag for el in root.find("body")] == ["ul", "ul", "ul", "ol", "ol"]
    nested = ListBlock(ordered=True, items=(ListItem(content=t("top"), children=(a, b, n1)),))
    out = write(page_of(nested), MD)
    assert out == "1. top\n   - a\n   * b\n   1. 1\n   2. 2\n"
    (li,) = md_to_html(out).xpath("/html/body/ol/li")
    assert [el.tag for el in li] == ["ul", "ul", "ol"]


def test_markdown_list_items_with_breaks_and_empty_items() -> None:
    block = ListBlock(
        ordered=True,
        items=(
            ListItem(content=(Text("line one"), LineBreak(), Text("- line two"))),
            ListItem(content=(), children=(ListBlock(ordered=False, items=(ListItem(content=t("deep")),)),)),
        ),
    )
    out = write(page_of(block), MD)
    assert out == "1. line one\\\n   \\- line two\n2.\n   - deep\n"
    root = md_to_html(out)
    (ol,) = root.findall(".//ol")
    first, second = ol.findall("li")
    assert squash(first.text_content()) == "line one - line two" and first.find("br") is not None
    assert second.find("ul/li").text == "deep"


def test_markdown_hostile_document_renders_inert() -> None:
    out = write(HOSTILE, MD)
    for href in HOSTILE_HREFS:
        assert f"]({href.strip()}" not in out
    root = md_to_html(out)
    assert_inert(root)
    text = root.text_content()
    assert HOSTILE_TEXT in text and SCRIPT in text
    assert [a.get("href") for a in root.iter("a")] == ["https://ok.example/?q=%22'%3E%3Cscript%3E"]


@pytest.mark.parametrize("style", ["underline", "sub", "sup", "bold", "italic", "strike"])
def test_markdown_styled_text_never_opens_an_html_block(style: Style) -> None:
    # "<u>" alone on a paragraph's first line would open a raw HTML block, where escapes do not apply.
    styled = Styled(style, (Text("\n"), LineBreak(), Text(f"{SCRIPT}\n")))
    items = ListBlock(ordered=False, items=(ListItem(content=(styled,)),))
    root = md_to_html(write(page_of(Paragraph(content=(styled,)), items), MD))
    assert_inert(root)
    assert root.text_content().count(SCRIPT) == 2


def test_markdown_emphasis_falls_back_to_html_when_delimiters_would_not_close() -> None:
    out = write(page_of(Paragraph(content=(Text("x"), Styled("bold", t('"quoted"')), Text("y")))), MD)
    assert out == 'x<strong>"quoted"</strong>y\n'
    assert md_to_html(out).findtext(".//strong") == '"quoted"'


# --- properties -----------------------------------------------------------------------------

MD_ALPHABET = st.sampled_from(
    [*"ab1 \n\t#>-+=*_`[]()<>!&;:$|~\\/.\"'", "\r", "\x00", "\x0c", "é", "中", "\u00a0", "&amp;", "<b>"]
)
md_text = st.lists(MD_ALPHABET, max_size=25).map("".join)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


MD_STYLE_TAGS: dict[str, tuple[str, ...]] = {
    "bold": ("strong",),
    "italic": ("em",),
    "strike": ("s", "del"),
    "underline": ("u",),
    "sub": ("sub",),
    "sup": ("sup",),
}


@SETTINGS
@given(md_text, st.sampled_from(sorted(MD_STYLE_TAGS)), md_text, md_text)
def test_property_markdown_text_round_trips_through_a_gfm_parser(a: str, style: Style, b: str, c: str) -> None:
    doc = page_of(Paragraph(content=(Text(a), Styled(style, t(b)), Text(c))))
    root = md_to_html(write(doc, MD))
    body = root.find("body")
    expected = squash(clean_text(a + b + c))
    if not expected:
        assert len(body) == 0
        return
    assert [el.tag for el in body] == ["p"]
    assert squash(body.text_content()) == expected
    styled = squash(clean_text(b))
    found = [el for el in body.iter() if el.tag in MD_STYLE_TAGS[style]]
    assert [squash(el.text_content()) for el in found] == ([styled] if styled else [])
    assert_inert(root)


@SETTINGS
@given(md_text, md_text)
def test_property_markdown_cells_and_headings_stay_literal(a: str, b: str) -> None:
    table = Table(rows=((Cell(content=t(a)), Cell(content=t(b))), (Cell(content=t(b)), Cell(content=t(a)))))
    doc = page_of(Heading(level=2, content=t(a + "x" + b)), table)
    root = md_to_html(write(doc, MD))
    assert squash(root.find(".//h2").text_content()) == squash(clean_text(a + "x" + b))
    cells = [squash(td.text_content()) for td in root.xpath("//th | //td")]
    assert cells == [squash(clean_text(s)) for s in (a, b, b, a)]
    assert_inert(root)


# Random documents, all block and inline types, hostile text in every string.
HOSTILE_ALPHABET = st.sampled_from([*"ab <>&\"'=/\n*_`|#-1.[]()$", SCRIPT, IMG, "javascript:", "onerror=", "é"])
any_text = st.lists(HOSTILE_ALPHABET, max_size=8).map("".join)
hrefs = st.one_of(st.sampled_from((*HOSTILE_HREFS, "https://x.example/a b", "mailto:a@b", "#frag")), any_text)
numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
boxes = st.none() | st.builds(Box, numbers, numbers, numbers, numbers)
parts = st.lists(st.builds(Part, page=st.integers(1, 3), box=boxes), max_size=2).map(tuple)
inlines = st.recursive(
    st.one_of(st.builds(Text, any_text), st.builds(Math, any_text), st.just(LineBreak())),
    lambda children: st.one_of(
        st.builds(Styled, st.sampled_from(get_args(Style)), st.lists(children, max_size=3).map(tuple)),
        st.builds(Link, hrefs, st.lists(children, max_size=3).map(tuple)),
    ),
    max_leaves=6,
)
contents = st.lists(inlines, max_size=4).map(tuple)
cells = st.builds(
    Cell,
    content=contents,
    colspan=st.integers(1, 3),
    rowspan=st.integers(1, 3),
    header=st.booleans(),
)
tables = st.builds(
    Table,
    rows=st.lists(st.lists(cells, max_size=3).map(tuple), max_size=3).map(tuple),
    caption=contents,
    box=boxes,
    raw_class=any_text,
)
lists = st.recursive(
    st.builds(ListBlock, ordered=st.booleans(), items=st.just(()), box=boxes, raw_class=any_text),
    lambda sub: st.builds(
        ListBlock,
        ordered=st.booleans(),
        items=st.lists(
            st.builds(ListItem, content=contents, children=st.lists(sub, max_size=2).map(tuple), box=boxes),
            min_size=1,
            max_size=3,
        ).map(tuple),
        box=boxes,
        raw_class=any_text,
    ),
    max_leaves=4,
)


# Crop references: ours, and what a hand-edited JSON document could hold instead.
images = (
    st.none()
    | st.sampled_from(
        [
            "doc_files/p0001-figure1.png",
            "my doc#1_files/p0002-chart3.png",
            "data:image/png;base64,iVBORw0KGgo=",
            "data:image/svg+xml;base64,PHN2Zz4=",
            "data:text/html,<script>alert(1)</script>",
            "javascript:alert(1)",
            "../../etc/passwd_files/x.png",
            "/abs_files/x.png",
            "https://evil.example/t.png",
            'x_files/a.png" onerror="alert(1)',
        ]
    )
    | any_text
)


def blocks(figures: bool) -> st.SearchStrategy[Block]:
    common = {"box": boxes, "raw_class": any_text, "role": st.sampled_from(get_args(Role)), "parts": parts}
    options: list[st.SearchStrategy[Any]] = [
        st.builds(Heading, level=st.integers(1, 6), content=contents, **common),
        st.builds(Paragraph, content=contents, **common),
        lists,
        tables,
        st.builds(Formula, latex=any_text, variant=st.none() | any_text, **common),
        st.builds(Chart, table=st.none() | tables, caption=contents, image=images, **common),
        st.builds(Chemistry, smiles=any_text, valid=st.none() | st.booleans(), image=images, **common),
        st.builds(Music, abc=any_text, valid=st.none() | st.booleans(), image=images, **common),
        st.builds(Code, text=any_text, language=st.none() | any_text, **common),
        st.builds(Other, content=contents, **common),
    ]
    if figures:
        options.append(st.builds(Figure, caption=contents, inner_text=contents, image=images, **common))
    return st.one_of(options)


generations = st.none() | st.builds(
    Generation,
    model=any_text,
    prompt=any_text,
    tokens_in=st.integers(0, 10**6),
    tokens_out=st.integers(0, 10**6),
    seconds=st.floats(0, 1e4),
    finish_reason=st.sampled_from(get_args(FinishReason)),
)


@st.composite
def documents(draw: st.DrawFn, figures: bool = True) -> Document:
    pages = []
    for number in range(1, draw(st.integers(0, 2)) + 1):
        pages.append(
            Page(
                number=number,
                width=draw(st.none() | st.floats(0, 1e4)),
                height=draw(st.none() | st.floats(0, 1e4)),
                unit=draw(st.sampled_from(["pt", "px"])),
                image_size=draw(st.none() | st.tuples(st.integers(1, 10**4), st.integers(1, 10**4))),
                blocks=tuple(draw(st.lists(blocks(figures), max_size=4))),
                status=draw(st.sampled_from(get_args(PageStatus))),
                warnings=tuple(draw(st.lists(any_text, max_size=2))),
                generation=draw(generations),
                attempts=draw(st.integers(0, 9)),
                rotation=draw(st.sampled_from([0, 90, 180, 270])),
            )
        )
    metadata = draw(st.dictionaries(any_text, st.none() | st.integers() | any_text, max_size=2))
    title = draw(st.none() | any_text)
    return Document(source=draw(any_text), pages=tuple(pages), metadata=metadata, title=title)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(figures=False))
def test_property_json_validates_and_round_trips(doc: Document) -> None:
    data = json.loads(write(doc, JSON))
    VALIDATOR.validate(data)
    assert document_from_json(data) == doc


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_property_every_writer_keeps_hostile_documents_inert(doc: Document) -> None:
    VALIDATOR.validate(json.loads(write(doc, JSON)))
    # Furniture kept, so that every text must show; the layout options change nothing about safety.
    out = write(doc, WriteOptions(format="html", keep_furniture=True, page_breaks=True))
    root = parse_html(out)
    assert_inert(root)
    visible = root.text_content()
    for item in all_inlines(doc):
        if isinstance(item, Text):
            assert clean_text(item.text) in visible
    md = write(doc, WriteOptions(format="md", keep_furniture=True, page_markers=True))
    assert md == "" or (md.endswith("\n") and not md.endswith("\n\n"))
    root = md_to_html(md)
    assert_inert(root)
    visible = squash(root.text_content())
    for item in all_inlines(doc):
        if isinstance(item, Text):
            assert squash(clean_text(item.text)) in visible
