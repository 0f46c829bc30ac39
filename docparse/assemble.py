"""Pages -> one document: page furniture, footnotes, captions, blocks cut by page breaks, heading levels, title."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TypeVar

from docparse.config import AssembleOptions
from docparse.document import (
    Block,
    Box,
    Cell,
    Chart,
    Document,
    Figure,
    Heading,
    Inline,
    Inlines,
    Link,
    Other,
    Page,
    Paragraph,
    Part,
    Role,
    Styled,
    Table,
    Text,
    plain_text,
)

__all__ = ["assemble"]

# Every step below would rather miss than be wrong: a body paragraph hidden as furniture, or two
# unrelated tables glued together, costs a reader more than a running header left in the text.

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
_CONTINUED = re.compile(r"(?i)\bcont(?:inued|\.|'d)|fortsetzung|\(suite\)|계속|續|续")
_SENTENCE_END = re.compile(r"[.!?:;。！？…]$")
_CLOSERS = "\"')]}’”»」』"
_NUMBERED_HEADING = re.compile(r"^\s*(\d{1,2}(?:\.\d{1,2}){0,4}|[A-Z](?:\.\d{1,2}){1,4})\.?\s+\S")

B = TypeVar("B", bound=Block)


def assemble(doc: Document, options: AssembleOptions) -> Document:
    """The document with its blocks labelled and, with `options.merge`, blocks cut by page breaks joined.

    A one-page document keeps its blocks as they are; only its title is set. Otherwise, in order:
    furniture, footnotes and captions are labelled (roles), paragraphs and tables cut by a page
    break are merged into the page where they start (each keeping the list of its parts), heading
    levels are made consistent, and the heading that opens page 1 becomes the title.
    """
    if len(doc.pages) < 2:
        return dataclasses.replace(doc, title=_title(doc.pages, [list(p.blocks) for p in doc.pages])[0])
    pages = [list(p.blocks) for p in doc.pages]
    _mark_furniture(doc.pages, pages)
    _mark_footnotes(doc.pages, pages)
    _mark_captions(pages)
    if options.merge:
        _merge_across_pages(doc.pages, pages)
    title, where = _title(doc.pages, pages)
    _fix_heading_levels(pages, where)
    new_pages = tuple(dataclasses.replace(p, blocks=tuple(b)) for p, b in zip(doc.pages, pages, strict=True))
    return dataclasses.replace(doc, pages=new_pages, title=title)


# --- roles ------------------------------------------------------------------------------------


def _text(block: Block) -> str:
    if isinstance(block, Heading | Paragraph | Other):
        return " ".join(plain_text(block.content).split())
    return ""


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
    match. None for a block that cannot be furniture."""
    if not isinstance(block, Heading | Paragraph | Other):
        return None
    text = _LEADERS.sub(" ", _text(block)).strip().lower()
    if not text or len(text) > FURNITURE_MAX_CHARS:
        return None
    if not isinstance(block, Heading):
        text = _DIGITS.sub("#", text)
    return _SPACES.sub(" ", text)


def _is_page_number(page: Page, blocks: Sequence[Block], block: Block) -> bool:
    """A lone page number ("7", "- 7 -", "Page 7 of 9", "vii") that nothing on the page lies beyond."""
    box = block.box
    band = _band(page, box)
    if box is None or band is None or not isinstance(block, Paragraph | Other):
        return False
    if not _PAGE_NUMBER.match(_LEADERS.sub(" ", _text(block))):
        return False
    others = [b.box for b in blocks if b is not block and b.box is not None]
    if band == "bottom":
        return not any(o.y0 >= box.y1 for o in others)
    return not any(o.y1 <= box.y0 for o in others)


def _mark_furniture(pages: Sequence[Page], blocks: list[list[Block]]) -> None:
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
                page_blocks[i] = _with_role(block, "furniture")


def _overlaps_horizontally(a: Box, b: Box) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 0


def _mark_footnotes(pages: Sequence[Page], blocks: list[list[Block]]) -> None:
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
            if isinstance(b, Paragraph | Other)
            and b.role == "body"
            and b.box is not None
            and b.box.y0 >= FOOTNOTE_ZONE * page.height
            and _starts_with_mark(b.content)
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
                page_blocks[i] = _with_role(page_blocks[i], "footnote")


def _starts_with_mark(content: Inlines) -> bool:
    for item in content:
        if isinstance(item, Text):
            if not item.text.strip():
                continue
            return bool(_FOOTNOTE_MARK.match(item.text))
        return isinstance(item, Styled) and item.style == "sup"
    return False


def _mark_captions(blocks: list[list[Block]]) -> None:
    """A paragraph right before or after a table, figure or chart on the same page, that starts like
    a caption ("Table 3", "Fig. 2", "[표 1]"), becomes role "caption"."""
    for page_blocks in blocks:
        for i, block in enumerate(page_blocks):
            if not isinstance(block, Paragraph) or block.role != "body" or not _CAPTION.match(_text(block)):
                continue
            neighbours = [page_blocks[j] for j in (i - 1, i + 1) if 0 <= j < len(page_blocks)]
            if any(isinstance(n, Table | Figure | Chart) for n in neighbours):
                page_blocks[i] = _with_role(block, "caption")


def _with_role(block: B, role: Role) -> B:
    return dataclasses.replace(block, role=role)


# --- merges across page breaks ----------------------------------------------------------------


def _body_indexes(page_blocks: Sequence[Block]) -> list[int]:
    return [i for i, b in enumerate(page_blocks) if b.role == "body"]


def _merge_across_pages(pages: Sequence[Page], blocks: list[list[Block]]) -> None:
    """Join what a page break cut: a paragraph (see _joins) or a table (see _table_continues).

    Only between consecutive page numbers, only when neither page failed, and only the last body
    block of one page with the first body block of the next (furniture, footnotes and captions
    between them do not count). The joined block stays where it starts and records its parts; a
    block cut over three pages is joined twice.
    """
    tail: tuple[int, int] | None = None  # (page index, block index) of the last body block so far
    for p, page in enumerate(pages):
        if p > 0 and (pages[p - 1].number + 1 != page.number or pages[p - 1].status == "failed"):
            tail = None
        if page.status == "failed":
            tail = None
            continue
        body = _body_indexes(blocks[p])
        if tail is not None and body:
            tp, ti = tail
            last = blocks[tp][ti]
            first_i, continued_i = _continuation(blocks[p], body, last)
            merged = _merge(last, pages[tp].number, blocks[p][first_i], page.number)
            if merged is not None:
                blocks[tp][ti] = merged
                del blocks[p][first_i]
                if continued_i is not None:
                    blocks[p][continued_i] = _with_role(blocks[p][continued_i], "furniture")
                if not _body_indexes(blocks[p]):
                    continue  # the whole page continued the block: it may go on over the next page
        body = _body_indexes(blocks[p])
        tail = (p, body[-1]) if body else None


def _continuation(page_blocks: Sequence[Block], body: Sequence[int], last: Block) -> tuple[int, int | None]:
    """The index of the block that may continue `last`, and of a "continued" caption before it.

    That is the first body block, except that after a table a short "Table 1 (continued)" caption
    (a caption or a paragraph) may stand before the table that continues it.
    """
    first = body[0]
    if not isinstance(last, Table):
        return first, None
    head = page_blocks[first]
    if _is_continued_caption(head) and len(body) > 1 and isinstance(page_blocks[body[1]], Table):
        return body[1], first
    if isinstance(head, Table):
        captions = [
            j for j in range(first) if page_blocks[j].role == "caption" and _is_continued_caption(page_blocks[j])
        ]
        return first, captions[-1] if captions else None
    return first, None


def _is_continued_caption(block: Block) -> bool:
    return isinstance(block, Paragraph) and len(_text(block)) <= 100 and bool(_CONTINUED.search(_text(block)))


def _parts(block: Block, page: int) -> tuple[Part, ...]:
    return block.parts or (Part(page=page, box=block.box),)


def _merge(last: Block, last_page: int, first: Block, first_page: int) -> Block | None:
    parts = _parts(last, last_page) + _parts(first, first_page)
    if isinstance(last, Paragraph) and isinstance(first, Paragraph):
        content = _joins(last.content, first.content)
        return None if content is None else dataclasses.replace(last, content=content, parts=parts)
    if isinstance(last, Table) and isinstance(first, Table):
        rows = _table_continues(last, first)
        return None if rows is None else dataclasses.replace(last, rows=last.rows + rows, parts=parts)
    return None


def _joins(head: Inlines, tail: Inlines) -> Inlines | None:
    """The two paragraphs as one, when `tail` continues `head`; else None.

    `head` must not end a sentence (. ! ? : ; and their CJK forms, closing quotes and brackets
    looked through). Then `tail` continues it when it starts with a lower-case letter, or when
    `head` ends in a letter and a hyphen (a word cut at the page break). "hyphen-" + "ated" is
    rejoined "hyphenated"; a hyphen before an upper-case letter or a digit is real and kept
    ("anti-" + "Darwinian"). Text with no letter case (Korean, Chinese) is never joined unless a
    hyphen says so.
    """
    a = plain_text(head).rstrip()
    b = plain_text(tail).lstrip()
    if not a or not b or _SENTENCE_END.search(a.rstrip(_CLOSERS)):
        return None
    hyphen = len(a) >= 2 and a[-1] == "-" and a[-2].isalpha()
    if hyphen and b[0].isalpha():
        if b[0].islower():
            return _strip_end(head, 1) + _strip_start(tail)
        return _strip_end(head, 0) + _strip_start(tail)
    if b[0].isalpha() and b[0].islower():
        return (*_strip_end(head, 0), Text(" "), *_strip_start(tail))
    return None


def _strip_end(content: Inlines, drop: int) -> Inlines:
    """`content` with trailing whitespace removed, then `drop` more characters from its end."""
    items = list(content)
    while items:
        last = items[-1]
        if isinstance(last, Text):
            text = last.text.rstrip()
            if not text:
                items.pop()
                continue
            items[-1] = Text(text[: len(text) - drop] if drop else text)
            return tuple(items)
        if isinstance(last, Styled | Link):
            inner = _strip_end(last.children, drop)
            items[-1] = dataclasses.replace(last, children=inner)
            return tuple(items)
        return tuple(items)
    return ()


def _strip_start(content: Inlines) -> Inlines:
    items: list[Inline] = list(content)
    while items and isinstance(items[0], Text) and not items[0].text.strip():
        items.pop(0)
    if items and isinstance(items[0], Text):
        items[0] = Text(items[0].text.lstrip())
    return tuple(items)


def _width(table: Table) -> int:
    """Columns of the table: the widest row, counting colspans and the cells that rowspans bring down."""
    carried: dict[int, int] = {}  # row index -> columns taken there by rowspans from above
    widest = 0
    for r, row in enumerate(table.rows):
        width = carried.get(r, 0) + sum(c.colspan for c in row)
        widest = max(widest, width)
        for c in row:
            for below in range(r + 1, r + c.rowspan):
                carried[below] = carried.get(below, 0) + c.colspan
    return widest


def _same_row(a: Sequence[Cell], b: Sequence[Cell]) -> bool:
    return [(" ".join(plain_text(c.content).split()).lower(), c.colspan) for c in a] == [
        (" ".join(plain_text(c.content).split()).lower(), c.colspan) for c in b
    ]


def _header_rows(table: Table) -> int:
    count = 0
    while count < len(table.rows) and table.rows[count] and all(c.header for c in table.rows[count]):
        count += 1
    return count


def _table_continues(first: Table, nxt: Table) -> tuple[tuple[Cell, ...], ...] | None:
    """The rows `nxt` adds to `first` when it continues it; None when it does not.

    It continues when both have rows and the same number of columns (see _width), and `nxt` has
    no caption of its own other than a "continued" one. A repeated header is dropped: the leading
    header rows of `nxt` when the last of them equals a header row of `first` (so a head that reads
    "continued from the previous page" above the repeated column names goes too), else a first row
    equal to the first row of `first`.
    """
    if not first.rows or not nxt.rows or _width(first) != _width(nxt):
        return None
    if nxt.caption and not _CONTINUED.search(plain_text(nxt.caption)):
        return None
    rows = nxt.rows
    head, next_head = _header_rows(first), _header_rows(nxt)
    if next_head and any(_same_row(rows[next_head - 1], first.rows[i]) for i in range(head)):
        rows = rows[next_head:]
    elif _same_row(rows[0], first.rows[0]):
        rows = rows[1:]
    return rows


# --- headings and title -----------------------------------------------------------------------


def _title(pages: Sequence[Page], blocks: Sequence[Sequence[Block]]) -> tuple[str | None, tuple[int, int] | None]:
    """The document title and where its heading is (page index, block index).

    The title is the first heading of the highest rank on page 1, when that heading is a body block
    in the top half of the page (or the page has no size). A document that does not start at page
    1 (a page selection) has no title.
    """
    if not pages or pages[0].number != 1:
        return None, None
    page = pages[0]
    headings = [(i, b) for i, b in enumerate(blocks[0]) if isinstance(b, Heading) and b.role == "body"]
    if not headings:
        return None, None
    top = min(b.level for _, b in headings)
    i, block = next((i, b) for i, b in headings if b.level == top)
    if page.height and block.box is not None and block.box.y0 > page.height / 2:
        return None, None
    text = _text(block)
    return (text, (0, i)) if text else (None, None)


def _fix_heading_levels(blocks: list[list[Block]], title_at: tuple[int, int] | None) -> None:
    """Make heading levels agree across pages (the model picks h1..h6 one page at a time).

    - The title heading becomes level 1, and with a title no other heading stays at level 1.
    - When at least two headings are numbered ("2", "2.1", "A.1"), each numbered heading takes the
      level its numbering gives (one level below the title, if there is one).
    - Other headings keep the model's level.
    """
    headings = [
        (p, i, b) for p, page_blocks in enumerate(blocks) for i, b in enumerate(page_blocks) if isinstance(b, Heading)
    ]
    numbered = {(p, i): m.group(1) for p, i, b in headings if (m := _NUMBERED_HEADING.match(_text(b)))}
    base = 1 if title_at is not None else 0
    for p, i, block in headings:
        level = block.level
        if (p, i) == title_at:
            level = 1
        elif len(numbered) >= 2 and (p, i) in numbered:
            level = numbered[(p, i)].count(".") + 1 + base
        elif title_at is not None and level == 1:
            level = 2
        level = min(6, max(1, level))
        if level != block.level:
            blocks[p][i] = dataclasses.replace(block, level=level)
