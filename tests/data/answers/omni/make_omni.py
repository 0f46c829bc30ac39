"""Writes omni.pdf (a one-page PDF drawn here) and page-0001.html/.json, a hand-made QwenVL HTML answer for it.

Run from the repository root: `.venv/bin/python tests/data/answers/omni/make_omni.py`. The page holds one
of every kind docparse reads (inline markup, figure, printed and handwritten formulas, a spanned table
after a <style> block, a chart, two chemical structures, a music sheet); the answer's boxes are the
drawn boxes scaled to the image the model would see, as `make_answers.py` does for real pages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pymupdf

from docparse.config import RasterOptions
from docparse.inputs.rasterize import target_size

HERE = Path(__file__).resolve().parent
PAGE = (612.0, 792.0)  # US Letter, points
IMAGE = target_size(*PAGE, "pt", RasterOptions())

# name -> box in points (x0, y0, x1, y1)
BOXES = {
    "title": (72, 40, 400, 66),
    "intro": (72, 76, 540, 108),
    "figure": (72, 118, 300, 228),
    "figure_caption": (72, 230, 300, 244),
    "formula": (320, 118, 540, 150),
    "handwritten": (320, 160, 540, 192),
    "table": (320, 200, 540, 290),
    "grid": (72, 300, 300, 360),
    "chart": (72, 370, 300, 520),
    "chem": (320, 300, 440, 400),
    "chem_bad": (450, 300, 540, 400),
    "music": (72, 540, 540, 640),
}


def px(name: str) -> str:
    x0, y0, x1, y1 = BOXES[name]
    sx, sy = IMAGE[0] / PAGE[0], IMAGE[1] / PAGE[1]
    return f"{round(x0 * sx)} {round(y0 * sy)} {round(x1 * sx)} {round(y1 * sy)}"


def draw_pdf(path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=PAGE[0], height=PAGE[1])
    page.insert_text((72, 60), "Omni content sample", fontsize=20)
    page.insert_text((72, 90), "Water is H2O; bold, italic, x squared, E = mc2 and a link.", fontsize=11)
    # Figure: three coloured blocks.
    for i, colour in enumerate(((0.85, 0.2, 0.2), (0.2, 0.6, 0.25), (0.2, 0.35, 0.85))):
        page.draw_rect(pymupdf.Rect(80 + i * 72, 126, 140 + i * 72, 220), color=colour, fill=colour)
    page.insert_text((72, 240), "Figure 1: Three coloured blocks.", fontsize=9)
    page.insert_text((330, 140), "integral 0..1 of x^2 dx = 1/3", fontsize=12)
    page.insert_text((330, 182), "sqrt(a^2 + b^2)", fontsize=14, fontname="tiro")
    # Table grid.
    for y in (200, 230, 260, 290):
        page.draw_line((320, y), (540, y))
    for x in (320, 393, 466, 540):
        page.draw_line((x, 200), (x, 290))
    page.insert_text((326, 220), "Group      Scores", fontsize=9)
    for y in (300, 330, 360):
        page.draw_line((72, y), (300, y))
    page.insert_text((78, 320), "Metal   Symbol", fontsize=9)
    # Chart: bars.
    for i, height in enumerate((40, 80, 120)):
        page.draw_rect(
            pymupdf.Rect(100 + i * 60, 500 - height, 140 + i * 60, 500), color=(0.1, 0.3, 0.7), fill=(0.3, 0.5, 0.9)
        )
    page.draw_line((90, 500), (290, 500))
    # Chemistry: a five-membered ring with two carbonyls.
    ring = [(380, 320), (410, 342), (398, 378), (362, 378), (350, 342)]
    page.draw_polyline([*ring, ring[0]], width=1.5)
    page.draw_line((410, 342), (432, 332), width=1.5)
    page.draw_line((350, 342), (328, 332), width=1.5)
    page.insert_text((374, 396), "N-Me", fontsize=8)
    page.draw_polyline([(470, 330), (500, 350), (520, 330)], width=1.5)
    # Music: a staff with note heads.
    for k in range(5):
        page.draw_line((80, 570 + k * 8), (530, 570 + k * 8), width=0.8)
    for i in range(8):
        centre = (120 + i * 50, 602 - (i % 5) * 4)
        page.draw_oval(pymupdf.Rect(centre[0] - 5, centre[1] - 4, centre[0] + 5, centre[1] + 4), fill=(0, 0, 0))
    doc.save(path, garbage=4, deflate=True)
    doc.close()


ANSWER = """```html
<html><body>
<h1 data-bbox="{title}">Omni content sample</h1>
<p data-bbox="{intro}">Water is H<sub>2</sub>O; <b>bold</b>, <i>italic</i>, x<sup>2</sup>, $E = mc^2$ and \
<a href="https://example.org/omni">a link</a>.</p>
<div class="image caption" data-bbox="{figure}"><img data-bbox="{figure}"/><p data-bbox="{figure_caption}">\
Figure 1: Three coloured blocks.</p></div>
<div class="formula.machine_printed" data-bbox="{formula}"><img data-bbox="{formula}"/>\
<div>$$\\int_0^1 x^2\\,dx = \\frac{{1}}{{3}}$$</div></div>
<div class="formula.handwritten" data-bbox="{handwritten}"><img data-bbox="{handwritten}"/>\
<div>$$\\sqrt{{a^2+b^2}}$$</div></div>
<style>table.table1 {{ border: 1px solid black; }}</style>
<table class="table1" data-bbox="{table}"><tr><th rowspan="2">Group</th><th colspan="2">Scores</th></tr>\
<tr><th>A</th><th>B</th></tr><tr><td>g1</td><td>1</td><td></td></tr><tr><td>g2</td><td>3</td><td>4</td></tr></table>
<table data-bbox="{grid}"><tr><th>Metal</th><th>Symbol</th></tr><tr><td>Iron</td><td>Fe</td></tr>\
<tr><td>Gold</td><td>Au</td></tr></table>
<div class="chart" data-bbox="{chart}"><img data-bbox="{chart}"/><table><tr><th>Year</th><th>Sales</th></tr>\
<tr><td>2021</td><td>40</td></tr><tr><td>2022</td><td>80</td></tr><tr><td>2023</td><td>120</td></tr></table></div>
<div class="chemical formula" format="smile" data-bbox="{chem}"><img data-bbox="{chem}"/>\
<div>O=C1C=CC(=O)N1C</div></div>
<div class="chemical formula" format="smile" data-bbox="{chem_bad}"><img data-bbox="{chem_bad}"/><div>C1CC(C</div></div>
<div class="music sheet" format="abc notation" data-bbox="{music}"><img data-bbox="{music}"/><div>X:1
T:Scale
M:4/4
L:1/4
K:C
C D E F | G A B c |]</div></div>
</body></html>
```"""


def main() -> None:
    draw_pdf(HERE / "omni.pdf")
    (HERE / "page-0001.html").write_text(ANSWER.format(**{k: px(k) for k in BOXES}) + "\n", encoding="utf-8")
    sidecar = {
        "docparse_version": "0.1.0",
        "source": "omni.pdf",
        "page": 1,
        "page_size": list(PAGE),
        "unit": "pt",
        "image_size": list(IMAGE),
        "rotation": 0,
        "model": "hand-written in the Qwen2.5-VL QwenVL HTML format (no model run)",
        "prompt": "QwenVL HTML ",
        "system_prompt": "You are a helpful assistant.",
        "max_new_tokens": 8192,
        "tokens_in": 0,
        "tokens_out": 0,
        "seconds": 0.0,
        "finish_reason": "stop",
    }
    (HERE / "page-0001.json").write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
