"""What every writer shares: clean text, safe links, which blocks show, and image references as URLs."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import PurePosixPath
from typing import assert_never

from docparse.config import WriteOptions
from docparse.document import Block, Chart, Chemistry, Figure, Music, Pictured

DATA_URI_PREFIX = "data:image/png;base64,"
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

# Text: line ends made `\n`, vertical tab and form feed made spaces, other controls dropped,
# lone surrogates (which no encoder can write) replaced.
_CRLF = re.compile(r"\r\n?")
_SPACE_CONTROLS = re.compile(r"[\x0b\x0c]")
_DROP_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text safe for any output: line ends as `\\n`, control characters and lone surrogates gone."""
    text = _CRLF.sub("\n", text)
    text = _SPACE_CONTROLS.sub(" ", text)
    text = _DROP_CONTROLS.sub("", text)
    return _SURROGATES.sub("\ufffd", text)


# Links: the schemes kept, and what may not stand in a kept href.
_SAFE_HREF = re.compile(r"(?i)(?:https?|mailto):")
_HREF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f]")


def safe_href(href: str) -> str | None:
    """The href if it is an http, https or mailto URL without whitespace or control characters; else None."""
    href = href.strip()
    if not _SAFE_HREF.match(href) or _HREF_FORBIDDEN.search(href) or _SURROGATES.search(href):
        return None
    return href


_NOT_LANGUAGE = re.compile(r"[^\w+#.-]")


def code_language(language: str | None) -> str:
    """A code block's language name reduced to word characters and `+#.-` ("" when none is left)."""
    return _NOT_LANGUAGE.sub("", language or "")


def shown(block: Block, options: WriteOptions) -> bool:
    """Whether a block is shown in Markdown and HTML: furniture only with `keep_furniture`."""
    return block.role != "furniture" or options.keep_furniture


def picture_label(block: Pictured) -> str:
    """What a picture block is called where it has no caption (alt text) or no crop (placeholder)."""
    match block:
        case Figure():
            return "Figure"
        case Chart():
            return "Chart"
        case Chemistry():
            return "Chemical structure"
        case Music():
            return "Music sheet"
        case _:
            assert_never(block)


def image_url(ref: str | None) -> str | None:
    """A block's `image` as a URL a writer may put in src: a PNG data URI, or a relative path under
    a `*_files` folder (percent-encoded). Anything else (absolute, `..`, other schemes, which a
    hand-edited JSON document could hold) gives None."""
    if not ref:
        return None
    if ref.startswith(DATA_URI_PREFIX):
        return ref if _BASE64.fullmatch(ref[len(DATA_URI_PREFIX) :]) else None
    path = PurePosixPath(ref)
    if (
        path.is_absolute()
        or ".." in path.parts
        or ":" in ref
        or "\\" in ref
        or len(path.parts) != 2
        or not path.parts[0].endswith("_files")
        or path.suffix != ".png"
        or any(ord(c) < 32 for c in ref)
    ):
        return None
    return urllib.parse.quote(ref, safe="/")
