"""Inline content out of markup: styles, links, line breaks and inline math, whitespace collapsed as HTML does."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, TypeAlias

from docparse.document import Inline, Inlines, LineBreak, Link, Math, Style, Styled, Text
from docparse.reader.elements import CELL_TAGS, LINE_TAGS, STYLES, El, Piece, pieces_of, tag_name
from docparse.reader.mathtext import split_math

# Styled/Link nesting kept in inline content; deeper markup is flattened into its text. The JSON
# and renderers of the document model recurse over inline children and nested lists.
_MAX_INLINE_DEPTH = 24
# Inline elements read as markup in one block; past this, elements give their text only (this
# keeps a huge degenerate answer fast).
_MAX_INLINE_ELEMENTS = 5000
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


def _collapse(text: str) -> str:
    return _HTML_SPACE.sub(" ", text)


# Inline events: (_TEXT, str), (_BR,), (_SEP,) a block boundary, (_OPEN, style, href), (_CLOSE,).
_TEXT, _BR, _SEP, _OPEN, _CLOSE = range(5)
_InlineEvent: TypeAlias = tuple[Any, ...]


def _events(pieces: Iterable[Piece]) -> Iterator[_InlineEvent]:
    """Flatten inline markup into events, iteratively. Block elements inside become _SEP boundaries,
    table cells a space; unknown inline tags give their content only."""
    stack: list[tuple[Iterator[Piece], _InlineEvent | None]] = [(iter(pieces), None)]
    budget = _MAX_INLINE_ELEMENTS
    while stack:
        it, after = stack[-1]
        p = next(it, None)
        if p is None:
            stack.pop()
            if after is not None:
                yield after
            continue
        if isinstance(p, str):
            yield (_TEXT, p)
            continue
        budget -= 1
        if budget < 0:  # past the budget, markup is flattened into its text
            yield (_TEXT, "".join(p.itertext()))
            continue
        tag = tag_name(p)
        if tag == "br":
            yield (_BR,)
        elif tag in ("img", "hr") or not tag:
            continue
        elif tag in STYLES:
            yield (_OPEN, STYLES[tag], None)
            stack.append((pieces_of(p), (_CLOSE,)))
        elif tag == "a" and p.get("href") is not None:
            yield (_OPEN, None, p.get("href"))
            stack.append((pieces_of(p), (_CLOSE,)))
        elif tag in LINE_TAGS:
            yield (_SEP,)
            stack.append((pieces_of(p), (_SEP,)))
        elif tag in CELL_TAGS:
            yield (_TEXT, " ")
            stack.append((pieces_of(p), (_TEXT, " ")))
        else:
            stack.append((pieces_of(p), None))


class _Node:
    """A Styled or Link (or the root) while inline content is being built; frozen at the end."""

    __slots__ = ("href", "items", "style")

    def __init__(self, style: Style | None, href: str | None) -> None:
        self.style = style
        self.href = href
        self.items: list[str | Math | LineBreak | _Node] = []


class _InlineBuilder:
    """Builds inline content from events in one pass.

    Adjacent text is joined before inline math is looked for (never inside code). Whitespace runs
    collapse to one space, across element boundaries too; the content has no space or line break
    at either end, and none before a break. A _SEP between two pieces of text becomes a
    LineBreak. Styled/Link nesting deeper than _MAX_INLINE_DEPTH is flattened into its parent.
    """

    def __init__(self) -> None:
        self.root = _Node(None, None)
        self.stack = [self.root]
        self.opened: list[tuple[bool, bool]] = []  # per open event: (a node was pushed, it is code)
        self.code = 0
        self.state = "start"  # the output so far ends in: start (nothing), space, char, br
        self.pending_sep = False
        self.last_text: tuple[list[str | Math | LineBreak | _Node], int] | None = None
        self.buffer: list[str] = []

    def feed(self, events: Iterable[_InlineEvent]) -> Inlines:
        for ev in events:
            kind = ev[0]
            if kind == _TEXT:
                self.buffer.append(ev[1])
                continue
            if self.buffer:
                self._text("".join(self.buffer))
                self.buffer.clear()
            if kind == _BR:
                if self.state != "start":
                    self._trim()
                    self.stack[-1].items.append(LineBreak())
                    self.state, self.pending_sep, self.last_text = "br", False, None
            elif kind == _SEP:
                self.pending_sep = True
            elif kind == _OPEN:
                is_code = ev[1] == "code"
                self.code += is_code
                if len(self.stack) > _MAX_INLINE_DEPTH:
                    self.opened.append((False, is_code))
                else:
                    node = _Node(ev[1], ev[2])
                    self.stack[-1].items.append(node)
                    self.stack.append(node)
                    self.opened.append((True, is_code))
            elif kind == _CLOSE and self.opened:
                pushed, is_code = self.opened.pop()
                self.code -= is_code
                if pushed:
                    self.stack.pop()
        if self.buffer:
            self._text("".join(self.buffer))
        self._trim()
        return _freeze(self.root.items)

    def _text(self, text: str) -> None:
        if _HTML_SPACE.fullmatch(text):
            if self.state == "char" and not self.pending_sep:
                self._append(" ")
            return
        if self.code or ("$" not in text and "\\" not in text):
            self._append(text)
            return
        for part in split_math(text):
            self._append(part)

    def _append(self, part: str | Math) -> None:
        if self.pending_sep and self.state in ("char", "space"):
            self._trim()
            self.stack[-1].items.append(LineBreak())
            self.state = "br"
        self.pending_sep = False
        items = self.stack[-1].items
        if isinstance(part, Math):
            items.append(part)
            self.state, self.last_text = "char", None
            return
        text = _collapse(part)
        if self.state != "char":
            text = text.lstrip(" ")
        if text:
            items.append(text)
            self.last_text = (items, len(items) - 1)
            self.state = "space" if text.endswith(" ") else "char"

    def _trim(self) -> None:
        """Remove the trailing space of the content, before a line break or at the end."""
        if self.last_text is not None:
            items, i = self.last_text
            text = items[i]
            if isinstance(text, str) and text.endswith(" "):
                items[i] = text.rstrip(" ")


def _freeze(items: list[str | Math | LineBreak | _Node]) -> Inlines:
    """Frozen inline objects: text joined, empty text/styles/links dropped, no trailing LineBreak.
    Recursion is bounded by _MAX_INLINE_DEPTH."""
    out: list[Inline] = []
    parts: list[str] = []

    def flush() -> None:
        text = "".join(parts)
        parts.clear()
        if text:
            out.append(Text(text))

    for item in items:
        if isinstance(item, str):
            parts.append(item)
            continue
        if isinstance(item, _Node):
            children = _freeze(item.items)
            if not children:  # an empty style or link: the text on both sides joins up
                continue
            flush()
            if item.href is not None:
                out.append(Link(item.href, children))
            elif item.style is not None:
                out.append(Styled(item.style, children))
        else:
            flush()
            out.append(item)
    flush()
    while out and isinstance(out[-1], LineBreak):
        out.pop()
    return tuple(out)


def read_inlines(pieces: Iterable[Piece]) -> Inlines:
    """Inline content of `pieces`: whitespace collapsed, ends stripped, inline math found."""
    items = list(pieces)
    if all(isinstance(p, str) for p in items):
        return text_inlines("".join(items))
    return _InlineBuilder().feed(_events(items))


def take_inlines(run: list[Piece]) -> Inlines:
    """Inline content of a pending run of pieces, which is emptied."""
    content = read_inlines(run)
    run.clear()
    return content


def text_inlines(text: str) -> Inlines:
    """Inline content of plain text (no markup): the common case, made fast."""
    collapsed = _collapse(text).strip(" ")
    if "$" not in collapsed and "\\" not in collapsed:
        return (Text(collapsed),) if collapsed else ()
    return _InlineBuilder().feed([(_TEXT, text)])


def element_inlines(el: El) -> Inlines:
    """Inline content of an element (fast for an element with no children)."""
    if len(el) == 0:
        return text_inlines(el.text) if el.text else ()
    return read_inlines(pieces_of(el))
