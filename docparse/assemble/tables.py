"""Whether a table on the next page continues one: same columns, a repeated header dropped, "continued" captions."""

from __future__ import annotations

import re
from collections.abc import Sequence

from docparse.assemble.common import text_of
from docparse.document import Block, Cell, Paragraph, Table, plain_text

_CONTINUED = re.compile(r"(?i)\bcont(?:inued|\.|'d)|fortsetzung|\(suite\)|계속|續|续")


def is_continued_caption(block: Block) -> bool:
    return isinstance(block, Paragraph) and len(text_of(block)) <= 100 and bool(_CONTINUED.search(text_of(block)))


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


def table_continues(first: Table, nxt: Table) -> tuple[tuple[Cell, ...], ...] | None:
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
