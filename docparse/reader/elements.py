"""The HTML the reader knows: element vocabulary, the characters lxml refuses, and small helpers over lxml elements."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeAlias

from docparse.document import Style

# An lxml element (lxml ships no type stubs, so this is Any to mypy).
El: TypeAlias = Any
# The parts of an element's content in document order: its text, then each child followed by the child's tail.
Piece: TypeAlias = "str | El"


# --- element vocabulary -----------------------------------------------------------------------


def _words(names: str) -> frozenset[str]:
    return frozenset(names.split())


HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
STYLES: dict[str, Style] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "cite": "italic",
    "var": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strike",
    "del": "strike",
    "strike": "strike",
    "sub": "sub",
    "sup": "sup",
    "code": "code",
    "kbd": "code",
    "samp": "code",
    "tt": "code",
}
# Elements that make a block of their own (or hold blocks) when they appear among blocks.
BLOCK_TAGS = frozenset(HEADINGS) | _words(
    "p ul ol li dl dt dd table thead tbody tfoot tr td th caption div section article address blockquote"
    " pre figure figcaption img header footer main nav aside form fieldset details summary center hr"
    " html body svg math picture video audio canvas iframe"
)
# Inside inline content, these start a new line (a LineBreak where text surrounds them).
LINE_TAGS = BLOCK_TAGS - {"td", "th", "img", "hr", "svg", "math", "picture", "video", "audio", "canvas"}
CELL_TAGS = frozenset({"td", "th"})

BlockKind = Literal[
    "heading",
    "paragraph",
    "list",
    "table",
    "figure",
    "image",
    "formula",
    "chart",
    "music",
    "chemistry",
    "code",
    "container",
    "leaf",
    "inline",
    "skip",
]

# --- characters -----------------------------------------------------------------------------

# Characters XML (and so lxml) refuses: C0 controls but tab/newline/return, lone surrogates, and
# the two non-characters. Surrogates become U+FFFD; the rest are removed.
_CLEAN_TABLE: dict[int, int | None] = {c: None for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)}
_CLEAN_TABLE.update({c: 0xFFFD for c in range(0xD800, 0xE000)})
_CLEAN_TABLE.update({0xFFFE: None, 0xFFFF: None})


def clean(text: str) -> str:
    """`text` without the characters lxml cannot hold (see _CLEAN_TABLE)."""
    return text.translate(_CLEAN_TABLE)


# --- tree helpers -----------------------------------------------------------------------------


def tag_name(el: El) -> str:
    tag = el.tag
    return tag if isinstance(tag, str) else ""


def pieces_of(el: El) -> Iterator[Piece]:
    """el's content in order: its text, then each child and that child's tail."""
    if el.text:
        yield el.text
    for child in el:
        yield child
        if child.tail:
            yield child.tail


def has_box(el: El) -> bool:
    return el.get("data-bbox") is not None or el.get("data-polygon") is not None


def raw_class_of(el: El) -> str:
    """The model's name for an element: the tag, plus "." and the class attribute if it has one."""
    cls = " ".join((el.get("class") or "").split())
    return f"{tag_name(el)}.{cls}" if cls else tag_name(el)


def walk(pieces: Iterable[Piece], enter: Callable[[El, int], bool]) -> Iterator[tuple[Piece, bool]]:
    """Each piece under `pieces` in document order, with whether it is entered. Iterative.

    An element is entered when `enter(element, depth)` says so (depth 1 for the elements of
    `pieces` themselves): its own pieces follow it. Other elements are given whole.
    """
    stack: list[Iterator[Piece]] = [iter(pieces)]
    while stack:
        p = next(stack[-1], None)
        if p is None:
            stack.pop()
        elif isinstance(p, str) or not enter(p, len(stack)):
            yield p, False
        else:
            yield p, True
            stack.append(pieces_of(p))


def _not_br(el: El, depth: int) -> bool:
    return tag_name(el) != "br"


def flat_text(pieces: Iterable[Piece]) -> str:
    """All text under `pieces`, verbatim, in document order (<br> as a newline). Iterative."""
    out: list[str] = []
    for p, entered in walk(pieces, _not_br):
        if isinstance(p, str):
            out.append(p)
        elif not entered:  # a <br>
            out.append("\n")
    return "".join(out)


def has_text(pieces: Iterable[Piece]) -> bool:
    return bool(flat_text(pieces).strip())


def class_kind(el: El) -> tuple[BlockKind | None, str | None]:
    """The block kind named by a div class ("formula.handwritten", "image caption") and its dot qualifier."""
    words = (el.get("class") or "").lower().split()
    if not words:
        return None, None
    head, _, qualifier = words[0].partition(".")
    name = " ".join([head, *words[1:]]).replace("_", " ").replace("-", " ")
    variant = qualifier or None
    if name.startswith("chemi"):
        return "chemistry", variant
    if name.startswith("music"):
        return "music", variant
    if name.startswith(("formula", "equation")):
        return "formula", variant
    if name.startswith("chart"):
        return "chart", variant
    if name.startswith(("image", "figure", "picture", "photo")):
        return "image", variant
    return None, None
