"""The reader: one raw Qwen2.5-VL "QwenVL HTML" answer in, typed document blocks (in page space) out."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import lxml.html
from lxml import etree

from docparse.document import (
    Block,
    Box,
    Cell,
    Chart,
    Chemistry,
    Code,
    Figure,
    Formula,
    Heading,
    Inline,
    Inlines,
    LineBreak,
    Link,
    ListBlock,
    ListItem,
    Math,
    Music,
    Other,
    Paragraph,
    Style,
    Styled,
    Table,
    Text,
)

__all__ = ["ReadResult", "read_answer"]

# An lxml element (lxml ships no type stubs, so this is Any to mypy).
_El: TypeAlias = Any
# The parts of an element's content in document order: its text, then each child followed by the child's tail.
_Piece: TypeAlias = "str | _El"


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What the reader made of one answer.

    `blocks` are in reading order. `warnings` are human-readable, one line each. `truncated` is
    True when the answer was cut off (no closing fence, no closing `</html>`/`</body>`, or it ends
    inside a tag). `structured` is False when the answer carries no `data-bbox` at all, i.e. it is
    not QwenVL HTML (another prompt, or no HTML): its text is still returned as blocks.
    """

    blocks: tuple[Block, ...]
    warnings: tuple[str, ...]
    truncated: bool
    structured: bool


# --- limits -----------------------------------------------------------------------------------

# libxml2 stops a tree at 2048 levels (with huge_tree) and drops the rest of the document; such an
# answer is parsed again into a tree built from parser events, where elements nested deeper than
# this are not built: their text is kept, flattened into the element at this depth.
_MAX_TREE_DEPTH = 200
# Styled/Link nesting kept in inline content; deeper markup is flattened into its text. The JSON
# and renderers of the document model recurse over inline children and nested lists.
_MAX_INLINE_DEPTH = 24
_MAX_LIST_DEPTH = 12
# Inline elements read as markup in one block; past this, elements give their text only (this
# keeps a huge degenerate answer fast).
_MAX_INLINE_ELEMENTS = 5000
# Per-page warnings of one kind are capped at this count, then summarised.
_MAX_WARNINGS_PER_KIND = 10

# --- element vocabulary -----------------------------------------------------------------------


def _words(names: str) -> frozenset[str]:
    return frozenset(names.split())


# Never content: their text is dropped when the tree is built.
_DROPPED = _words("head title meta style script noscript template link base object")
# Void in HTML5 but a container to libxml2, which would nest the rest of the page inside it: the
# tag is removed and what libxml2 put inside it is kept.
_UNWRAPPED = _words("embed")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_STYLES: dict[str, Style] = {
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
_BLOCK_TAGS = frozenset(_HEADINGS) | _words(
    "p ul ol li dl dt dd table thead tbody tfoot tr td th caption div section article address blockquote"
    " pre figure figcaption img header footer main nav aside form fieldset details summary center hr"
    " html body svg math picture video audio canvas iframe"
)
# Inside inline content, these start a new line (a LineBreak where text surrounds them).
_LINE_TAGS = _BLOCK_TAGS - {"td", "th", "img", "hr", "svg", "math", "picture", "video", "audio", "canvas"}
_CELL_TAGS = frozenset({"td", "th"})
# Attributes the reader uses (the event-built tree keeps no others: style, src, ...).
_KEPT_ATTRS = frozenset({"data-bbox", "data-polygon", "class", "colspan", "rowspan", "href", "format"})

_BlockKind = Literal[
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

# --- text helpers -----------------------------------------------------------------------------

# Characters XML (and so lxml) refuses: C0 controls but tab/newline/return, lone surrogates, and
# the two non-characters. Surrogates become U+FFFD; the rest are removed.
_CLEAN_TABLE: dict[int, int | None] = {c: None for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)}
_CLEAN_TABLE.update({c: 0xFFFD for c in range(0xD800, 0xE000)})
_CLEAN_TABLE.update({0xFFFE: None, 0xFFFF: None})

_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
# Inline math: an opener of $$...$$, \(...\) or \[...\] (closed by str.find), or a whole $...$.
_MATH_TOKEN = re.compile(
    r"(?<!\\)(?:\$\$|\\\(|\\\[)"
    r"|(?<![\\$])\$(?=[^\s$])([^$]*)(?<![\s\\])\$(?!\d)"
)
_CLOSERS = {"$$": "$$", "\\(": "\\)", "\\[": "\\]"}
_FENCE_HTML = re.compile(r"```[ \t]*html\b", re.IGNORECASE)
_FENCE_BARE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*(?=\r?\n|<|$)")
_DOC_END_TAG = re.compile(r"</[ \t\r\n]*(?:html|body)[ \t\r\n]*>", re.IGNORECASE)
_SPECIAL_TOKENS = ("<|im_end|>", "<|endoftext|>")


def _clean(text: str) -> str:
    """`text` without the characters lxml cannot hold (see _CLEAN_TABLE)."""
    return text.translate(_CLEAN_TABLE)


def _collapse(text: str) -> str:
    return _HTML_SPACE.sub(" ", text)


def _strip_math_delimiters(latex: str) -> str:
    """A display formula without its `$$...$$`, `\\[...\\]`, `$...$` or `\\(...\\)` delimiters.

    An opening delimiter with no closing one (a cut answer) is removed too.
    """
    s = latex.strip()
    for left, right in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(left):
            inner = s[len(left) :]
            if inner.endswith(right) and len(inner) >= len(right):
                inner = inner[: -len(right)]
            return inner.strip()
    return s


def _split_math(text: str) -> list[str | Math]:
    """Split a text run into text and inline Math.

    `$$...$$`, `\\[...\\]` and `\\(...\\)` always make Math. `$...$` does when the opening `$` is
    followed by a non-space, and the next `$` on the run closes it: preceded by a non-space (not
    a backslash) and not followed by a digit; so "costs $5" and "$5 and $10" stay text. An
    escaped `\\$` never opens. Linear in the length of the run.
    """
    if "$" not in text and "\\(" not in text and "\\[" not in text:
        return [text]
    out: list[str | Math] = []
    pos = 0  # start of the text not yet emitted
    scan = 0  # where to look for the next delimiter
    exhausted: set[str] = set()  # closers known to be absent after `scan`
    while True:
        m = _MATH_TOKEN.search(text, scan)
        if m is None:
            break
        if m.group(1) is not None:  # a whole $...$
            start, end, latex = m.start(), m.end(), m.group(1)
        else:
            opener = m.group()
            closer = _CLOSERS[opener]
            j = -1 if closer in exhausted else text.find(closer, m.end())
            if j < 0:
                exhausted.add(closer)
                scan = m.end()
                continue
            start, end, latex = m.start(), j + len(closer), text[m.end() : j]
            if not latex.strip():
                scan = end
                continue
        if pos < start:
            out.append(text[pos:start])
        out.append(Math(latex))
        pos = scan = end
    if pos < len(text):
        out.append(text[pos:])
    return out


# --- fence, truncation ------------------------------------------------------------------------


@dataclass(slots=True)
class _Unwrapped:
    html: str
    fence_open: bool = False  # a fence opened and never closed
    prose: str = ""  # text outside the fence


def _unwrap(text: str) -> _Unwrapped:
    """The HTML inside a Markdown code fence (```html preferred, else a bare ```), or all of it.

    Text before and after the fence is returned as `prose`; a fence never closed sets
    `fence_open`. A lone ``` after markup (a closing fence with no opening) is removed.
    """
    m = _FENCE_HTML.search(text)
    if m is None:
        m = _FENCE_BARE.search(text)
        if m is None:
            return _Unwrapped(text)
        if "<" in text[: m.start()] and "```" not in text[m.end() :]:
            # markup, then a lone fence: a closing fence without its opening one
            return _Unwrapped(text[: m.start()] + text[m.end() :])
    start = m.end()
    end = text.find("```", start)
    inside = text[start:] if end < 0 else text[start:end]
    if end < 0:
        return _Unwrapped(inside, fence_open=True, prose=text[: m.start()])
    return _Unwrapped(inside, prose=text[: m.start()] + "\n" + text[end + 3 :])


def _ends_inside_tag(html: str) -> bool:
    """True when the text ends in a tag that never closes (`<p data-bb`), judged from its tail."""
    lt = html.rfind("<")
    if lt < 0 or lt < html.rfind(">"):
        return False
    nxt = html[lt + 1 : lt + 2]
    return nxt.isalpha() or nxt in ("/", "!")


def _truncation(unwrapped: _Unwrapped) -> str | None:
    """Why the answer looks cut off, or None when it looks complete."""
    html = unwrapped.html.rstrip()
    if unwrapped.fence_open:
        return "no closing ``` fence"
    if _ends_inside_tag(html):
        return "it ends inside a tag"
    low = html.lower()
    if "<html" in low or "<body" in low:
        if "</html" not in low and "</body" not in low:
            return "no closing </body> or </html>"
    elif "<" in html and not html.endswith(">"):
        return "it ends in the text of an unclosed element"
    return None


# --- building the tree from parser events -----------------------------------------------------


_BUILD_ERRORS = (etree.Error, AssertionError, ValueError, TypeError)


class _TreeTarget:
    """A parser target that builds an lxml tree, bounded in depth, without dropped elements.

    It keeps only the attributes the reader uses, drops the content of head/style/script and the
    like, flattens elements deeper than _MAX_TREE_DEPTH into their text, and notes whether any
    data-bbox was seen. It never raises into the parser.
    """

    def __init__(self) -> None:
        self._builder = etree.TreeBuilder()
        self._stack: list[tuple[str, str]] = []  # (what, tag): what is "keep", "mute" or "flat"
        self._depth = 0
        self._mute = 0
        self.has_bbox = False
        self.flattened = False

    def start(self, tag: Any, attrib: Any) -> None:
        name = tag.lower() if isinstance(tag, str) else ""
        if not self.has_bbox and ("data-bbox" in attrib or "data-polygon" in attrib):
            self.has_bbox = True
        if self._mute or name in _DROPPED:
            self._mute += 1
            self._stack.append(("mute", name))
            return
        if self._depth >= _MAX_TREE_DEPTH or not name or name in _UNWRAPPED:
            self.flattened = self.flattened or (bool(name) and name not in _UNWRAPPED)
            self._stack.append(("flat", name))
            return
        attrs = {k.lower(): _clean(str(v)) for k, v in attrib.items() if k.lower() in _KEPT_ATTRS}
        try:
            self._builder.start(name, attrs)
        except _BUILD_ERRORS:  # a tag name lxml refuses
            name = "unknown"
            try:
                self._builder.start(name, attrs)
            except _BUILD_ERRORS:
                self._stack.append(("flat", name))
                return
        self._depth += 1
        self._stack.append(("keep", name))

    def end(self, tag: Any) -> None:
        if not self._stack:
            return
        what, name = self._stack.pop()
        if what == "mute":
            self._mute -= 1
        elif what == "keep":
            self._depth -= 1
            with contextlib.suppress(*_BUILD_ERRORS):
                self._builder.end(name)

    def data(self, text: Any) -> None:
        if not self._mute and isinstance(text, str):
            try:
                self._builder.data(text)
            except _BUILD_ERRORS:
                with contextlib.suppress(*_BUILD_ERRORS):
                    self._builder.data(_clean(text))

    def close(self) -> _El | None:
        while self._stack:
            self.end(None)
        try:
            return self._builder.close()
        except _BUILD_ERRORS:
            return None


@dataclass(frozen=True, slots=True)
class _Parsed:
    root: _El | None  # None when the answer holds no element at all
    has_bbox: bool  # some element carries data-bbox (or data-polygon)
    flattened: bool  # markup deeper than _MAX_TREE_DEPTH was flattened into text


def _parser(target: _TreeTarget | None = None) -> Any:
    """lxml.html's recovering HTML parser, making plain elements: the reader needs none of the
    HtmlElement methods, and lxml.html's per-element class lookup runs in Python (slow on big answers)."""
    parser = lxml.html.HTMLParser(
        target=target,
        recover=True,
        no_network=True,
        remove_comments=True,
        remove_pis=True,
        default_doctype=False,
        huge_tree=True,
        encoding="utf-8",
    )
    parser.set_element_class_lookup(etree.ElementDefaultClassLookup())
    return parser


def _clean_tree(root: _El) -> None:
    """Remove characters _clean removes from every text, tail and attribute value of the tree."""
    for el in root.iter():
        if el.text and _clean(el.text) != el.text:
            el.text = _clean(el.text)
        if el.tail and _clean(el.tail) != el.tail:
            el.tail = _clean(el.tail)
        for key, value in el.attrib.items():
            if _clean(value) != value:
                el.set(key, _clean(value))


def _parse(html: str) -> _Parsed:
    """Parse `html` with lxml's recovering HTML parser; head/style/script and the like removed.

    The plain tree parse is fast, but libxml2 abandons the rest of a document nested deeper than
    it allows (a fatal error in its log). Then the answer is parsed again into a tree built from
    the parser's events (_TreeTarget), which flattens deep markup and keeps all the text.
    """
    data = html.encode("utf-8")
    parser = _parser()
    try:
        root = etree.fromstring(data, parser)
        fatal = any(e.level_name == "FATAL" for e in parser.error_log)
    except etree.Error:
        root, fatal = None, True
    if not fatal:
        if root is None:
            return _Parsed(None, False, False)
        etree.strip_elements(root, *_DROPPED, with_tail=False)
        etree.strip_tags(root, *_UNWRAPPED)
        if "&#" in html:  # a character reference may name a character lxml cannot hold in a tree
            _clean_tree(root)
        has_bbox = bool(root.xpath("boolean(//@data-bbox | //@data-polygon)"))
        return _Parsed(root, has_bbox, False)
    target = _TreeTarget()
    try:
        root = etree.fromstring(data, _parser(target))
    except etree.Error:
        root = target.close()
    return _Parsed(root, target.has_bbox, target.flattened)


# --- tree helpers -----------------------------------------------------------------------------


def _tag(el: _El) -> str:
    tag = el.tag
    return tag if isinstance(tag, str) else ""


def _pieces(el: _El) -> Iterator[_Piece]:
    """el's content in order: its text, then each child and that child's tail."""
    if el.text:
        yield el.text
    for child in el:
        yield child
        if child.tail:
            yield child.tail


def _has_box(el: _El) -> bool:
    return el.get("data-bbox") is not None or el.get("data-polygon") is not None


def _raw_class(el: _El) -> str:
    """The model's name for an element: the tag, plus "." and the class attribute if it has one."""
    cls = " ".join((el.get("class") or "").split())
    return f"{_tag(el)}.{cls}" if cls else _tag(el)


def _flat_text(pieces: Iterable[_Piece]) -> str:
    """All text under `pieces`, verbatim, in document order (<br> as a newline). Iterative."""
    out: list[str] = []
    stack: list[Iterator[_Piece]] = [iter(pieces)]
    while stack:
        p = next(stack[-1], None)
        if p is None:
            stack.pop()
            continue
        if isinstance(p, str):
            out.append(p)
        elif _tag(p) == "br":
            out.append("\n")
        else:
            stack.append(_pieces(p))
    return "".join(out)


def _has_text(pieces: Iterable[_Piece]) -> bool:
    return bool(_flat_text(pieces).strip())


def _class_kind(el: _El) -> tuple[_BlockKind | None, str | None]:
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


# --- the reader -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Frame:
    """A container being walked: its remaining pieces, and the inline run not yet made a block."""

    pieces: Iterator[_Piece]
    box: Box | None
    raw_class: str
    run: list[_Piece] = field(default_factory=list)


class _Reader:
    """One read: holds the coordinate mapping and the warnings of one page."""

    def __init__(self, image_size: tuple[int, int] | None, page_size: tuple[float, float] | None) -> None:
        self.warnings: list[str] = []
        self._counts: dict[str, int] = {}
        self._clamped = 0
        self._image: tuple[float, float] | None = None
        self._scale: tuple[float, float] | None = None
        if image_size is not None:
            if _positive_pair(image_size):
                self._image = (float(image_size[0]), float(image_size[1]))
            else:
                self.warnings.append(f"ignored image_size {image_size!r}: not two positive numbers")
        if page_size is not None:
            if not _positive_pair(page_size):
                self.warnings.append(f"ignored page_size {page_size!r}: not two positive numbers")
            elif self._image is None:
                self.warnings.append("page_size given without image_size: boxes are left in model pixels")
            else:
                self._scale = (float(page_size[0]) / self._image[0], float(page_size[1]) / self._image[1])

    # warnings

    def _warn(self, kind: str, message: str) -> None:
        n = self._counts.get(kind, 0) + 1
        self._counts[kind] = n
        if n <= _MAX_WARNINGS_PER_KIND:
            self.warnings.append(message)

    def _summarise(self) -> None:
        for kind, n in self._counts.items():
            if n > _MAX_WARNINGS_PER_KIND:
                self.warnings.append(f"... and {n - _MAX_WARNINGS_PER_KIND} more warnings like that ({kind})")
        if self._clamped and self._image is not None:
            w, h = self._image
            self.warnings.append(
                f"{self._clamped} box(es) reached outside the {w:g}x{h:g} px image and were clamped to it"
            )

    # boxes

    def box(self, el: _El) -> Box | None:
        """el's data-bbox (else its data-polygon bounds): ordered, clamped, mapped; None if absent/bad."""
        raw = el.get("data-bbox")
        if raw is None:
            poly = el.get("data-polygon")
            nums = _numbers(poly) if poly is not None else None
            if not nums or len(nums) < 4 or len(nums) % 2:
                return None
            xs, ys = nums[0::2], nums[1::2]
            return self._finish_box(min(xs), min(ys), max(xs), max(ys))
        nums = _numbers(raw)
        if nums is None or len(nums) != 4:
            self._warn("bad data-bbox", f"ignored an unreadable data-bbox {raw[:60]!r} on <{_tag(el)}>")
            return None
        x0, y0, x1, y1 = nums
        return self._finish_box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def _finish_box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        if self._image is not None:
            w, h = self._image
            c = (min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h))
            if c != (x0, y0, x1, y1):
                self._clamped += 1
            x0, y0, x1, y1 = c
        if self._scale is not None:
            sx, sy = self._scale
            return Box(round(x0 * sx, 2), round(y0 * sy, 2), round(x1 * sx, 2), round(y1 * sy, 2))
        return Box(x0, y0, x1, y1)

    # blocks

    def read_tree(self, root: _El) -> list[Block]:
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
                frames.append(_Frame(_pieces(piece), self.box(piece) or f.box, _raw_class(piece)))
            elif kind != "skip":
                out.extend(self._block(piece, kind))
        return out

    def _classify(self, el: _El) -> _BlockKind:
        """What an element among blocks is: a block kind, a container to walk into, a leaf (Other
        with its text), inline (part of a run of text), or skip."""
        tag = _tag(el)
        if tag in _HEADINGS:
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
        if tag not in _STYLES and tag not in ("a", "span", "font", "br"):
            special, _ = _class_kind(el)
            if special is not None:
                return special
        if any(_tag(c) in _BLOCK_TAGS or _has_box(c) for c in el):
            return "container"
        if tag in _BLOCK_TAGS or _has_box(el):
            return "leaf"
        return "inline"

    def _flush(self, f: _Frame, out: list[Block]) -> None:
        """Make the frame's pending inline run an Other block (if it has any text)."""
        run, f.run = f.run, []
        if all(isinstance(p, str) and p.isspace() for p in run):
            return
        content = self.inlines(run)
        if not content:
            return
        elements = [p for p in run if not isinstance(p, str)]
        loose = [p for p in run if isinstance(p, str) and p.strip()]
        if len(elements) == 1 and not loose:
            out.append(Other(content=content, box=self.box(elements[0]) or f.box, raw_class=_raw_class(elements[0])))
        else:
            out.append(Other(content=content, box=f.box, raw_class=f.raw_class))

    def _block(self, el: _El, kind: _BlockKind) -> list[Block]:
        """The blocks one element makes (usually one; none when it carries nothing)."""
        if kind == "list":
            lst = self._list(el, 0)
            return [lst] if lst is not None else []
        if kind == "table":
            table = self._table(el)
            return [table] if table is not None else []
        raw = _raw_class(el)
        if kind in ("heading", "paragraph", "leaf"):
            content = self.content(el)
            if not content:
                return self._pictures_in(el) if kind != "heading" else []
            box = self.box(el)
            if kind == "heading":
                return [Heading(level=_HEADINGS[_tag(el)], content=content, box=box, raw_class=raw)]
            cls = Paragraph if kind == "paragraph" else Other
            return [cls(content=content, box=box, raw_class=raw)]
        box = self.box(el)
        if kind == "figure":  # a bare <img>: without a box it carries nothing
            return [Figure(box=box, raw_class=raw)] if box is not None else []
        if kind == "image":
            return [self._figure(el, box, raw)]
        if kind == "chart":
            return [self._chart(el, box, raw)]
        if kind in ("formula", "music", "chemistry"):
            return self._payload_blocks(el, kind, box, raw)
        if kind == "code":
            text = _flat_text(_pieces(el)).rstrip().lstrip("\r\n")
            return [Code(text=text, language=_language(el), box=box, raw_class=raw)] if text.strip() else []
        return []

    def _pictures_in(self, el: _El) -> list[Block]:
        """Figures for the boxed <img> inside an element that has no text of its own."""
        return [
            Figure(box=self.box(img), raw_class="img") for img in el.iter("img") if img.get("data-bbox") is not None
        ]

    def _figure(self, el: _El, box: Box | None, raw: str) -> Figure:
        """div.image / "image caption" / "image ocr": the caption from its <p>, or read-in text for "ocr"."""
        if box is None:
            img = next(el.iter("img"), None)
            box = self.box(img) if img is not None else None
        content = self.content(el)
        if "ocr" in (el.get("class") or "").lower().split():
            return Figure(inner_text=content, box=box, raw_class=raw)
        return Figure(caption=content, box=box, raw_class=raw)

    def _chart(self, el: _El, box: Box | None, raw: str) -> Chart:
        """div.chart: its first table is the data read off the chart; other text is the caption."""
        table_el = next(el.iter("table"), None)
        table = self._table(table_el) if table_el is not None else None
        rest = [
            p
            for p in _pieces(el)
            if isinstance(p, str) or table_el is None or not any(t is table_el for t in p.iter("table"))
        ]
        caption = self.inlines(rest)
        return Chart(table=table, caption=caption, box=box, raw_class=raw)

    def _payload_blocks(self, el: _El, kind: _BlockKind, box: Box | None, raw: str) -> list[Block]:
        """div.formula / div."music sheet" / div."chemical formula".

        Each inner <div> holds the payload (LaTeX, ABC, SMILES), taken verbatim but for surrounding
        whitespace (and, for LaTeX, its delimiters). Text outside the inner divs (fixture 05 has a
        formula followed by more text in the same div) becomes Paragraphs with the same box, in
        place. With no inner div, all the element's text is the payload.
        """
        _, variant = _class_kind(el)
        pieces = list(_pieces(el))
        if not any(not isinstance(p, str) and _tag(p) == "div" for p in pieces):
            pieces = [_flat_text(pieces)]
            payload_only = True
        else:
            payload_only = False
        out: list[Block] = []
        between: list[_Piece] = []

        def flush_text() -> None:
            content = self.inlines(between)
            between.clear()
            if content:
                out.append(Paragraph(content=content, box=box, raw_class=raw))

        for p in pieces:
            is_payload = payload_only or (not isinstance(p, str) and _tag(p) == "div")
            if not is_payload:
                if isinstance(p, str) or _tag(p) != "img":
                    between.append(p)
                continue
            flush_text()
            text = p if isinstance(p, str) else _flat_text(_pieces(p))
            if not text.strip() and box is None:  # nothing to show and nowhere to show it
                continue
            if kind != "formula" and not isinstance(p, str) and len(p):
                self._warn(
                    "markup in notation",
                    f"the {raw} text held '<' that HTML reads as a tag: it is not byte for byte",
                )
            if kind == "formula":
                out.append(Formula(latex=_strip_math_delimiters(text), variant=variant, box=box, raw_class=raw))
            elif kind == "music":
                out.append(Music(abc=text.strip(), box=box, raw_class=raw))
            else:
                out.append(Chemistry(smiles=text.strip(), box=box, raw_class=raw))
        flush_text()
        return out

    def _list(self, el: _El, depth: int) -> ListBlock | None:
        """ul/ol (or a stray li) as a ListBlock; lists nested past _MAX_LIST_DEPTH become item text."""
        tag = _tag(el)
        raw = _raw_class(el)
        if tag == "li":
            item = self._item(el, depth)
            return ListBlock(ordered=False, items=(item,), box=item.box, raw_class=raw) if item else None
        box = self.box(el)
        items: list[ListItem] = []
        run: list[_Piece] = []

        def flush_run() -> None:
            content = self.inlines(run)
            run.clear()
            if content:
                items.append(ListItem(content=content))

        for p in _pieces(el):
            ptag = "" if isinstance(p, str) else _tag(p)
            if ptag == "li":
                flush_run()
                item = self._item(p, depth)
                if item is not None:
                    items.append(item)
            elif ptag in ("ul", "ol") and depth + 1 < _MAX_LIST_DEPTH:
                flush_run()
                child = self._list(p, depth + 1)
                if child is not None:
                    last = items.pop() if items else ListItem(content=())
                    items.append(ListItem(content=last.content, children=(*last.children, child), box=last.box))
            elif ptag in _LINE_TAGS:
                flush_run()
                content = self.inlines([p])
                if content:
                    items.append(ListItem(content=content, box=self.box(p)))
            else:
                run.append(p)
        flush_run()
        if not items:
            return None
        return ListBlock(ordered=tag == "ol", items=tuple(items), box=box, raw_class=raw)

    def _item(self, li: _El, depth: int) -> ListItem | None:
        content_pieces: list[_Piece] = []
        children: list[ListBlock] = []
        for p in _pieces(li):
            if not isinstance(p, str) and _tag(p) in ("ul", "ol") and depth + 1 < _MAX_LIST_DEPTH:
                child = self._list(p, depth + 1)
                if child is not None:
                    children.append(child)
            else:
                content_pieces.append(p)
        content = self.inlines(content_pieces)
        if not content and not children:
            return None
        return ListItem(content=content, children=tuple(children), box=self.box(li))

    def _table(self, el: _El) -> Table | None:
        """A table with its rows (from thead/tbody/tfoot too), cells with colspan/rowspan/th, and caption."""
        rows: list[tuple[Cell, ...]] = []
        caption: Inlines = ()
        pending: list[Cell] = []  # cells directly under the table, with no <tr>

        def end_pending() -> None:
            if pending:
                rows.append(tuple(pending))
                pending.clear()

        stack: list[Iterator[_Piece]] = [_pieces(el)]
        while stack:
            p = next(stack[-1], None)
            if p is None:
                stack.pop()
                continue
            if isinstance(p, str):
                if p.strip():
                    pending.append(Cell(content=self.inlines([p])))
                continue
            tag = _tag(p)
            if tag in ("thead", "tbody", "tfoot", "colgroup") and len(stack) < 4:
                end_pending()
                stack.append(_pieces(p))
            elif tag == "tr":
                end_pending()
                row = self._row(p)
                if row:
                    rows.append(row)
            elif tag in _CELL_TAGS:
                pending.append(self._cell(p))
            elif tag == "caption":
                caption = self.content(p)
            elif tag != "col" and _has_text([p]):
                end_pending()
                rows.append((Cell(content=self.inlines([p])),))
        end_pending()
        if not rows and not caption:
            return None
        return Table(rows=tuple(rows), caption=caption, box=self.box(el), raw_class=_raw_class(el))

    def _row(self, tr: _El) -> tuple[Cell, ...]:
        """A row's cells; stray text or elements in it become cells of their own."""
        cells: list[Cell] = []
        if tr.text and not tr.text.isspace():
            cells.append(Cell(content=_text_inlines(tr.text)))
        for child in tr:
            if child.tag in _CELL_TAGS:
                cells.append(self._cell(child))
            elif _has_text([child]):
                cells.append(Cell(content=self.inlines([child])))
            if child.tail and not child.tail.isspace():
                cells.append(Cell(content=_text_inlines(child.tail)))
        return tuple(cells)

    def _cell(self, el: _El) -> Cell:
        colspan, rowspan = el.get("colspan"), el.get("rowspan")
        return Cell(
            content=self.content(el),
            colspan=1 if colspan is None else _span(colspan),
            rowspan=1 if rowspan is None else _span(rowspan),
            header=el.tag == "th",
        )

    def inlines(self, pieces: Iterable[_Piece]) -> Inlines:
        """Inline content of `pieces` (see _InlineBuilder)."""
        return _inlines(pieces)

    def content(self, el: _El) -> Inlines:
        """Inline content of an element (fast for an element with no children)."""
        if len(el) == 0:
            return _text_inlines(el.text) if el.text else ()
        return _inlines(_pieces(el))


# --- inline content ---------------------------------------------------------------------------

# Inline events: (_TEXT, str), (_BR,), (_SEP,) a block boundary, (_OPEN, style, href), (_CLOSE,).
_TEXT, _BR, _SEP, _OPEN, _CLOSE = range(5)
_InlineEvent: TypeAlias = tuple[Any, ...]


def _events(pieces: Iterable[_Piece]) -> Iterator[_InlineEvent]:
    """Flatten inline markup into events, iteratively. Block elements inside become _SEP boundaries,
    table cells a space; unknown inline tags give their content only."""
    stack: list[tuple[Iterator[_Piece], _InlineEvent | None]] = [(iter(pieces), None)]
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
        tag = _tag(p)
        if tag == "br":
            yield (_BR,)
        elif tag in ("img", "hr") or not tag:
            continue
        elif tag in _STYLES:
            yield (_OPEN, _STYLES[tag], None)
            stack.append((_pieces(p), (_CLOSE,)))
        elif tag == "a" and p.get("href") is not None:
            yield (_OPEN, None, p.get("href"))
            stack.append((_pieces(p), (_CLOSE,)))
        elif tag in _LINE_TAGS:
            yield (_SEP,)
            stack.append((_pieces(p), (_SEP,)))
        elif tag in _CELL_TAGS:
            yield (_TEXT, " ")
            stack.append((_pieces(p), (_TEXT, " ")))
        else:
            stack.append((_pieces(p), None))


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
        for part in _split_math(text):
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


def _inlines(pieces: Iterable[_Piece]) -> Inlines:
    """Inline content of `pieces`: whitespace collapsed, ends stripped, inline math found."""
    items = list(pieces)
    if all(isinstance(p, str) for p in items):
        return _text_inlines("".join(items))
    return _InlineBuilder().feed(_events(items))


def _text_inlines(text: str) -> Inlines:
    """Inline content of plain text (no markup): the common case, made fast."""
    collapsed = _collapse(text).strip(" ")
    if "$" not in collapsed and "\\" not in collapsed:
        return (Text(collapsed),) if collapsed else ()
    return _InlineBuilder().feed([(_TEXT, text)])


# --- small parsers ----------------------------------------------------------------------------

_NUMBER_JUNK = str.maketrans({c: " " for c in ",;[](){}\"'"})


def _numbers(raw: str) -> list[float] | None:
    """Finite numbers in a box attribute ("1 2 3 4", "1,2,3,4", "[1, 2, 3, 4]"); None if any is not one."""
    out: list[float] = []
    for word in raw.translate(_NUMBER_JUNK).split():
        try:
            v = float(word)
        except ValueError:
            return None
        if not math.isfinite(v):
            return None
        out.append(v)
    return out


def _span(raw: str | None) -> int:
    """colspan/rowspan as an int in 1..1000 (1 when absent or unreadable)."""
    if raw is None:
        return 1
    try:
        v = int(float(raw.strip()))
    except (ValueError, OverflowError):
        return 1
    return min(max(v, 1), 1000)


def _positive_pair(pair: Any) -> bool:
    try:
        a, b = pair
        return all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in (a, b))
    except (TypeError, ValueError):
        return False


def _language(el: _El) -> str | None:
    """A code block's language from class="language-x" / "lang-x" on it or on an inner <code>."""
    for node in (el, next(el.iter("code"), None)):
        if node is None:
            continue
        for word in (node.get("class") or "").split():
            for prefix in ("language-", "lang-"):
                if word.startswith(prefix) and len(word) > len(prefix):
                    return word[len(prefix) :]
    return None


# --- entry point ------------------------------------------------------------------------------


def read_answer(
    raw: str, *, image_size: tuple[int, int] | None = None, page_size: tuple[float, float] | None = None
) -> ReadResult:
    """Read one raw model answer into blocks. Never raises.

    `image_size` is the (width, height) in pixels of the image the model saw; `page_size` the
    (width, height) of the page in its unit. With both, every box is mapped to the page
    (x * page_w / image_w, likewise y, rounded to 2 decimals); otherwise boxes stay in model
    pixels. With `image_size`, boxes are clamped to the image (one warning per page).
    Any internal error gives the answer's visible text as Other blocks and a warning.
    """
    try:
        return _read(raw, image_size, page_size)
    except Exception as exc:  # the reader must never raise: keep the text instead
        return _fallback(raw, exc)


def _read(raw: str, image_size: tuple[int, int] | None, page_size: tuple[float, float] | None) -> ReadResult:
    reader = _Reader(image_size, page_size)
    text = _clean(raw if isinstance(raw, str) else str(raw))
    unwrapped = _unwrap(text)
    if unwrapped.prose.strip():
        reader.warnings.append(
            f"ignored {len(unwrapped.prose.strip())} characters of prose outside the ``` fence "
            f"({_snippet(unwrapped.prose)})"
        )
    html = unwrapped.html
    for token in _SPECIAL_TOKENS:
        html = html.replace(token, "")
    cut = _truncation(_Unwrapped(html, unwrapped.fence_open))
    if cut is not None:
        reader.warnings.append(f"the answer was cut off: {cut}")
    # libxml2 drops whatever follows </html> (or a misplaced </body>); the end tags say nothing
    # the parser does not imply, so they go, and text after them stays in the body.
    html = _DOC_END_TAG.sub("", html)
    if not html.strip():
        reader.warnings.append("the answer is empty")
        return ReadResult((), tuple(reader.warnings), cut is not None, False)
    parsed = _parse(html)
    if not parsed.has_bbox:
        reader.warnings.append(
            "the answer is not QwenVL HTML (no data-bbox anywhere): probably a different prompt; "
            "its text is kept without boxes"
        )
    if parsed.flattened:
        reader.warnings.append(f"markup nested deeper than {_MAX_TREE_DEPTH} levels was flattened to its text")
    blocks = reader.read_tree(parsed.root) if parsed.root is not None else []
    reader._summarise()
    return ReadResult(tuple(blocks), tuple(reader.warnings), cut is not None, parsed.has_bbox)


def _snippet(text: str) -> str:
    s = " ".join(text.split())
    return repr(s if len(s) <= 60 else s[:57] + "...")


class _TextTarget:
    """A parser target that only collects visible text (for the fallback path)."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self._mute = 0

    def start(self, tag: Any, attrib: Any) -> None:
        if self._mute or (isinstance(tag, str) and tag.lower() in _DROPPED):
            self._mute += 1

    def end(self, tag: Any) -> None:
        if self._mute:
            self._mute -= 1

    def data(self, text: Any) -> None:
        if not self._mute and isinstance(text, str):
            self.chunks.append(text)

    def close(self) -> list[str]:
        return self.chunks


def _fallback(raw: Any, exc: Exception) -> ReadResult:
    """The answer's visible text as Other blocks, after an internal error. Never raises."""
    detail = " ".join(str(exc).split())[:200]
    warning = f"the reader failed ({type(exc).__name__}: {detail}); kept the answer's text only"
    try:
        text = _clean(raw if isinstance(raw, str) else str(raw))
    except Exception:
        return ReadResult((), (warning,), False, False)
    try:
        target = _TextTarget()
        parser = lxml.html.HTMLParser(target=target, recover=True, no_network=True, huge_tree=True, encoding="utf-8")
        chunks: list[str] = etree.fromstring(_unwrap(text).html.encode("utf-8"), parser) or []
    except Exception:
        chunks = [text]
    blocks: list[Block] = []
    for chunk in chunks:
        s = " ".join(chunk.split())
        if s:
            blocks.append(Other(content=(Text(s),)))
    truncated = False
    with contextlib.suppress(Exception):
        truncated = _truncation(_unwrap(text)) is not None
    return ReadResult(tuple(blocks), (warning,), truncated, "data-bbox" in text)
