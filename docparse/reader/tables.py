"""Tables out of a parsed answer: rows from thead/tbody/tfoot, cells with their spans and th, the caption."""

from __future__ import annotations

from docparse.document import Cell, Inlines, Table
from docparse.reader.context import ReadContext
from docparse.reader.elements import CELL_TAGS, El, has_text, pieces_of, raw_class_of, tag_name, walk
from docparse.reader.inline import element_inlines, read_inlines, text_inlines


def read_table(el: El, ctx: ReadContext) -> Table | None:
    """A table with its rows (from thead/tbody/tfoot too), cells with colspan/rowspan/th, and caption."""
    rows: list[tuple[Cell, ...]] = []
    caption: Inlines = ()
    pending: list[Cell] = []  # cells directly under the table, with no <tr>

    def end_pending() -> None:
        if pending:
            rows.append(tuple(pending))
            pending.clear()

    for p, entered in walk(pieces_of(el), _row_group):
        if isinstance(p, str):
            if p.strip():
                pending.append(Cell(content=read_inlines([p])))
            continue
        tag = tag_name(p)
        if entered:  # its rows follow
            end_pending()
        elif tag == "tr":
            end_pending()
            row = _row(p)
            if row:
                rows.append(row)
        elif tag in CELL_TAGS:
            pending.append(_cell(p))
        elif tag == "caption":
            caption = element_inlines(p)
        elif tag != "col" and has_text([p]):
            end_pending()
            rows.append((Cell(content=read_inlines([p])),))
    end_pending()
    if not rows and not caption:
        return None
    return Table(rows=tuple(rows), caption=caption, box=ctx.box(el), raw_class=raw_class_of(el))


def _row_group(el: El, depth: int) -> bool:
    """thead/tbody/tfoot/colgroup, read into down to three levels below the table."""
    return tag_name(el) in ("thead", "tbody", "tfoot", "colgroup") and depth < 4


def _row(tr: El) -> tuple[Cell, ...]:
    """A row's cells; stray text or elements in it become cells of their own."""
    cells: list[Cell] = []
    if tr.text and not tr.text.isspace():
        cells.append(Cell(content=text_inlines(tr.text)))
    for child in tr:
        if child.tag in CELL_TAGS:
            cells.append(_cell(child))
        elif has_text([child]):
            cells.append(Cell(content=read_inlines([child])))
        if child.tail and not child.tail.isspace():
            cells.append(Cell(content=text_inlines(child.tail)))
    return tuple(cells)


def _cell(el: El) -> Cell:
    colspan, rowspan = el.get("colspan"), el.get("rowspan")
    return Cell(
        content=element_inlines(el),
        colspan=1 if colspan is None else _span(colspan),
        rowspan=1 if rowspan is None else _span(rowspan),
        header=el.tag == "th",
    )


def _span(raw: str | None) -> int:
    """colspan/rowspan as an int in 1..1000 (1 when absent or unreadable)."""
    if raw is None:
        return 1
    try:
        v = int(float(raw.strip()))
    except (ValueError, OverflowError):
        return 1
    return min(max(v, 1), 1000)
