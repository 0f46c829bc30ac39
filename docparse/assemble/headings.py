"""Headings across pages: the document title, and heading levels made to agree."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from docparse.assemble.common import text_of
from docparse.document import Block, Heading, Page

_NUMBERED_HEADING = re.compile(r"^\s*(\d{1,2}(?:\.\d{1,2}){0,4}|[A-Z](?:\.\d{1,2}){1,4})\.?\s+\S")


def title_of(pages: Sequence[Page], blocks: Sequence[Sequence[Block]]) -> tuple[str | None, tuple[int, int] | None]:
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
    text = text_of(block)
    return (text, (0, i)) if text else (None, None)


def fix_heading_levels(blocks: list[list[Block]], title_at: tuple[int, int] | None) -> None:
    """Make heading levels agree across pages (the model picks h1..h6 one page at a time).

    - The title heading becomes level 1, and with a title no other heading stays at level 1.
    - When at least two headings are numbered ("2", "2.1", "A.1"), each numbered heading takes the
      level its numbering gives (one level below the title, if there is one).
    - Other headings keep the model's level.
    """
    headings = [
        (p, i, b) for p, page_blocks in enumerate(blocks) for i, b in enumerate(page_blocks) if isinstance(b, Heading)
    ]
    numbered = {(p, i): m.group(1) for p, i, b in headings if (m := _NUMBERED_HEADING.match(text_of(b)))}
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
