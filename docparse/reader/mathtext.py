"""LaTeX in text: inline math found in a run of text, and a display formula's delimiters taken off."""

from __future__ import annotations

import re

from docparse.document import Math

# Inline math: an opener of $$...$$, \(...\) or \[...\] (closed by str.find), or a whole $...$.
_MATH_TOKEN = re.compile(
    r"(?<!\\)(?:\$\$|\\\(|\\\[)"
    r"|(?<![\\$])\$(?=[^\s$])([^$]*)(?<![\s\\])\$(?!\d)"
)
_CLOSERS = {"$$": "$$", "\\(": "\\)", "\\[": "\\]"}


def strip_math_delimiters(latex: str) -> str:
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


def split_math(text: str) -> list[str | Math]:
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
