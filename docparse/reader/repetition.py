"""Degenerate repetition in a model answer: found in text and in blocks, and cut to one copy."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar, assert_never

import numpy as np

from docparse import document as doc
from docparse.document import (
    Block,
    Cell,
    Inline,
    Inlines,
    ListBlock,
    ListItem,
    Paragraph,
    Styled,
    Table,
    Text,
    block_text,
)

T = TypeVar("T")

# A Latin word or number is one token; any other visible character (CJK, punctuation) is one token.
_TOKEN = re.compile(r"[A-Za-z0-9_]+|\S")
# Longest repeated unit looked for, in tokens; and the fewest tokens a degenerate run spans.
MAX_PERIOD = 64
MIN_RUN_TOKENS = 16
# A unit must come back at least this many times in a row (so "ha ha" or "no, no" stay).
MIN_COPIES = 4
# Blocks, rows and list items are big units: three copies in a row of a unit of up to this many.
MAX_BLOCK_PERIOD = 8
MIN_BLOCK_COPIES = 3
# Most cuts made in one text (each cut shortens it; this bounds the work on hostile input).
_MAX_CUTS = 64


@dataclass(frozen=True, slots=True)
class Run:
    """`copies` consecutive copies of a unit of `period` items starting at item `start`."""

    start: int
    period: int
    copies: int

    @property
    def end(self) -> int:
        return self.start + self.period * self.copies


def _min_copies(period: int, min_copies: int, min_items: int) -> int:
    return max(min_copies, -(-min_items // period))


def find_run(items: Sequence[Hashable], *, max_period: int, min_copies: int, min_items: int = 0) -> Run | None:
    """The first degenerate run in `items` (smallest period first at the earliest start), or None.

    A run is a unit of `period` items repeated at least max(min_copies, min_items / period) times
    in a row. Vectorised with numpy: O(len(items) * max_period) comparisons, no recursion.
    """
    n = len(items)
    if n < 2:
        return None
    codes: dict[Hashable, int] = {}
    arr = np.fromiter((codes.setdefault(x, len(codes)) for x in items), dtype=np.int64, count=n)
    best: Run | None = None
    for period in range(1, min(max_period, n // 2) + 1):
        need = _min_copies(period, min_copies, min_items)
        if need * period > n:
            break
        same = arr[:-period] == arr[period:]
        # Runs of True in `same`: a run of length L starting at i means items[i : i + L + period]
        # repeat with this period, i.e. floor((L + period) / period) copies.
        padded = np.concatenate(([False], same, [False]))
        edges = np.flatnonzero(padded[1:] != padded[:-1])
        starts, stops = edges[0::2], edges[1::2]
        lengths = stops - starts
        ok = np.flatnonzero(lengths + period >= need * period)
        if ok.size == 0:
            continue
        i = int(ok[0])
        run = Run(int(starts[i]), period, int((lengths[i] + period) // period))
        if best is None or run.start < best.start:
            best = run
    return best


def collapse_sequence(
    items: Sequence[T], key: Callable[[T], Hashable], *, max_period: int, min_copies: int
) -> tuple[list[T], int]:
    """`items` with each degenerate run cut to its first copy, and how many items were dropped."""
    out = list(items)
    dropped = 0
    if len(out) < min_copies:
        return out, 0  # too short to hold min_copies copies of anything
    for _ in range(_MAX_CUTS):
        keys = [key(x) for x in out]
        run = find_run(keys, max_period=max_period, min_copies=min_copies)
        if run is None:
            break
        cut = run.period * (run.copies - 1)
        del out[run.start + run.period : run.end]
        dropped += cut
    return out, dropped


def collapse_text(text: str) -> tuple[str, int]:
    """`text` with each degenerate run (a line, phrase or character looping) cut to one copy.

    Returns the text and how many characters were dropped. The separators inside the dropped
    copies go with them; the text after the run follows the first copy.
    """
    if len(text) < MIN_RUN_TOKENS:
        return text, 0
    matches = list(_TOKEN.finditer(text))
    if len(matches) < MIN_RUN_TOKENS:
        return text, 0
    tokens = [m.group() for m in matches]
    spans = [(m.start(), m.end()) for m in matches]
    cuts: list[tuple[int, int]] = []
    lo = 0
    for _ in range(_MAX_CUTS):
        run = find_run(tokens[lo:], max_period=MAX_PERIOD, min_copies=MIN_COPIES, min_items=MIN_RUN_TOKENS)
        if run is None:
            break
        first_end = lo + run.start + run.period
        last = lo + run.end
        cuts.append((spans[first_end - 1][1], spans[last - 1][1]))
        del tokens[first_end:last]
        del spans[first_end:last]
        # No run starts before this one; a new one across the cut is shorter than one full run.
        lo = max(0, lo + run.start - MAX_PERIOD * MIN_COPIES)
    if not cuts:
        return text, 0
    pieces: list[str] = []
    at = 0
    for start, end in sorted(cuts):  # a later cut across an earlier one may cover it
        if start > at:
            pieces.append(text[at:start])
        at = max(at, end)
    pieces.append(text[at:])
    out = "".join(pieces)
    return out, len(text) - len(out)


# --- blocks ---------------------------------------------------------------------------------


def _collapse_inlines(items: Inlines) -> tuple[Inlines, int]:
    out: list[Inline] = []
    dropped = 0
    for item in items:
        match item:
            case doc.Text(text=raw):
                text, n = collapse_text(raw)
                dropped += n
                if text:
                    out.append(Text(text))
            case doc.Styled(style=style, children=inner):
                children, n = _collapse_inlines(inner)
                dropped += n
                out.append(Styled(style, children))
            case doc.Math() | doc.Link() | doc.LineBreak():
                out.append(item)
            case _:
                assert_never(item)
    # Whole inline items repeating (e.g. a styled phrase looping).
    collapsed, n = collapse_sequence(out, repr, max_period=MAX_BLOCK_PERIOD, min_copies=MIN_COPIES)
    return tuple(collapsed), dropped + n


def _collapse_table(table: Table) -> tuple[Table, int]:
    def has_text(row: tuple[Cell, ...]) -> bool:
        return any(block_text(Paragraph(content=c.content)).strip() for c in row)

    # Rows first (a looping table is mostly repeated rows), then what is left cell by cell.
    kept_rows, dropped = collapse_sequence(
        table.rows,
        lambda r: tuple(repr(c.content) for c in r) if has_text(r) else id(r),
        max_period=MAX_BLOCK_PERIOD,
        min_copies=MIN_BLOCK_COPIES + 1,
    )
    rows: list[tuple[Cell, ...]] = []
    for row in kept_rows:
        cells: list[Cell] = []
        for cell in row:
            content, n = _collapse_inlines(cell.content)
            dropped += n
            cells.append(dataclasses.replace(cell, content=content))
        # A row whose cells loop (the same cell written again and again).
        kept, n = collapse_sequence(
            cells, lambda c: (repr(c.content), c.colspan, c.rowspan), max_period=4, min_copies=MIN_COPIES + 2
        )
        dropped += n
        rows.append(tuple(kept))
    return dataclasses.replace(table, rows=tuple(rows)), dropped


def _collapse_list(block: ListBlock) -> tuple[ListBlock, int]:
    dropped = 0
    items: list[ListItem] = []
    for item in block.items:
        content, n = _collapse_inlines(item.content)
        dropped += n
        children: list[ListBlock] = []
        for child in item.children:
            c, n = _collapse_list(child)
            dropped += n
            children.append(c)
        items.append(dataclasses.replace(item, content=content, children=tuple(children)))
    kept, n = collapse_sequence(
        items,
        lambda i: (repr(i.content), repr(i.children)),
        max_period=MAX_BLOCK_PERIOD,
        min_copies=MIN_BLOCK_COPIES + 1,
    )
    return dataclasses.replace(block, items=tuple(kept)), dropped + n


def _collapse_block(block: Block) -> tuple[Block, int]:
    """The block with the repetition inside it cut, and how many items or characters went; a block
    type added must be given its case here (mypy names this match when one is missing)."""
    match block:
        case doc.Heading() | doc.Paragraph() | doc.Other():
            content, n = _collapse_inlines(block.content)
            return dataclasses.replace(block, content=content), n
        case doc.Table():
            return _collapse_table(block)
        case doc.ListBlock():
            return _collapse_list(block)
        case doc.Chart(table=doc.Table() as table):
            collapsed, n = _collapse_table(table)
            return dataclasses.replace(block, table=collapsed), n
        # Left as the model wrote them: a chart without a table, a picture's caption and inner text,
        # LaTeX, SMILES, ABC and code (a loop in code or notation may be the content itself).
        case doc.Chart() | doc.Figure() | doc.Formula() | doc.Chemistry() | doc.Music() | doc.Code():
            return block, 0
        case _:
            assert_never(block)


def _block_key(block: Block) -> Hashable:
    text = block_text(block).strip()
    # Blocks without text (bare figures) are not a loop of content; give each its own key.
    return (type(block).__name__, text) if text else id(block)


def collapse_blocks(blocks: Sequence[Block]) -> tuple[tuple[Block, ...], list[str]]:
    """Blocks with degenerate repetition cut to one copy: repeated blocks, rows, list items, text.

    Returns the blocks and one warning per kind of cut (none when nothing repeated).
    """
    warnings: list[str] = []
    kept, n_blocks = collapse_sequence(blocks, _block_key, max_period=MAX_BLOCK_PERIOD, min_copies=MIN_BLOCK_COPIES)
    if n_blocks:
        warnings.append(f"the answer repeated itself: {n_blocks} repeated block(s) were cut to one copy")
    out: list[Block] = []
    inner = 0
    for block in kept:
        b, n = _collapse_block(block)
        inner += n
        out.append(b)
    if inner:
        warnings.append("the answer repeated itself: repeated text, rows or items inside blocks were cut to one copy")
    return tuple(out), warnings


def is_degenerate(text: str) -> bool:
    """True when `text` holds a degenerate run (what `collapse_text` would cut)."""
    tokens = _TOKEN.findall(text)
    return find_run(tokens, max_period=MAX_PERIOD, min_copies=MIN_COPIES, min_items=MIN_RUN_TOKENS) is not None
