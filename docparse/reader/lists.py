"""Lists out of a parsed answer: ul/ol and stray li, nested lists as item children (bounded in depth)."""

from __future__ import annotations

from docparse.document import ListBlock, ListItem
from docparse.reader.context import ReadContext
from docparse.reader.elements import LINE_TAGS, El, Piece, pieces_of, raw_class_of, tag_name
from docparse.reader.inline import read_inlines, take_inlines

_MAX_LIST_DEPTH = 12


def read_list(el: El, ctx: ReadContext, depth: int) -> ListBlock | None:
    """ul/ol (or a stray li) as a ListBlock; lists nested past _MAX_LIST_DEPTH become item text."""
    tag = tag_name(el)
    raw = raw_class_of(el)
    if tag == "li":
        item = _item(el, ctx, depth)
        return ListBlock(ordered=False, items=(item,), box=item.box, raw_class=raw) if item else None
    box = ctx.box(el)
    items: list[ListItem] = []
    run: list[Piece] = []

    def flush_run() -> None:
        if content := take_inlines(run):
            items.append(ListItem(content=content))

    for p in pieces_of(el):
        ptag = "" if isinstance(p, str) else tag_name(p)
        if ptag == "li":
            flush_run()
            item = _item(p, ctx, depth)
            if item is not None:
                items.append(item)
        elif ptag in ("ul", "ol") and depth + 1 < _MAX_LIST_DEPTH:
            flush_run()
            child = read_list(p, ctx, depth + 1)
            if child is not None:
                last = items.pop() if items else ListItem(content=())
                items.append(ListItem(content=last.content, children=(*last.children, child), box=last.box))
        elif ptag in LINE_TAGS:
            flush_run()
            content = read_inlines([p])
            if content:
                items.append(ListItem(content=content, box=ctx.box(p)))
        else:
            run.append(p)
    flush_run()
    if not items:
        return None
    return ListBlock(ordered=tag == "ol", items=tuple(items), box=box, raw_class=raw)


def _item(li: El, ctx: ReadContext, depth: int) -> ListItem | None:
    content_pieces: list[Piece] = []
    children: list[ListBlock] = []
    for p in pieces_of(li):
        if not isinstance(p, str) and tag_name(p) in ("ul", "ol") and depth + 1 < _MAX_LIST_DEPTH:
            child = read_list(p, ctx, depth + 1)
            if child is not None:
                children.append(child)
        else:
            content_pieces.append(p)
    content = read_inlines(content_pieces)
    if not content and not children:
        return None
    return ListItem(content=content, children=tuple(children), box=ctx.box(li))
