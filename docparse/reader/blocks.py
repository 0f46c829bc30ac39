"""Blocks out of a parsed answer: the walk over containers and runs of text, and each element's block."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import assert_never

from docparse.document import Block, Box, Chart, Chemistry, Code, Figure, Formula, Heading, Music, Other, Paragraph
from docparse.reader.context import ReadContext
from docparse.reader.elements import (
    BLOCK_TAGS,
    HEADINGS,
    STYLES,
    BlockKind,
    El,
    Piece,
    class_kind,
    flat_text,
    has_box,
    pieces_of,
    raw_class_of,
    tag_name,
)
from docparse.reader.inline import element_inlines, read_inlines, take_inlines
from docparse.reader.lists import read_list
from docparse.reader.mathtext import strip_math_delimiters
from docparse.reader.tables import read_table


@dataclass(slots=True)
class _Frame:
    """A container being walked: its remaining pieces, and the inline run not yet made a block."""

    pieces: Iterator[Piece]
    box: Box | None
    raw_class: str
    run: list[Piece] = field(default_factory=list)


class BlockReader:
    """Walks a parsed answer into blocks; boxes and warnings go through the read's context."""

    def __init__(self, ctx: ReadContext) -> None:
        self.ctx = ctx

    def read_tree(self, root: El) -> list[Block]:
        """All blocks of the tree, in document order. Iterative: no depth limit of its own."""
        out: list[Block] = []
        frames = [_Frame(iter([root]), None, "")]
        while frames:
            f = frames[-1]
            piece = next(f.pieces, None)
            if piece is None:
                self._flush(f, out)
                frames.pop()
                continue
            if isinstance(piece, str):
                f.run.append(piece)
                continue
            kind = self._classify(piece)
            if kind == "inline":
                f.run.append(piece)
                continue
            self._flush(f, out)
            if kind == "container":
                frames.append(_Frame(pieces_of(piece), self.ctx.box(piece) or f.box, raw_class_of(piece)))
            elif kind != "skip":
                out.extend(self._block(piece, kind))
        return out

    def _classify(self, el: El) -> BlockKind:
        """What an element among blocks is: a block kind, a container to walk into, a leaf (Other
        with its text), inline (part of a run of text), or skip."""
        tag = tag_name(el)
        if tag in HEADINGS:
            return "heading"
        if tag == "p":
            return "paragraph"
        if tag in ("ul", "ol", "li"):
            return "list"
        if tag == "table":
            return "table"
        if tag == "img":
            return "figure"
        if tag in ("pre", "code", "listing", "xmp"):
            return "code"
        if tag == "hr" or not tag:
            return "skip"
        if tag not in STYLES and tag not in ("a", "span", "font", "br"):
            special, _ = class_kind(el)
            if special is not None:
                return special
        if any(tag_name(c) in BLOCK_TAGS or has_box(c) for c in el):
            return "container"
        if tag in BLOCK_TAGS or has_box(el):
            return "leaf"
        return "inline"

    def _flush(self, f: _Frame, out: list[Block]) -> None:
        """Make the frame's pending inline run an Other block (if it has any text)."""
        run, f.run = f.run, []
        if all(isinstance(p, str) and p.isspace() for p in run):
            return
        content = read_inlines(run)
        if not content:
            return
        elements = [p for p in run if not isinstance(p, str)]
        loose = [p for p in run if isinstance(p, str) and p.strip()]
        if len(elements) == 1 and not loose:
            out.append(
                Other(content=content, box=self.ctx.box(elements[0]) or f.box, raw_class=raw_class_of(elements[0]))
            )
        else:
            out.append(Other(content=content, box=f.box, raw_class=f.raw_class))

    def _block(self, el: El, kind: BlockKind) -> list[Block]:
        """The blocks one element makes (usually one; none when it carries nothing). A match over every
        kind, so mypy names this place when a kind is added."""
        raw = raw_class_of(el)
        match kind:
            case "list":
                lst = read_list(el, self.ctx, 0)
                return [lst] if lst is not None else []
            case "table":
                table = read_table(el, self.ctx)
                return [table] if table is not None else []
            case "heading" | "paragraph" | "leaf":
                content = element_inlines(el)
                if not content:
                    return self._pictures_in(el) if kind != "heading" else []
                box = self.ctx.box(el)
                if kind == "heading":
                    return [Heading(level=HEADINGS[tag_name(el)], content=content, box=box, raw_class=raw)]
                cls = Paragraph if kind == "paragraph" else Other
                return [cls(content=content, box=box, raw_class=raw)]
            case "figure":  # a bare <img>: without a box it carries nothing
                box = self.ctx.box(el)
                return [Figure(box=box, raw_class=raw)] if box is not None else []
            case "image":
                return [self._figure(el, self.ctx.box(el), raw)]
            case "chart":
                return [self._chart(el, self.ctx.box(el), raw)]
            case "formula" | "music" | "chemistry":
                return self._payload_blocks(el, kind, self.ctx.box(el), raw)
            case "code":
                text = flat_text(pieces_of(el)).rstrip().lstrip("\r\n")
                box = self.ctx.box(el)
                return [Code(text=text, language=_language(el), box=box, raw_class=raw)] if text.strip() else []
            case "container" | "inline" | "skip":  # walked into, kept in a run of text, or dropped by the caller
                return []
            case _:
                assert_never(kind)

    def _pictures_in(self, el: El) -> list[Block]:
        """Figures for the boxed <img> inside an element that has no text of its own."""
        return [
            Figure(box=self.ctx.box(img), raw_class="img") for img in el.iter("img") if img.get("data-bbox") is not None
        ]

    def _figure(self, el: El, box: Box | None, raw: str) -> Figure:
        """div.image / "image caption" / "image ocr": the caption from its <p>, or read-in text for "ocr"."""
        if box is None:
            img = next(el.iter("img"), None)
            box = self.ctx.box(img) if img is not None else None
        content = element_inlines(el)
        if "ocr" in (el.get("class") or "").lower().split():
            return Figure(inner_text=content, box=box, raw_class=raw)
        return Figure(caption=content, box=box, raw_class=raw)

    def _chart(self, el: El, box: Box | None, raw: str) -> Chart:
        """div.chart: its first table is the data read off the chart; other text is the caption."""
        table_el = next(el.iter("table"), None)
        table = read_table(table_el, self.ctx) if table_el is not None else None
        rest = [
            p
            for p in pieces_of(el)
            if isinstance(p, str) or table_el is None or not any(t is table_el for t in p.iter("table"))
        ]
        caption = read_inlines(rest)
        return Chart(table=table, caption=caption, box=box, raw_class=raw)

    def _payload_blocks(self, el: El, kind: BlockKind, box: Box | None, raw: str) -> list[Block]:
        """div.formula / div."music sheet" / div."chemical formula".

        Each inner <div> holds the payload (LaTeX, ABC, SMILES), taken verbatim but for surrounding
        whitespace (and, for LaTeX, its delimiters). Text outside the inner divs (fixture 05 has a
        formula followed by more text in the same div) becomes Paragraphs with the same box, in
        place. With no inner div, all the element's text is the payload.
        """
        _, variant = class_kind(el)
        pieces = list(pieces_of(el))
        if not any(not isinstance(p, str) and tag_name(p) == "div" for p in pieces):
            pieces = [flat_text(pieces)]
            payload_only = True
        else:
            payload_only = False
        out: list[Block] = []
        between: list[Piece] = []

        def flush_text() -> None:
            if content := take_inlines(between):
                out.append(Paragraph(content=content, box=box, raw_class=raw))

        for p in pieces:
            is_payload = payload_only or (not isinstance(p, str) and tag_name(p) == "div")
            if not is_payload:
                if isinstance(p, str) or tag_name(p) != "img":
                    between.append(p)
                continue
            flush_text()
            text = p if isinstance(p, str) else flat_text(pieces_of(p))
            if not text.strip() and box is None:  # nothing to show and nowhere to show it
                continue
            if kind != "formula" and not isinstance(p, str) and len(p):
                self.ctx.warn(
                    "markup in notation",
                    f"the {raw} text held '<' that HTML reads as a tag: it is not byte for byte",
                )
            if kind == "formula":
                out.append(Formula(latex=strip_math_delimiters(text), variant=variant, box=box, raw_class=raw))
            elif kind == "music":
                out.append(Music(abc=text.strip(), box=box, raw_class=raw))
            else:
                out.append(Chemistry(smiles=text.strip(), box=box, raw_class=raw))
        flush_text()
        return out


def _language(el: El) -> str | None:
    """A code block's language from class="language-x" / "lang-x" on it or on an inner <code>."""
    for node in (el, next(el.iter("code"), None)):
        if node is None:
            continue
        for word in (node.get("class") or "").split():
            for prefix in ("language-", "lang-"):
                if word.startswith(prefix) and len(word) > len(prefix):
                    return word[len(prefix) :]
    return None
