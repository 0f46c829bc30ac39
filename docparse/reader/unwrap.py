"""The HTML of one raw answer: the Markdown fence, the model's special tokens and the signs of a cut-off answer."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE_HTML = re.compile(r"```[ \t]*html\b", re.IGNORECASE)
_FENCE_BARE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*(?=\r?\n|<|$)")
_DOC_END_TAG = re.compile(r"</[ \t\r\n]*(?:html|body)[ \t\r\n]*>", re.IGNORECASE)
_SPECIAL_TOKENS = ("<|im_end|>", "<|endoftext|>")


@dataclass(slots=True)
class Unwrapped:
    html: str
    fence_open: bool = False  # a fence opened and never closed
    prose: str = ""  # text outside the fence


def unwrap(text: str) -> Unwrapped:
    """The HTML inside a Markdown code fence (```html preferred, else a bare ```), or all of it.

    Text before and after the fence is returned as `prose`; a fence never closed sets
    `fence_open`. A lone ``` after markup (a closing fence with no opening) is removed.
    """
    m = _FENCE_HTML.search(text)
    if m is None:
        m = _FENCE_BARE.search(text)
        if m is None:
            return Unwrapped(text)
        if "<" in text[: m.start()] and "```" not in text[m.end() :]:
            # markup, then a lone fence: a closing fence without its opening one
            return Unwrapped(text[: m.start()] + text[m.end() :])
    start = m.end()
    end = text.find("```", start)
    inside = text[start:] if end < 0 else text[start:end]
    if end < 0:
        return Unwrapped(inside, fence_open=True, prose=text[: m.start()])
    return Unwrapped(inside, prose=text[: m.start()] + "\n" + text[end + 3 :])


def _ends_inside_tag(html: str) -> bool:
    """True when the text ends in a tag that never closes (`<p data-bb`), judged from its tail."""
    lt = html.rfind("<")
    if lt < 0 or lt < html.rfind(">"):
        return False
    nxt = html[lt + 1 : lt + 2]
    return nxt.isalpha() or nxt in ("/", "!")


def truncation(unwrapped: Unwrapped) -> str | None:
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


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer ready to parse: `html` without its fence, special tokens and </body>/</html> tags;
    `prose` the text outside the fence; `cut` why it looks cut off (None when it looks complete)."""

    html: str
    prose: str
    cut: str | None


def answer_html(text: str) -> Answer:
    """The HTML to parse out of one (cleaned) answer, with what was left around it."""
    unwrapped = unwrap(text)
    html = unwrapped.html
    for token in _SPECIAL_TOKENS:
        html = html.replace(token, "")
    cut = truncation(Unwrapped(html, unwrapped.fence_open))
    # libxml2 drops whatever follows </html> (or a misplaced </body>); the end tags say nothing
    # the parser does not imply, so they go, and text after them stays in the body.
    return Answer(_DOC_END_TAG.sub("", html), unwrapped.prose, cut)
