"""The text-layer check on real fixture pages: answers built from the layer score high, doctored ones are
caught, untrustworthy layers are recognised, and pages without a layer carry null."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pymupdf
import pytest

from docparse.document import Box, Document, Page
from docparse.inputs.textlayer import read_layer
from docparse.layer.agreement import LOW_AGREEMENT, LOW_COVERAGE, check_document
from docparse.layer.textnorm import print_latex, tokens
from docparse.pipeline import render
from tests.layer_answers import Element, write_answer
from tests.paths import DATA, shared_file

Change = Callable[[list[Element]], list[Element]]
INVENTED = "The committee approved the new budget for the harbour bridge on Tuesday after a long debate."


def checked(tmp_path: Path, name: str, number: int = 1, change: Change = lambda e: e) -> Page:
    """Page `number` of fixture `name`, answered from its own layer (through `change`), rendered and checked."""
    pdf = shared_file("fixtures", "pdfs", name)
    (page,) = render([write_answer(tmp_path / "raw", pdf, number, change)]).pages
    return page


def scores(page: Page) -> list[float]:
    assert page.layer is not None
    return [a for a in page.layer.agreement if a is not None]


def longest(elements: list[Element]) -> int:
    return max(range(len(elements)), key=lambda i: len(elements[i].text))


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("col-multicolumn-lipsum-table.pdf", 1),  # two columns
        ("tab-tableformer-paper-p9.pdf", 1),  # a results table with overlapping header blocks
        ("cjk-multilang-hello-world.pdf", 1),  # English, Arabic, Russian, Chinese, Thai, Japanese
        ("cjk-korean-nars-report-4pp.pdf", 1),
        ("ar-arabic-word-doc.pdf", 1),  # right to left, lam-alef stored reversed, "وPython"
        ("tab-rot-nics-checks-rotate90.pdf", 1),  # /Rotate 90: turned upright before the model
        ("math-multivar-calculus-notes.pdf", 2),
    ],
)
def test_answers_built_from_the_layer_agree_with_it(tmp_path: Path, name: str, number: int) -> None:
    page = checked(tmp_path, name, number)
    assert page.layer is not None
    assert page.layer.coverage >= 0.99 and page.layer.missing == ()
    assert len(page.layer.agreement) == len(page.blocks) and min(scores(page)) >= 0.99


def test_the_rotated_page_was_turned_and_its_boxes_still_meet_the_layer(tmp_path: Path) -> None:
    page = checked(tmp_path, "tab-rot-nics-checks-rotate90.pdf")
    assert page.rotation in (90, 270) and (page.width, page.height) == (612, 1008)
    assert page.layer is not None and page.layer.coverage == 1.0
    # The layer's lines are on the displayed (portrait) page, as the blocks are: the table runs down it.
    assert all(m.box.y1 <= 1008 and m.box.x1 <= 612 for m in page.layer.missing)
    assert all(b.box is not None and b.box.x1 <= 612.5 and b.box.y1 <= 1008.5 for b in page.blocks)


@pytest.mark.parametrize("name", ["col-multicolumn-lipsum-table.pdf", "cjk-korean-nars-report-4pp.pdf"])
def test_a_dropped_paragraph_is_in_layer_missing_and_lowers_coverage(tmp_path: Path, name: str) -> None:
    dropped: list[Element] = []

    def drop(elements: list[Element]) -> list[Element]:
        dropped.append(elements.pop(longest(elements)))
        return elements

    page = checked(tmp_path, name, change=drop)
    assert page.layer is not None and page.layer.coverage < LOW_COVERAGE
    box = dropped[0].box
    inside = [m for m in page.layer.missing if box.x0 - 1 <= m.box.x0 and m.box.x1 <= box.x1 + 1]
    assert inside and all(box.y0 - 1 <= m.box.y0 and m.box.y1 <= box.y1 + 1 for m in inside)
    assert tokens(" ".join(m.text for m in inside)) == tokens(dropped[0].text)  # every line of it, nothing else
    assert min(scores(page)) >= 0.99  # what the model kept still agrees


@pytest.mark.parametrize("name", ["col-multicolumn-lipsum-table.pdf", "ar-arabic-word-doc.pdf"])
def test_an_invented_paragraph_has_low_agreement(tmp_path: Path, name: str) -> None:
    page = checked(tmp_path, name, change=lambda e: [*e, Element(INVENTED, Box(72, 770, 540, 785))])
    assert page.layer is not None
    assert page.layer.agreement[-1] is not None and page.layer.agreement[-1] < LOW_AGREEMENT
    assert min(page.layer.agreement[:-1]) >= 0.99 and page.layer.coverage >= 0.99  # type: ignore[type-var]


def test_a_sentence_invented_inside_a_paragraph_lowers_its_agreement(tmp_path: Path) -> None:
    def insert(elements: list[Element]) -> list[Element]:
        i = longest(elements)
        elements[i] = dataclasses.replace(elements[i], text=elements[i].text + " " + INVENTED)
        return elements

    page = checked(tmp_path, "col-multicolumn-lipsum-table.pdf", change=insert)
    base = checked(tmp_path / "base", "col-multicolumn-lipsum-table.pdf")
    assert page.layer is not None and base.layer is not None
    changed = [i for i, (a, b) in enumerate(zip(page.layer.agreement, base.layer.agreement, strict=True)) if a != b]
    assert len(changed) == 1 and page.layer.agreement[changed[0]] < 0.96  # type: ignore[operator]


def test_a_changed_number_lowers_its_blocks_agreement(tmp_path: Path) -> None:
    where: list[tuple[int, str]] = []

    def bump(m: re.Match[str]) -> str:
        return f"{m.group(1)}.{(int(m.group(2)) + 1) % 10}"

    def change_digit(elements: list[Element]) -> list[Element]:
        for i, element in enumerate(elements):
            if re.search(r"\d\.\d", element.text):  # a figure in the results table
                elements[i] = dataclasses.replace(element, text=re.sub(r"(\d)\.(\d)", bump, element.text, count=1))
                where.append((i, element.text))
                break
        return elements

    page = checked(tmp_path, "tab-tableformer-paper-p9.pdf", change=change_digit)
    assert page.layer is not None and where
    index, text = where[0]
    n = len(tokens(text))  # one token of n is wrong on each side: Dice (n - 1) / n
    assert page.layer.agreement[index] == pytest.approx((n - 1) / n, abs=0.002)
    others = [a for i, a in enumerate(page.layer.agreement) if i != index and a is not None]
    assert min(others) >= 0.99


def test_shuffled_reading_order_is_not_judged_but_text_under_the_wrong_box_is(tmp_path: Path) -> None:
    base = checked(tmp_path / "a", "col-multicolumn-lipsum-table.pdf")
    reversed_page = checked(tmp_path / "b", "col-multicolumn-lipsum-table.pdf", change=lambda e: e[::-1])
    assert base.layer is not None and reversed_page.layer is not None
    assert reversed_page.layer.coverage == base.layer.coverage == 1.0
    assert sorted(scores(reversed_page)) == sorted(scores(base))

    def swap(elements: list[Element]) -> list[Element]:
        i = longest(elements)
        j = (i + 1) % len(elements)
        a, b = elements[i], elements[j]
        elements[i], elements[j] = dataclasses.replace(a, text=b.text), dataclasses.replace(b, text=a.text)
        return elements

    swapped = checked(tmp_path / "c", "col-multicolumn-lipsum-table.pdf", change=swap)
    assert swapped.layer is not None
    assert sum(a < LOW_AGREEMENT for a in scores(swapped)) == 2 and swapped.layer.coverage < LOW_COVERAGE


def test_words_in_another_order_inside_a_block_keep_its_agreement(tmp_path: Path) -> None:
    def scramble(elements: list[Element]) -> list[Element]:
        return [dataclasses.replace(e, text=" ".join(reversed(e.text.split()))) for e in elements]

    page = checked(tmp_path, "col-multicolumn-lipsum-table.pdf", change=scramble)
    assert min(scores(page)) >= 0.99


def test_normalisation_of_ligatures_hyphens_presentation_forms_and_latex() -> None:
    assert tokens("Eﬃcient ﬁnal ﬂow") == tokens("Efficient final flow")
    assert tokens("hyphen-\nated, well-known") == tokens("hyphenated wellknown")
    assert tokens("\ufefb\ufe8e") == tokens("\u0644\u0627\u0627")  # lam-alef ligature, alef final form
    assert tokens("日本語") == ["日", "本", "語"]
    assert tokens("$x^{2} + \\alpha_i$") == tokens("x2 + αi")
    assert print_latex("\\frac{a}{b} \\leq \\infty").split() == ["ab", "≤", "∞"]


# --- layers not to be trusted, and no layer at all ----------------------------------------------


def _paragraphs(page: pymupdf.Page, **kwargs: object) -> None:
    for i in range(12):
        page.insert_text((72, 72 + 20 * i), f"The quick brown fox jumps over the lazy dog, line {i}.", **kwargs)


def broken_tounicode_pdf(path: Path) -> Path:
    """Visible text whose font's ToUnicode map sends every character into the private-use area."""
    doc = pymupdf.open()
    page = doc.new_page()
    _paragraphs(page)
    font = page.get_fonts()[0][0]
    cmap = (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Broken def "
        "1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfrange <20> <7E> <E020> endbfrange "
        "endcmap CMapName currentdict /CMap defineresource pop end end"
    )
    stream = doc.get_new_xref()
    doc.update_object(stream, "<<>>")
    doc.update_stream(stream, cmap.encode())
    doc.xref_set_key(font, "ToUnicode", f"{stream} 0 R")
    doc.save(path)
    return path


def glyph_names_pdf(path: Path) -> Path:
    """A layer that spells glyph names where the text should be (what some broken producers write)."""
    doc = pymupdf.open()
    page = doc.new_page()
    for i in range(12):
        page.insert_text((72, 72 + 20 * i), " ".join(f"g{7 * i + k}" for k in range(8)))
    doc.save(path)
    return path


def ocr_layer_pdf(path: Path) -> Path:
    """A scan: a page-sized image of text, with an invisible (render mode 3) OCR layer over it."""
    source = pymupdf.open()
    _paragraphs(source.new_page())
    picture = source[0].get_pixmap(dpi=100)
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(page.rect, pixmap=picture)
    _paragraphs(page, render_mode=3)
    doc.save(path)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [(broken_tounicode_pdf, "carry no text"), (glyph_names_pdf, "glyph names"), (ocr_layer_pdf, "OCR layer")],
)
def test_an_untrustworthy_layer_is_recognised_and_gives_null(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    pdf = make(tmp_path / "page.pdf")
    with pymupdf.open(pdf) as doc:
        layer = read_layer(doc[0])
    assert not layer.usable and layer.reason is not None and reason in layer.reason
    assert layer.words  # there is text; it is just not trusted
    (page,) = render([write_answer(tmp_path / "raw", pdf, 1)]).pages
    assert page.blocks and page.layer is None


def test_the_same_page_with_its_text_visible_is_trusted(tmp_path: Path) -> None:
    doc = pymupdf.open()
    _paragraphs(doc.new_page())
    with doc:
        assert read_layer(doc[0]).usable


@pytest.mark.parametrize("name", ["scan-docling-ocr-test.pdf", "rot-scan-ocr-test-rotate270.pdf"])
def test_scans_without_a_layer_give_null(tmp_path: Path, name: str) -> None:
    pdf = shared_file("fixtures", "pdfs", name)
    answer = tmp_path / "page-0001.html"
    answer.write_text('<html><body><p data-bbox="10 10 400 60">Docling bundles PDF document conversion</p>')
    sidecar = {"source": str(pdf), "page": 1, "page_size": [595, 842], "unit": "pt", "image_size": [1000, 1400]}
    answer.with_suffix(".json").write_text(json.dumps(sidecar))
    (page,) = render([answer]).pages
    assert page.blocks and page.layer is None


def test_the_recorded_real_answers_render_with_the_fields_null() -> None:
    for name in ("01-cookbook-qwen25-techreport-72b", "02-cookbook-qwen25-techreport-truncated-1024tok"):
        data = json.loads((DATA / "golden" / f"{name}.json").read_text())
        assert all(p["layer_coverage"] is None and p["layer_missing"] is None for p in data["pages"])
        assert all(b["layer_agreement"] is None for p in data["pages"] for b in p["blocks"])


def test_the_check_adds_fields_and_changes_nothing_the_model_said(tmp_path: Path) -> None:
    pdf = shared_file("fixtures", "pdfs", "col-multicolumn-lipsum-table.pdf")
    doc = render([write_answer(tmp_path, pdf, 1)])
    bare = dataclasses.replace(doc, pages=tuple(dataclasses.replace(p, layer=None) for p in doc.pages))
    with pymupdf.open(pdf) as source:
        again = check_document(bare, {1: read_layer(source[0])})
    assert again == doc
    assert [p.blocks for p in again.pages] == [p.blocks for p in bare.pages]
    assert Document.from_json(doc.to_json()) == doc  # the fields go through JSON and back
