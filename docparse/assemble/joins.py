"""Blocks cut by a page break joined again: paragraphs (a sentence or a hyphenated word going on) and tables."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from docparse.assemble.common import with_role
from docparse.assemble.tables import is_continued_caption, table_continues
from docparse.document import Block, Inline, Inlines, Link, Page, Paragraph, Part, Styled, Table, Text, plain_text

_SENTENCE_END = re.compile(r"[.!?:;。！？…]$")
_CLOSERS = "\"')]}’”»」』"


def _body_indexes(page_blocks: Sequence[Block]) -> list[int]:
    return [i for i, b in enumerate(page_blocks) if b.role == "body"]


def merge_across_pages(pages: Sequence[Page], blocks: list[list[Block]]) -> None:
    """Join what a page break cut: a paragraph (see _joins) or a table (see table_continues).

    Only between consecutive page numbers, only when neither page failed, and only the last body
    block of one page with the first body block of the next (furniture, footnotes and captions
    between them do not count). The joined block stays where it starts and records its parts; a
    block cut over three pages is joined twice.
    """
    tail: tuple[int, int] | None = None  # (page index, block index) of the last body block so far
    for p, page in enumerate(pages):
        if p > 0 and (pages[p - 1].number + 1 != page.number or pages[p - 1].failed):
            tail = None
        if page.failed:
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
                    blocks[p][continued_i] = with_role(blocks[p][continued_i], "furniture")
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
    if is_continued_caption(head) and len(body) > 1 and isinstance(page_blocks[body[1]], Table):
        return body[1], first
    if isinstance(head, Table):
        captions = [
            j for j in range(first) if page_blocks[j].role == "caption" and is_continued_caption(page_blocks[j])
        ]
        return first, captions[-1] if captions else None
    return first, None


def _parts(block: Block, page: int) -> tuple[Part, ...]:
    return block.parts or (Part(page=page, box=block.box),)


def _merge(last: Block, last_page: int, first: Block, first_page: int) -> Block | None:
    parts = _parts(last, last_page) + _parts(first, first_page)
    if isinstance(last, Paragraph) and isinstance(first, Paragraph):
        content = _joins(last.content, first.content)
        return None if content is None else dataclasses.replace(last, content=content, parts=parts)
    if isinstance(last, Table) and isinstance(first, Table):
        rows = table_continues(last, first)
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
