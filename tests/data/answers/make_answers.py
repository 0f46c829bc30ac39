"""Writes the recorded multi-page answers in this folder from the fixture PDFs' text layers (see README.md here).

Run from the repository root with ../shared beside it: `.venv/bin/python tests/data/answers/make_answers.py`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pymupdf

from docparse.config import RasterOptions
from docparse.inputs.rasterize import target_size
from docparse.layer.textnorm import join_lines  # a word hyphenated at a line end is whole again

HERE = Path(__file__).resolve().parent
PDFS = HERE.parents[3] / "shared" / "fixtures" / "pdfs"
LIGATURES = str.maketrans({"ﬁ": "fi", "ﬂ": "fl", "ﬀ": "ff", "ﬃ": "ffi", "ﬄ": "ffl"})


@dataclass
class Element:
    """One element of an answer: its tag and attributes, its inner HTML, and its box in PDF points."""

    tag: str
    inner: str
    rect: pymupdf.Rect
    attrs: str = ""


@dataclass
class Line:
    rect: pymupdf.Rect
    text: str
    size: float


def lines_of(page: pymupdf.Page) -> list[Line]:
    out = []
    for block in page.get_text("dict")["blocks"]:
        for line in block.get("lines", []):
            text = "".join(s["text"] for s in line["spans"]).translate(LIGATURES)
            if text.strip():
                out.append(Line(pymupdf.Rect(line["bbox"]), text, line["spans"][0]["size"]))
    return out


def union(rects: Iterable[pymupdf.Rect]) -> pymupdf.Rect:
    rects = list(rects)
    r = pymupdf.Rect(rects[0])
    for other in rects[1:]:
        r |= other
    return r


def write_page(stem: str, pdf: pymupdf.Document, number: int, elements: list[Element]) -> None:
    page = pdf[number - 1]
    w_pt, h_pt = page.rect.width, page.rect.height
    w_px, h_px = target_size(w_pt, h_pt, "pt", RasterOptions())
    sx, sy = w_px / w_pt, h_px / h_pt
    body = []
    for e in elements:
        box = f"{round(e.rect.x0 * sx)} {round(e.rect.y0 * sy)} {round(e.rect.x1 * sx)} {round(e.rect.y1 * sy)}"
        body.append(f'<{e.tag}{e.attrs} data-bbox="{box}">{e.inner}</{e.tag}>')
    answer = "```html\n<html><body>\n" + "\n".join(body) + "\n</body></html>\n```"
    folder = HERE / stem
    folder.mkdir(exist_ok=True)
    path = folder / f"page-{number:04d}.html"
    path.write_text(answer, encoding="utf-8")
    sidecar = {
        "docparse_version": "0.1.0",
        "source": f"{stem}.pdf",
        "page": number,
        "page_size": [round(w_pt, 3), round(h_pt, 3)],
        "unit": "pt",
        "image_size": [w_px, h_px],
        "model": "hand-written in the Qwen2.5-VL QwenVL HTML format (no model run)",
        "prompt": "QwenVL HTML ",
        "system_prompt": "You are a helpful assistant.",
        "max_new_tokens": 8192,
        "tokens_in": 0,
        "tokens_out": 0,
        "seconds": 0.0,
        "finish_reason": "stop",
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def p(lines: list[Line], tag: str = "p") -> Element:
    return Element(tag, html.escape(join_lines(line.text for line in lines), quote=False), union(x.rect for x in lines))


# --- longtable manual, pages 2 and 3: Table 1 continues ------------------------------------


def longtable_rows(lines: list[Line], top: float, bottom: float) -> list[list[tuple[str, int, bool]]]:
    """Rows of the demo table between y=top and y=bottom: (text, colspan, header) cells, the `*` rules dropped.

    A line that crosses the column boundary (x 373-387 pt) is one cell spanning both columns; a line
    with text only in the right (p) column continues the row above it.
    """
    rows: list[list[tuple[str, int, bool]]] = []
    by_y: list[list[Line]] = []
    for line in sorted((ln for ln in lines if top <= ln.rect.y0 < bottom), key=lambda ln: ln.rect.y0):
        if by_y and abs(line.rect.y0 - by_y[-1][0].rect.y0) < 4:
            by_y[-1].append(line)
        else:
            by_y.append([line])
    for row_lines in by_y:
        texts = [(ln.rect, ln.text.replace("*", "").strip()) for ln in row_lines]
        texts = [(r, t) for r, t in texts if t]
        if not texts:
            continue
        wide = [t for r, t in texts if r.x0 < 373 and r.x1 > 387]
        if wide:
            rows.append([(" ".join(wide), 2, False)])
            continue
        left = " ".join(t for r, t in texts if r.x1 <= 380)
        right = " ".join(t for r, t in texts if r.x0 >= 380)
        if not left and rows and len(rows[-1]) == 2:
            rows[-1][1] = (join_lines([rows[-1][1][0], right]), 1, False)
            continue
        rows.append([(left, 1, False), (right, 1, False)])
    return rows


def table_html(rows: list[list[tuple[str, int, bool]]], header_rows: int) -> str:
    out = []
    for i, row in enumerate(rows):
        cells = []
        for text, span, _ in row:
            tag = "th" if i < header_rows else "td"
            attr = f' colspan="{span}"' if span > 1 else ""
            inner = re.sub(
                r"(?<=[a-z])([12])(?=\s|$)", r"<sup>\1</sup>", html.escape(text, quote=False)
            )  # footnote marks
            cells.append(f"<{tag}{attr}>{inner}</{tag}>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out)


def longtable() -> None:
    stem = "tab-longtable-doc-continued"
    pdf = pymupdf.open(PDFS / f"{stem}.pdf")
    for number, caption_y, table_top, table_bottom in ((2, 126, 150, 710), (3, 126, 150, 552)):
        lines = lines_of(pdf[number - 1])
        header = next(ln for ln in lines if ln.rect.y0 < 110)
        footer = next(ln for ln in lines if ln.rect.y0 > 740)
        caption = next(ln for ln in lines if abs(ln.rect.y0 - caption_y) < 2)
        table_lines = [ln for ln in lines if table_top <= ln.rect.y0 < table_bottom]
        rows = longtable_rows(lines, table_top, table_bottom)
        elements = [
            Element("p", "longtable.sty", header.rect),
            Element("p", html.escape(caption.text.strip(), quote=False), caption.rect),
            Element("table", table_html(rows, 2), union(ln.rect for ln in table_lines), ' class="table1"'),
        ]
        if number == 3:
            rest = [ln for ln in lines if table_bottom <= ln.rect.y0 < 740]
            heading = [ln for ln in rest if ln.size > 12]
            elements.append(Element("h2", "2 Chunk Size", union(ln.rect for ln in heading)))
            body = [ln for ln in rest if 9.5 < ln.size < 11 and ln.rect.x0 >= 140 and ln.rect.y0 > 600]
            elements.append(
                Element(
                    "p",
                    html.escape(join_lines(ln.text for ln in body), quote=False).replace("{10}.3", "{10}.<sup>3</sup>"),
                    union(ln.rect for ln in body),
                )
            )
            for note in (ln for ln in rest if ln.size < 7):
                mark, text = note.text[0], note.text[1:]
                elements.append(Element("p", f"<sup>{mark}</sup>{html.escape(text, quote=False)}", note.rect))
        page_no = re.search(r"Page \d+", footer.text)
        assert page_no is not None
        elements.append(Element("p", page_no.group(0), footer.rect))
        write_page(stem, pdf, number, elements)


# --- two-column lipsum, pages 1 and 2: a paragraph runs from page 1 onto page 2 ------------


def multicolumn() -> None:
    stem = "col-multicolumn-lipsum-table"
    pdf = pymupdf.open(PDFS / f"{stem}.pdf")
    for number in (1, 2):
        page = pdf[number - 1]
        elements = []
        for block in page.get_text("dict")["blocks"]:
            lines = [
                Line(pymupdf.Rect(ln["bbox"]), "".join(s["text"] for s in ln["spans"]).translate(LIGATURES), 0)
                for ln in block.get("lines", [])
            ]
            lines = [ln for ln in lines if ln.text.strip()]
            if not lines:
                continue
            size = block["lines"][0]["spans"][0]["size"]
            text = join_lines(ln.text for ln in lines)
            tag = "h1" if size > 16 else "h2" if size > 13 else "p"
            elements.append(p(lines, tag))
            assert elements[-1].inner == html.escape(text, quote=False)
        write_page(stem, pdf, number, elements)


# --- Korean report, pages 1-4: running header, colophon, footnotes -------------------------


def korean_groups(page: pymupdf.Page, skip: list[pymupdf.Rect]) -> list[list[Line]]:
    """Lines grouped into paragraphs: same size, same column, close below each other, and the next
    line not indented (an indented line starts a new paragraph)."""
    lines = [ln for ln in lines_of(page) if not any(r.contains(ln.rect) or r.intersects(ln.rect) for r in skip)]
    half = page.rect.width / 2
    lines.sort(key=lambda ln: (ln.rect.x0 >= half - 10, ln.rect.y0))
    groups: list[list[Line]] = []
    for line in lines:
        if groups:
            prev = groups[-1][-1]
            same_col = (prev.rect.x0 >= half - 10) == (line.rect.x0 >= half - 10)
            close = 0 <= line.rect.y0 - prev.rect.y1 < prev.size * 0.9
            if line.size < 10:  # footnotes: hanging indents; a new one starts with its mark
                new = bool(re.match(r"\s*(\d+\)|\*)", line.text))
            else:  # body text: an indented first line starts a paragraph
                new = line.rect.x0 > min(g.rect.x0 for g in groups[-1]) + 6
            if same_col and close and abs(line.size - prev.size) < 0.6 and not new:
                groups[-1].append(line)
                continue
        groups.append([line])
    return groups


def korean() -> None:
    stem = "cjk-korean-nars-report-4pp"
    pdf = pymupdf.open(PDFS / f"{stem}.pdf")
    for number in (1, 2, 3, 4):
        page = pdf[number - 1]
        tables = [t for t in page.find_tables().tables]
        table_rects = [pymupdf.Rect(t.bbox) for t in tables]
        groups = korean_groups(page, table_rects)
        # A section number printed in a box beside its heading joins the heading.
        for number_group in [g for g in groups if g[0].size >= 13 and g[0].text.strip().isdigit()]:
            heading = next(
                g for g in groups if g is not number_group and abs(g[0].rect.y0 - number_group[0].rect.y0) < 3
            )
            heading.insert(0, number_group[0])
            groups.remove(number_group)
        body_top = min(union(x.rect for x in g).y0 for g in groups if 11 <= g[0].size < 12)
        # Above the columns: the cover block on page 1, the running header on the others.
        limit = body_top if number == 1 else 80
        top = sorted((g for g in groups if union(x.rect for x in g).y1 < limit), key=lambda g: g[0].rect.y0)
        bottom = sorted((g for g in groups if g[0].rect.y0 > 785), key=lambda g: g[0].rect.x0)
        columns = [g for g in groups if g not in top and g not in bottom]
        elements: list[Element] = []
        for group in [*top, *columns, *bottom]:
            rect = union(x.rect for x in group)
            text = " ".join(" ".join(x.text.split()) for x in group)
            text = re.sub("[\U000f0000-\U000fffff]", "", text)  # private-use quote glyphs
            if not text.strip():
                continue
            size = group[0].size
            if size >= 30:
                tag = "h1"
            elif size >= 20 or (size >= 13 and group[0].text.strip().isdigit()):
                tag = "h2"
            elif size >= 12.4 and re.match(r"\(\d\)", text):
                tag = "h3"
            else:
                tag = "p"
            elements.append(Element(tag, html.escape(text, quote=False), rect))
        for table, rect in zip(tables, table_rects, strict=True):
            rows = table.extract()
            body = "".join(
                "<tr>"
                + "".join(f"<td>{html.escape(' '.join((c or '').split()), quote=False)}</td>" for c in row)
                + "</tr>"
                for row in rows
            )
            at = next((i for i, e in enumerate(elements) if e.rect.y0 > rect.y0 and e.rect.x0 < rect.x1), len(elements))
            elements.insert(at, Element("table", body, rect, ' class="table1"'))
        write_page(stem, pdf, number, elements)


if __name__ == "__main__":
    longtable()
    multicolumn()
    korean()
