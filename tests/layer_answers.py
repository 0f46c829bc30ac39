"""QwenVL HTML answers built from a PDF page's own text layer, for the text-layer check's tests.

One <p> per PyMuPDF text block (its lines joined as the model writes them, hyphenated words whole),
its box the union of the block's line boxes on the displayed page, turned as docparse turns the
page before the model sees it and scaled to the model's pixels. Rendered back through docparse,
the boxes land on the layer's own text.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pymupdf

from docparse.config import RasterOptions
from docparse.document import Box
from docparse.inputs.pageprep import unturn_box
from docparse.inputs.rasterize import open_input
from docparse.layer.textnorm import join_lines


@dataclass
class Element:
    """One block of an answer: its text and its box in PDF points on the displayed page."""

    text: str
    box: Box
    tag: str = "p"


def layer_elements(pdf: Path, number: int) -> list[Element]:
    """The page's text blocks, in the layer's order, as answer elements (boxes in displayed points)."""
    with pymupdf.open(pdf) as doc:
        page = doc[number - 1]
        turn = page.rotation_matrix
        out = []
        for block in page.get_text("dict")["blocks"]:
            lines = [ln for ln in block.get("lines", []) if "".join(s["text"] for s in ln["spans"]).strip()]
            if not lines:
                continue
            text = join_lines("".join(s["text"] for s in ln["spans"]) for ln in lines)
            rect = pymupdf.Rect(lines[0]["bbox"])
            for ln in lines[1:]:
                rect |= pymupdf.Rect(ln["bbox"])
            rect = rect * turn
            out.append(Element(text, Box(rect.x0, rect.y0, rect.x1, rect.y1)))
        return out


def answer_html(elements: list[Element], image_size: tuple[int, int], page: tuple[float, float], turn: int) -> str:
    """The elements as a QwenVL HTML answer for an image of `image_size` of the page turned by `turn`."""
    width, height = page
    turned = (height, width) if turn in (90, 270) else (width, height)
    sx, sy = image_size[0] / turned[0], image_size[1] / turned[1]
    body = []
    for e in elements:
        box = unturn_box(e.box, (360 - turn) % 360, *turned) if turn else e.box
        bbox = f"{round(box.x0 * sx)} {round(box.y0 * sy)} {round(box.x1 * sx)} {round(box.y1 * sy)}"
        body.append(f'<{e.tag} data-bbox="{bbox}">{html.escape(e.text, quote=False)}</{e.tag}>')
    return "```html\n<html><body>\n" + "\n".join(body) + "\n</body></html>\n```"


def write_answer(
    folder: Path, pdf: Path, number: int, change: Callable[[list[Element]], list[Element]] = lambda e: e
) -> Path:
    """Write page `number`'s answer built from its layer (through `change`) with a --keep-raw sidecar; its path."""
    with open_input(pdf, RasterOptions(pages=((number, number),))) as doc:
        image = doc.render(number)
    elements = change(layer_elements(pdf, number))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"page-{number:04d}.html"
    path.write_text(answer_html(elements, image.image.size, (image.width, image.height), image.turn), "utf-8")
    sidecar = {
        "source": str(pdf.resolve()),
        "page": number,
        "page_size": [image.width, image.height],
        "unit": "pt",
        "image_size": list(image.image.size),
        "rotation": image.turn,
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar), "utf-8")
    return path
