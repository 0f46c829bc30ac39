"""A PDF page's own text layer, read once: words and lines on the displayed page, and whether to trust it.

The layer is an independent witness of what a born-digital page says (docparse.layer.agreement compares
the model's blocks with it). It is read from one MuPDF text page (`page.get_textpage()`): words
and their lines, their boxes turned by the page's /Rotate onto the page as displayed (the space the
model's blocks are mapped to), in PDF points.

A layer is *usable* only when it is enough text and not garbage:
- at least MIN_WORDS words with letters or digits;
- a broken ToUnicode map shows as characters that carry no text: private-use code points, U+FFFD,
  control characters (MuPDF puts raw character codes there when it knows no Unicode), or glyph names
  (`g12`, `cid:7`, `uni0041`, `glyph33`); more than BAD_SHARE of the characters (or of the words, for
  glyph names) and the layer is not trusted; a map that shifts letters shows as Latin words without
  a vowel: more than NO_VOWEL_SHARE of them (with at least 20 such words) is not trusted either;
- an OCR layer over a scan (text drawn invisibly, render mode 3, or in Tesseract's GlyphLessFont,
  over an image covering most of the page) is a guess by another recogniser, not the page's text:
  when most of the characters are so drawn, the layer is not trusted. The spans' drawing flags are
  read only on pages with such an image, so a born-digital page pays nothing for the test.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pymupdf

from docparse.document import Box

MIN_WORDS = 5
BAD_SHARE = 0.1
NO_VOWEL_SHARE = 0.6
# An image covering this share of the page makes it a scan, whose text layer may be OCR.
SCAN_COVER = 0.8
# Characters drawn invisibly or in an OCR font above this share: an OCR layer.
OCR_SHARE = 0.5

_GLYPH_NAME = re.compile(r"^(?:\(?cid:\d+\)?|/?g\d+|glyph\d+|uni[0-9A-Fa-f]{4,6})$")
# Characters that carry no text: private use, U+FFFD, controls (MuPDF's raw codes), surrogates, noncharacters.
_NO_TEXT = re.compile("[\ue000-\uf8ff\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_HAS_TEXT = re.compile(r"[^\W_]")
_LATIN_WORD = re.compile(r"^[A-Za-z]{4,}$")
_VOWELS = frozenset("aeiouyAEIOUY")
# MuPDF span char_flags: the text is filled, or stroked (neither: render mode 3, invisible).
_FILLED, _STROKED = 16, 32


@dataclass(frozen=True, slots=True)
class Word:
    """One word of the layer: its text, its box on the displayed page, and the index of its line."""

    text: str
    box: Box
    line: int


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the layer: its text, its box on the displayed page, and its MuPDF block number."""

    text: str
    box: Box
    block: int


@dataclass(frozen=True, slots=True)
class TextLayer:
    """A page's text layer on the displayed page (`width` x `height` points); `usable` False says why in `reason`."""

    width: float
    height: float
    words: tuple[Word, ...]
    lines: tuple[Line, ...]
    usable: bool
    reason: str | None = None


def text_page(page: pymupdf.Page) -> pymupdf.TextPage:
    """The page's MuPDF text page, made once and shared: orientation (docparse.inputs.rasterize) and the layer."""
    return page.get_textpage(flags=pymupdf.TEXTFLAGS_WORDS)


def read_layer(page: pymupdf.Page, textpage: pymupdf.TextPage | None = None) -> TextLayer:
    """The page's text layer, with its verdict on whether it can be trusted (see the module docstring).

    `textpage`: the page's text page when one was made already (text_page), so the text is read once.
    """
    m = page.rotation_matrix
    a, b, c, d, e, f = m.a, m.b, m.c, m.d, m.e, m.f
    turned = page.rotation % 360 != 0

    def box(x0: float, y0: float, x1: float, y1: float) -> Box:
        if not turned:
            return Box(x0, y0, x1, y1)
        # The corners through the rotation matrix, by hand (a Rect per word costs more).
        xa, ya, xb, yb = a * x0 + c * y0 + e, b * x0 + d * y0 + f, a * x1 + c * y1 + e, b * x1 + d * y1 + f
        return Box(min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))

    textpage = textpage or text_page(page)
    words: list[Word] = []
    line_of: dict[tuple[int, int], int] = {}
    line_words: list[list[str]] = []
    line_boxes: list[list[float]] = []
    line_blocks: list[int] = []
    for x0, y0, x1, y1, text, block_no, line_no, _ in textpage.extractWORDS():
        key = (block_no, line_no)
        index = line_of.get(key)
        if index is None:
            index = line_of[key] = len(line_words)
            line_words.append([])
            line_boxes.append([x0, y0, x1, y1])
            line_blocks.append(int(block_no))
        else:
            extent = line_boxes[index]
            if x0 < extent[0]:
                extent[0] = x0
            if y0 < extent[1]:
                extent[1] = y0
            if x1 > extent[2]:
                extent[2] = x1
            if y1 > extent[3]:
                extent[3] = y1
        line_words[index].append(text)
        words.append(Word(text, box(x0, y0, x1, y1), index))
    lines = tuple(
        Line(" ".join(texts), box(*extent), block)
        for texts, extent, block in zip(line_words, line_boxes, line_blocks, strict=True)
    )
    reason = _distrust(page, textpage, [w.text for w in words])
    rect = page.rect
    return TextLayer(rect.width, rect.height, tuple(words), lines, reason is None, reason)


def _distrust(page: pymupdf.Page, textpage: pymupdf.TextPage, words: Sequence[str]) -> str | None:
    """Why the layer is not to be trusted, or None when it is."""
    chars = "".join(words)
    bad = len(_NO_TEXT.findall(chars))
    if chars and bad > BAD_SHARE * len(chars):
        return f"a broken text layer: {bad} of {len(chars)} characters carry no text (private-use, U+FFFD, control)"
    texts = [w for w in words if _HAS_TEXT.search(w)]
    if len(texts) < MIN_WORDS:
        return f"too little text ({len(texts)} words)"
    names = sum(1 for w in words if _GLYPH_NAME.match(w))
    if names > BAD_SHARE * len(words):
        return f"a broken text layer: {names} of {len(words)} words are glyph names"
    latin = [w for w in texts if _LATIN_WORD.match(w)]
    vowelless = sum(1 for w in latin if not _VOWELS.intersection(w))
    if len(latin) >= 20 and vowelless > NO_VOWEL_SHARE * len(latin):
        return f"a broken text layer: {vowelless} of {len(latin)} Latin words have no vowel"
    if _scanned(page):
        hidden, total = _ocr_chars(textpage)
        if total and hidden > OCR_SHARE * total:
            return "an OCR layer over a scanned image (invisible text), not the page's own text"
    return None


def _scanned(page: pymupdf.Page) -> bool:
    """Whether an image covers most of the page (a scan). Where it lies is asked (which costs a pass over
    the page) only when the page uses an image of at least as many pixels as the page at 72 dpi."""
    area = abs(page.rect) or 1.0
    if not any(int(item[2]) * int(item[3]) >= SCAN_COVER * area for item in page.get_images()):
        return False
    return any(abs(pymupdf.Rect(info["bbox"]) & page.rect) >= SCAN_COVER * area for info in page.get_image_info())


def _ocr_chars(textpage: pymupdf.TextPage) -> tuple[int, int]:
    """(characters drawn invisibly or in an OCR font, all characters) of the text page."""
    hidden = total = 0
    for block in textpage.extractDICT().get("blocks", []):
        for line in block.get("lines", []):
            for span in line.get("spans", []):
                count = len(span.get("text", "").strip())
                total += count
                flags = int(span.get("char_flags", _FILLED))
                invisible = not flags & (_FILLED | _STROKED) or span.get("alpha", 255) == 0
                if invisible or "glyphless" in str(span.get("font", "")).lower():
                    hidden += count
    return hidden, total


def read_layers(path: Path, numbers: Sequence[int], password: str | None = None) -> dict[int, TextLayer | None]:
    """The layers of the pages `numbers` of a PDF (None for a page the file lacks or that cannot be read);
    every page None for a file that is not a PDF or cannot be opened."""
    from docparse.inputs.detect import detect_kind

    empty: dict[int, TextLayer | None] = dict.fromkeys(numbers)
    try:
        if detect_kind(path) != "pdf":
            return empty
        doc = pymupdf.open(path, filetype="pdf")
    except Exception:  # a source that cannot be read has no layer to compare with
        return empty
    with doc:
        if doc.needs_pass and not (password and doc.authenticate(password)):
            return empty
        out = empty
        for number in numbers:
            if 1 <= number <= doc.page_count:
                try:
                    out[number] = read_layer(doc.load_page(number - 1))
                except Exception:  # a damaged page: no witness for it
                    out[number] = None
        return out
