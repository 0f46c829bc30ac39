"""The lxml parse of one answer: a recovering HTML parse, bounded in depth, head/style/script and the like removed."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import lxml.html
from lxml import etree

from docparse.reader.elements import El, clean

# libxml2 stops a tree at 2048 levels (with huge_tree) and drops the rest of the document; such an
# answer is parsed again into a tree built from parser events, where elements nested deeper than
# this are not built: their text is kept, flattened into the element at this depth.
MAX_TREE_DEPTH = 200
# Never content: their text is dropped when the tree is built.
_DROPPED = frozenset(["head", "title", "meta", "style", "script", "noscript", "template", "link", "base", "object"])
# Void in HTML5 but a container to libxml2, which would nest the rest of the page inside it: the
# tag is removed and what libxml2 put inside it is kept.
_UNWRAPPED = frozenset({"embed"})
# Attributes the reader uses (the event-built tree keeps no others: style, src, ...).
_KEPT_ATTRS = frozenset({"data-bbox", "data-polygon", "class", "colspan", "rowspan", "href", "format"})

# --- building the tree from parser events -----------------------------------------------------


_BUILD_ERRORS = (etree.Error, AssertionError, ValueError, TypeError)


class _TreeTarget:
    """A parser target that builds an lxml tree, bounded in depth, without dropped elements.

    It keeps only the attributes the reader uses, drops the content of head/style/script and the
    like, flattens elements deeper than MAX_TREE_DEPTH into their text, and notes whether any
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
        if self._depth >= MAX_TREE_DEPTH or not name or name in _UNWRAPPED:
            self.flattened = self.flattened or (bool(name) and name not in _UNWRAPPED)
            self._stack.append(("flat", name))
            return
        attrs = {k.lower(): clean(str(v)) for k, v in attrib.items() if k.lower() in _KEPT_ATTRS}
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
                    self._builder.data(clean(text))

    def close(self) -> El | None:
        while self._stack:
            self.end(None)
        try:
            return self._builder.close()
        except _BUILD_ERRORS:
            return None


@dataclass(frozen=True, slots=True)
class Parsed:
    root: El | None  # None when the answer holds no element at all
    has_bbox: bool  # some element carries data-bbox (or data-polygon)
    flattened: bool  # markup deeper than MAX_TREE_DEPTH was flattened into text


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


def _clean_tree(root: El) -> None:
    """Remove characters clean removes from every text, tail and attribute value of the tree."""
    for el in root.iter():
        if el.text and clean(el.text) != el.text:
            el.text = clean(el.text)
        if el.tail and clean(el.tail) != el.tail:
            el.tail = clean(el.tail)
        for key, value in el.attrib.items():
            if clean(value) != value:
                el.set(key, clean(value))


def parse(html: str) -> Parsed:
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
            return Parsed(None, False, False)
        etree.strip_elements(root, *_DROPPED, with_tail=False)
        etree.strip_tags(root, *_UNWRAPPED)
        if "&#" in html:  # a character reference may name a character lxml cannot hold in a tree
            _clean_tree(root)
        has_bbox = bool(root.xpath("boolean(//@data-bbox | //@data-polygon)"))
        return Parsed(root, has_bbox, False)
    target = _TreeTarget()
    try:
        root = etree.fromstring(data, _parser(target))
    except etree.Error:
        root = target.close()
    return Parsed(root, target.has_bbox, target.flattened)


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


def visible_text(html: str) -> list[str]:
    """The text chunks of `html` a reader sees, head/style/script and the like left out (for the fallback path).

    It raises what lxml raises.
    """
    target = _TextTarget()
    parser = lxml.html.HTMLParser(target=target, recover=True, no_network=True, huge_tree=True, encoding="utf-8")
    chunks: list[str] = etree.fromstring(html.encode("utf-8"), parser) or []
    return chunks
