"""The HTML writer's last line of defence: the nh3 allow-list pass over the body, and the page's CSP."""

from __future__ import annotations

import base64
import hashlib
import re

import nh3

from docparse.writers.common import image_url, safe_href
from docparse.writers.notation import MATHML_ATTRIBUTES, MATHML_TAGS, SVG_ATTRIBUTES, SVG_TAGS

# The allow-list of the final sanitiser pass: exactly the tags and attributes this writer emits.
# Anything else (script, iframe, object, embed, form, meta, base, style, on* handlers, style
# attributes, links other than http/https/mailto, images other than our crops, MathML or SVG
# elements outside docparse.writers.notation's allow-lists) is dropped by nh3 (ammonia) even if a later
# edit of this module let model text through unescaped.
_ALLOWED_TAGS = frozenset(
    {
        "main", "section", "div", "span", "p", "strong", "em", "u", "s", "sub", "sup", "code", "pre", "br", "a",
        "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li",
        "table", "caption", "thead", "tbody", "tr", "th", "td", "figure", "figcaption", "hr", "img",
    }
) | MATHML_TAGS | SVG_TAGS  # fmt: skip
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"class", "id", "role"},
    "a": {"href"},
    "img": {"src", "alt", "width"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
    **{tag: set(MATHML_ATTRIBUTES) for tag in MATHML_TAGS},
    **{tag: set(SVG_ATTRIBUTES) for tag in SVG_TAGS},
}
# data: is let through the URL check only for <img src>, and only as a PNG (see _attribute_filter).
_URL_SCHEMES = frozenset({"http", "https", "mailto", "data"})
# Elements whose content is dropped with them, not kept as text. MathML and SVG are allowed (from
# the allow-lists of docparse.writers.notation), but never what can run script or load content inside them.
_DROP_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "foreignObject", "foreignobject"}
)


_NOTATION_TAGS = MATHML_TAGS | SVG_TAGS | {t.lower() for t in SVG_TAGS}


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """The last word on URLs: links are http(s)/mailto, images are our crops (a PNG data URI or a
    relative `*_files/...png` path); everything else with a URL-like value in SVG/MathML is dropped."""
    if tag == "a" and attribute == "href":
        return safe_href(value)
    if tag == "img" and attribute == "src":
        return value if image_url(value) is not None else None
    if attribute == "src":
        return None
    if tag in _NOTATION_TAGS and ("(" in value or "javascript" in value.lower()):
        return None
    return value


# A <pre> start tag as the sanitiser serialises it (attribute values double-quoted).
_PRE_START_NEWLINE = re.compile(r'(<pre(?:\s+[\w:-]+(?:="[^"]*")?)*>)\n')


def sanitize_body(body: str) -> str:
    """The body markup passed through the nh3 allow-list (tags, attributes, data-* and URL schemes).

    Parsing drops the newline right after <pre> and the serialiser does not put it back, so a
    <pre> whose text starts with a newline gets its doubled newline again (see `_pre`).
    """
    clean = nh3.clean(
        body,
        tags=set(_ALLOWED_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        generic_attribute_prefixes={"data-"},
        url_schemes=set(_URL_SCHEMES),
        link_rel=None,
        strip_comments=True,
    )
    return _PRE_START_NEWLINE.sub("\\1\n\n", clean)


# No script, no external resource, whatever a later edit lets through; images only from the
# crops folder beside the page or data URIs.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"

# --online-assets: abcjs (MIT) from jsDelivr, pinned and checked by its SHA-384 (that of
# dist/abcjs-basic-min.js in the npm package abcjs@6.4.4), draws each ABC block as notation.
ABCJS_VERSION = "6.4.4"
ABCJS_URL = f"https://cdn.jsdelivr.net/npm/abcjs@{ABCJS_VERSION}/dist/abcjs-basic-min.js"
ABCJS_INTEGRITY = "sha384-sk+P5M5THZ2+cNNE7wQUEAwkU+812jPeru2bG637mOeCRxiCbs2hD05PdpeqFhjh"
_ABC_INIT = (
    'document.querySelectorAll("pre.abc").forEach(function (pre) {'
    ' var out = document.createElement("div"); out.className = "abc-notation";'
    " pre.parentNode.insertBefore(out, pre);"
    ' try { ABCJS.renderAbc(out, pre.textContent, {responsive: "resize"}); } catch (e) { out.remove(); } });'
)


def _script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def online_csp() -> str:
    """The _CSP of a page with online assets: the pinned abcjs file and our one inline script, nothing else."""
    return f"{_CSP}; script-src {ABCJS_URL} '{_script_hash(_ABC_INIT)}'"


def page_csp(online: bool) -> str:
    """The page's Content-Security-Policy: no script at all, or (`online`) only the abcjs file and its starter."""
    return online_csp() if online else _CSP


def abcjs_scripts() -> list[str]:
    """The <script> elements that draw ABC blocks with the pinned abcjs (--online-assets)."""
    return [
        f'<script src="{ABCJS_URL}" integrity="{ABCJS_INTEGRITY}" crossorigin="anonymous"></script>',
        f"<script>{_ABC_INIT}</script>",
    ]
