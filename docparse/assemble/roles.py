"""Roles across pages: running headers, footers and page numbers as furniture, footnotes, captions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import assert_never

from docparse import document as doc
from docparse.assemble.common import prose, text_of, with_role
from docparse.document import Block, Box, Heading, Inlines, Other, Page, Paragraph, Styled, Text

# The bands where running headers, footers and page numbers live, as fractions of the page height:
# a block whose box lies wholly above TOP_BAND, or wholly below BOTTOM_BAND. LaTeX's default
# margins put page numbers at about 83% of the page, hence the generous bands.
TOP_BAND = 0.2
BOTTOM_BAND = 0.8
# Two blocks count as "the same place" on two pages when their vertical centres differ by at most
# this fraction of the page height.
SAME_PLACE = 0.05
# Furniture is short: a longer block is never furniture, however often it repeats.
FURNITURE_MAX_CHARS = 160
# Footnotes sit in the lower part of a page.
FOOTNOTE_ZONE = 0.55

_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_LEADERS = re.compile(r"(?:\s*\.){3,}\s*")  # dot leaders: ". . . . longtable.sty . . . ."
_PAGE_NUMBER = re.compile(
    r"(?i)^[-–—\s]*(?:(?:page|p\.|seite|pagina|página|페이지|第)\s*)?"
    r"(?:\d{1,4}|[ivxlcdm]{1,7})"
    r"(?:\s*(?:of|/|von|de)\s*\d{1,4})?\s*(?:页|頁|쪽)?[-–—\s]*$"
)
_FOOTNOTE_MARK = re.compile(r"^\s*(?:[*†‡§¶]|\d{1,3}\)|\[\d{1,3}\])")
_CAPTION = re.compile(r"(?i)^\s*\[?(?:table|tab\.|figure|fig\.|chart|graph|listing|표|그림|表|图|圖)\s*[\dIVX]")


def _band(page: Page, box: Box | None) -> str | None:
    """ "top" or "bottom" when the box lies wholly in that band of the page, else None."""
    if box is None or not page.height:
        return None
    if box.y1 <= TOP_BAND * page.height:
        return "top"
    if box.y0 >= BOTTOM_BAND * page.height:
        return "bottom"
    return None


def _centre(page: Page, box: Box) -> float:
    return (box.y0 + box.y1) / 2 / (page.height or 1)


def _furniture_key(block: Block) -> str | None:
    """What a block is compared by across pages: its text lowercased, spaces collapsed, dot leaders
    and (for anything but a heading) every run of digits made one symbol, so "Page 2" and "Page 3"
    match. None for a block that cannot be furniture (one that is not prose)."""
    if prose(block) is None:
        return None
    text = _LEADERS.sub(" ", text_of(block)).strip().lower()
    if not text or len(text) > FURNITURE_MAX_CHARS:
        return None
    if not isinstance(block, Heading):
        text = _DIGITS.sub("#", text)
    return _SPACES.sub(" ", text)


def _body_text(block: Block) -> Paragraph | Other | None:
    """The block when it is prose but not a heading: what may be a page number or a footnote."""
    text = prose(block)
    return None if text is None or isinstance(text, Heading) else text


def _is_page_number(page: Page, blocks: Sequence[Block], block: Block) -> bool:
    """A lone page number ("7", "- 7 -", "Page 7 of 9", "vii") that nothing on the page lies beyond."""
    box = block.box
    band = _band(page, box)
    if box is None or band is None or _body_text(block) is None:
        return False
    if not _PAGE_NUMBER.match(_LEADERS.sub(" ", text_of(block))):
        return False
    others = [b.box for b in blocks if b is not block and b.box is not None]
    if band == "bottom":
        return not any(o.y0 >= box.y1 for o in others)
    return not any(o.y1 <= box.y0 for o in others)


def mark_furniture(pages: Sequence[Page], blocks: list[list[Block]]) -> None:
    """Running headers and footers, and page numbers, become role "furniture".

    A block is furniture when (1) it is a lone page number in the top or bottom band with nothing
    beyond it on the page, or (2) its text (digits normalised, see _furniture_key) recurs in the
    same band, at about the same height, on at least two pages. Only short paragraphs, headings
    and unclassified text qualify; tables, lists and figures never do.
    """
    seen: dict[tuple[str, str], list[tuple[int, int, float]]] = {}
    for p, (page, page_blocks) in enumerate(zip(pages, blocks, strict=True)):
        for i, block in enumerate(page_blocks):
            band = _band(page, block.box)
            key = _furniture_key(block)
            if band is None or key is None or block.box is None:
                continue
            seen.setdefault((band, key), []).append((p, i, _centre(page, block.box)))
    furniture: set[tuple[int, int]] = set()
    for hits in seen.values():
        for p, i, centre in hits:
            if any(q != p and abs(c - centre) <= SAME_PLACE for q, _, c in hits):
                furniture.add((p, i))
    for p, (page, page_blocks) in enumerate(zip(pages, blocks, strict=True)):
        for i, block in enumerate(page_blocks):
            if (p, i) in furniture or _is_page_number(page, page_blocks, block):
                page_blocks[i] = with_role(block, "furniture")


def _overlaps_horizontally(a: Box, b: Box) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 0


def mark_footnotes(pages: Sequence[Page], blocks: list[list[Block]]) -> None:
    """Footnotes become role "footnote"; they stay on their page, where they were.

    A footnote is a paragraph (or unclassified text) in the lower part of the page that starts with
    a footnote mark (a superscript, `*`, `†`, `1)`, `[1]`) and has no body text below it in its
    column: body text under it would mean it is a numbered paragraph, not a footnote.
    """
    for page, page_blocks in zip(pages, blocks, strict=True):
        if not page.height:
            continue
        candidates = [
            i
            for i, b in enumerate(page_blocks)
            if (text := _body_text(b)) is not None
            and b.role == "body"
            and b.box is not None
            and b.box.y0 >= FOOTNOTE_ZONE * page.height
            and _starts_with_mark(text.content)
        ]
        for i in candidates:
            box = page_blocks[i].box
            assert box is not None
            below = [
                b
                for j, b in enumerate(page_blocks)
                if j not in candidates
                and b.role == "body"
                and b.box is not None
                and b.box.y0 >= box.y1 - 1
                and _overlaps_horizontally(b.box, box)
            ]
            if not below:
                page_blocks[i] = with_role(page_blocks[i], "footnote")


def _starts_with_mark(content: Inlines) -> bool:
    for item in content:
        if isinstance(item, Text):
            if not item.text.strip():
                continue
            return bool(_FOOTNOTE_MARK.match(item.text))
        return isinstance(item, Styled) and item.style == "sup"
    return False


def _takes_caption(block: Block) -> bool:
    """Whether a caption beside the block is its caption; a block type added must be given its case here
    (mypy names this match when one is missing)."""
    match block:
        case doc.Table() | doc.Figure() | doc.Chart():
            return True
        case (
            doc.Heading()
            | doc.Paragraph()
            | doc.ListBlock()
            | doc.Formula()
            | doc.Chemistry()
            | doc.Music()
            | doc.Code()
            | doc.Other()
        ):
            return False
        case _:
            assert_never(block)


def mark_captions(blocks: list[list[Block]]) -> None:
    """A paragraph right before or after a table, figure or chart on the same page, that starts like
    a caption ("Table 3", "Fig. 2", "[표 1]"), becomes role "caption"."""
    for page_blocks in blocks:
        for i, block in enumerate(page_blocks):
            if not isinstance(block, Paragraph) or block.role != "body" or not _CAPTION.match(text_of(block)):
                continue
            neighbours = [page_blocks[j] for j in (i - 1, i + 1) if 0 <= j < len(page_blocks)]
            if any(_takes_caption(n) for n in neighbours):
                page_blocks[i] = with_role(block, "caption")
