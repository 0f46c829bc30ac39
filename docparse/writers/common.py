"""What every writer shares: which image references may reach an output, as URLs."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import PurePosixPath

DATA_URI_PREFIX = "data:image/png;base64,"
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


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
