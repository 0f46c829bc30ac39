"""Document -> one self-contained HTML5 page; every text and attribute value from the model is escaped."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable, Sequence
from pathlib import PurePath
from typing import assert_never

import nh3

from docparse.config import WriteOptions
from docparse.document import (
    Block,
    Box,
    Cell,
    Chart,
    Chemistry,
    Code,
    Document,
    Figure,
    Formula,
    Heading,
    Inline,
    Inlines,
    LineBreak,
    Link,
    ListBlock,
    Math,
    Music,
    Other,
    Page,
    PageStatus,
    Paragraph,
    Style,
    Styled,
    Table,
    Text,
    Unit,
    plain_text,
)
from docparse.layer.agreement import LOW_AGREEMENT, low_blocks
from docparse.writers.common import image_url
from docparse.writers.notation import (
    MATHML_ATTRIBUTES,
    MATHML_TAGS,
    SVG_ATTRIBUTES,
    SVG_TAGS,
    NotationError,
    latex_to_mathml,
    smiles_svg,
)

# The model's text is untrusted. Tag and attribute names below are constants of this module;
# everything that comes from the document goes through `esc` (text and attribute values alike),
# and a link keeps its href only for the schemes in `_SAFE_HREF`.

_CRLF = re.compile(r"\r\n?")
_SPACE_CONTROLS = re.compile(r"[\x0b\x0c]")
_DROP_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_SAFE_HREF = re.compile(r"(?i)(?:https?|mailto):")
_HREF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f]")

_STATUS_NOTES: dict[PageStatus, str] = {
    "ok": "",
    "retried": "the model's first answer looped or was cut off; this page is from a retry.",
    "truncated": "the model's answer was cut off at its token limit; the end of this page may be missing.",
    "repetition": "the model's answer looped; the repeated run was cut to one copy and some content may be missing.",
    "skipped-blank": "this page is blank; it was not sent to the model.",
    "unstructured": "the model's answer could not be read as structured HTML; its text is shown as found.",
    "failed": "this page could not be converted.",
    "fallback-text-layer": "the model failed on this page; its text is the PDF's own text layer, without structure.",
}

# Blocks whose text reads differently from the PDF's text layer (docparse.layer.agreement): marked, with a
# legend, only in a document that has such a block (so other documents' HTML stays as it was).
_LOW_CSS = """
.layer-low{outline:2px solid #cf222e;outline-offset:2px;background:#fff5f5}
.layer-legend{border:1px solid #cf222e;background:#fff5f5;padding:.5rem 1rem;margin:.5rem 0}"""

_CSS = """\
body{font-family:system-ui,sans-serif;line-height:1.5;max-width:52rem;margin:2rem auto;padding:0 1rem}
.page{border-top:1px solid #d0d7de;margin-top:1.5rem;padding-top:.5rem}
table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #8c959f;padding:.25rem .5rem;vertical-align:top}
caption{font-style:italic;padding:.25rem}
figure{margin:1rem 0}
.placeholder{border:2px dashed #8c959f;background:#f6f8fa;padding:.75rem;min-height:4rem;color:#57606a}
.placeholder .label{display:block;font-size:.75rem;text-transform:uppercase;letter-spacing:.05em}
figcaption{font-style:italic;margin-top:.25rem}
.formula{margin:1rem 0;padding:.25rem 0;overflow-x:auto;overflow-y:hidden}
figure img{max-width:100%;height:auto;border:1px solid #d0d7de}
.notation{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
.notation svg{max-width:100%;height:auto;border:1px solid #d0d7de}
.invalid{border:1px solid #cf222e;background:#ffebe9;padding:.25rem .5rem}
pre{background:#f6f8fa;padding:.75rem;overflow-x:auto;white-space:pre-wrap}
.page-status{border:1px solid #d4a72c;background:#fff8c5;padding:.5rem 1rem;margin:.5rem 0}
.other{color:#57606a}
.furniture{color:#57606a;font-size:.85rem}
.footnote{font-size:.85rem}
hr.page-break{border:0;border-top:2px dashed #8c959f;margin:2rem 0}
@media print{hr.page-break{break-after:page;border:0}}"""

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
    """The CSP of a page with online assets: the pinned abcjs file and our one inline script, nothing else."""
    return f"{_CSP}; script-src {ABCJS_URL} '{_script_hash(_ABC_INIT)}'"


def clean_text(text: str) -> str:
    """Text safe for any output: line ends as `\\n`, control characters and lone surrogates gone."""
    text = _CRLF.sub("\n", text)
    text = _SPACE_CONTROLS.sub(" ", text)
    text = _DROP_CONTROLS.sub("", text)
    return _SURROGATES.sub("\ufffd", text)


def esc(text: str) -> str:
    """Escape text for an HTML text node or a double-quoted attribute value."""
    return html.escape(clean_text(text), quote=True)


def safe_href(href: str) -> str | None:
    """The href if it is an http, https or mailto URL without whitespace or control characters; else None."""
    href = href.strip()
    if not _SAFE_HREF.match(href) or _HREF_FORBIDDEN.search(href) or _SURROGATES.search(href):
        return None
    return href


def _num(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _attrs(*pairs: tuple[str, str | None]) -> str:
    return "".join(f' {name}="{esc(value)}"' for name, value in pairs if value is not None)


def _bbox(box: Box | None) -> str | None:
    return None if box is None else " ".join(_num(v) for v in box.as_list())


def _block_attrs(box: Box | None, raw_class: str, *extra: tuple[str, str | None]) -> str:
    return _attrs(*extra, ("data-bbox", _bbox(box)), ("data-raw-class", raw_class or None))


def _with_role(markup: str, block: Block) -> str:
    """A block's markup in a <div> naming its role and, for a merged block, the pages it came from.

    Body blocks that were not merged are left bare.
    """
    pages = " ".join(str(part.page) for part in block.parts) or None
    if block.role == "body" and pages is None:
        return markup
    cls = None if block.role == "body" else block.role
    return f"<div{_attrs(('class', cls), ('data-role', block.role), ('data-pages', pages))}>\n{markup}\n</div>"


# --- inline content -------------------------------------------------------------------------


def _style_tag(style: Style) -> str:
    match style:
        case "bold":
            return "strong"
        case "italic":
            return "em"
        case "underline":
            return "u"
        case "strike":
            return "s"
        case "sub":
            return "sub"
        case "sup":
            return "sup"
        case "code":
            return "code"
        case _:
            assert_never(style)


def inlines_html(items: Iterable[Inline], in_link: bool = False) -> str:
    """Inline content as HTML. Inside a link, nested links keep only their text."""
    return "".join(_inline_html(item, in_link) for item in items)


def _inline_html(item: Inline, in_link: bool) -> str:
    match item:
        case Text(text):
            return esc(text)
        case Styled(style, children):
            tag = _style_tag(style)
            return f"<{tag}>{inlines_html(children, in_link)}</{tag}>"
        case Math(latex):
            return f'<span class="math">{math_html(latex, display=False)}</span>'
        case Link(href, children):
            url = None if in_link else safe_href(href)
            inner = inlines_html(children, in_link=True)
            if url is None:
                return inner
            return f"<a{_attrs(('href', url))}>{inner or esc(url)}</a>"
        case LineBreak():
            return "<br>"
        case _:
            assert_never(item)


# --- blocks ---------------------------------------------------------------------------------


def _pre(text: str) -> str:
    """Text for a <pre>: the parser drops one newline right after <pre>, so a leading one is doubled."""
    body = esc(text)
    return "\n" + body if body.startswith("\n") else body


def _header_rows(rows: Sequence[Sequence[Cell]]) -> int:
    """How many leading rows are all header cells and can form a <thead> (no rowspan reaching below it)."""
    count = 0
    while count < len(rows) - 1 and rows[count] and all(c.header for c in rows[count]):
        count += 1
    if any(i + c.rowspan > count for i in range(count) for c in rows[i]):
        return 0
    return count


def _cell_html(cell: Cell) -> str:
    tag = "th" if cell.header else "td"
    attrs = _attrs(
        ("colspan", str(cell.colspan) if cell.colspan > 1 else None),
        ("rowspan", str(cell.rowspan) if cell.rowspan > 1 else None),
    )
    return f"<{tag}{attrs}>{inlines_html(cell.content)}</{tag}>"


def table_html(table: Table, with_box: bool = True) -> str:
    """A table with its spans, <th> header cells and <caption>, one line per row."""
    attrs = _block_attrs(table.box, table.raw_class) if with_box else ""
    lines = [f"<table{attrs}>"]
    if table.caption:
        lines.append(f"<caption>{inlines_html(table.caption)}</caption>")
    head = _header_rows(table.rows)
    for tag, rows in (("thead", table.rows[:head]), ("tbody", table.rows[head:])):
        if rows:
            lines.append(f"<{tag}>")
            lines.extend("<tr>" + "".join(_cell_html(c) for c in row) + "</tr>" for row in rows)
            lines.append(f"</{tag}>")
    lines.append("</table>")
    return "\n".join(lines)


def math_html(latex: str, display: bool) -> str:
    """MathML with the LaTeX as its annotation; failing that, the LaTeX as text in \\(..\\) or \\[..\\]."""
    try:
        return latex_to_mathml(clean_text(latex), display)
    except NotationError:
        left, right = ("\\[", "\\]") if display else ("\\(", "\\)")
        return f'<code class="latex">{left}{esc(latex)}{right}</code>'


def _picture(image: str | None, alt: Inlines, label: str, inner: str = "", width: int | None = None) -> str:
    """The crop when there is one (alt text: the caption, else the label), else the placeholder box.

    `width` (CSS pixels) shows the crop at the size it has on the page; CSS keeps it within the column.
    """
    url = image_url(image)
    if url is None:
        return _placeholder(label, inner)
    alt_text = " ".join(plain_text(alt).split()) or label
    return f"<img{_attrs(('src', url), ('alt', alt_text), ('width', str(width) if width else None))}>" + inner


def _display_width(box: Box | None, unit: Unit | None) -> int | None:
    """A box's width in CSS pixels: points are 4/3 of a CSS pixel, an image's pixels count one each."""
    if box is None or unit is None or box.x1 <= box.x0:
        return None
    width = (box.x1 - box.x0) * (4 / 3 if unit == "pt" else 1)
    return max(1, min(10_000, round(width)))


def _invalid(checker: str, what: str) -> str:
    return (
        f'<p class="invalid" role="note">{checker} could not read this {what}; it is shown as the model wrote it.</p>'
    )


def _placeholder(label: str, inner: str = "") -> str:
    """The visible box standing in for a picture (docparse keeps no image), with the text read in it."""
    return f'<div class="placeholder"><span class="label">{label}</span>{inner}</div>'


def _list_html(block: ListBlock) -> str:
    tag = "ol" if block.ordered else "ul"
    lines = [f"<{tag}{_block_attrs(block.box, block.raw_class)}>"]
    for item in block.items:
        children = "".join("\n" + _list_html(child) for child in item.children)
        lines.append(f"<li{_block_attrs(item.box, '')}>{inlines_html(item.content)}{children}</li>")
    lines.append(f"</{tag}>")
    return "\n".join(lines)


def block_html(block: Block, unit: Unit | None = None) -> str:
    """One block as HTML, carrying its box as data-bbox and the model's class as data-raw-class.

    `unit` is the page's: with it, a crop is shown at the size its box has on the page.
    """
    width = _display_width(block.box, unit)
    match block:
        case Heading(level=level, content=content):
            n = min(6, max(1, level))
            return f"<h{n}{_block_attrs(block.box, block.raw_class)}>{inlines_html(content)}</h{n}>"
        case Paragraph(content=content):
            return f"<p{_block_attrs(block.box, block.raw_class)}>{inlines_html(content)}</p>"
        case ListBlock():
            return _list_html(block)
        case Table():
            return table_html(block)
        case Figure(caption=caption, inner_text=text, image=image):
            inside = f'<p class="figure-text">{inlines_html(text)}</p>' if text else ""
            parts = [f"<figure{_block_attrs(block.box, block.raw_class, ('class', 'figure'))}>"]
            parts.append(_picture(image, caption or text, "Figure", inside, width))
            if caption:
                parts.append(f"<figcaption>{inlines_html(caption)}</figcaption>")
            parts.append("</figure>")
            return "\n".join(parts)
        case Formula(latex=latex, variant=variant):
            attrs = _block_attrs(block.box, block.raw_class, ("class", "formula"), ("data-variant", variant))
            return f"<div{attrs}>{math_html(latex, display=True)}</div>"
        case Chart(table=table, caption=caption, image=image):
            parts = [f"<figure{_block_attrs(block.box, block.raw_class, ('class', 'chart'))}>"]
            parts.append(_picture(image, caption, "Chart", width=width))
            if table is not None:
                parts.append(table_html(table))
            if caption:
                parts.append(f"<figcaption>{inlines_html(caption)}</figcaption>")
            parts.append("</figure>")
            return "\n".join(parts)
        case Chemistry(smiles=smiles, valid=valid, image=image):
            return _notation_html(
                block,
                "chemistry",
                image,
                width,
                [
                    smiles_svg(smiles) if valid is not False else None,
                    f'<pre class="smiles">{_pre(smiles)}</pre>',
                ],
                _invalid("RDKit", "SMILES") if valid is False else "",
            )
        case Music(abc=abc, valid=valid, image=image):
            return _notation_html(
                block,
                "music",
                image,
                width,
                [f'<pre class="abc">{_pre(abc)}</pre>'],
                _invalid("music21", "ABC notation") if valid is False else "",
            )
        case Code(text=text, language=language):
            lang = re.sub(r"[^\w+#.-]", "", language or "")
            code_attrs = _attrs(("class", f"language-{lang}" if lang else None))
            pre_attrs = _block_attrs(block.box, block.raw_class, ("class", "code"))
            return f"<pre{pre_attrs}><code{code_attrs}>{esc(text)}</code></pre>"
        case Other(content=content):
            attrs = _block_attrs(block.box, block.raw_class, ("class", "other"))
            return f"<div{attrs}>{inlines_html(content)}</div>"
        case _:
            assert_never(block)


def _notation_html(
    block: Chemistry | Music, kind: str, image: str | None, width: int | None, shown: list[str | None], note: str
) -> str:
    """A chemical structure or a music sheet: the crop, then the notation (drawn and as text), then any flag."""
    valid = None if block.valid is None else str(block.valid).lower()
    attrs = _block_attrs(block.box, block.raw_class, ("class", kind), ("data-valid", valid))
    parts = [f"<figure{attrs}>"]
    if image_url(image) is not None:
        parts.append(_picture(image, (), "Chemical structure" if kind == "chemistry" else "Music sheet", width=width))
    parts.append('<div class="notation">' + "".join(s for s in shown if s) + "</div>")
    if note:
        parts.append(note)
    parts.append("</figure>")
    return "\n".join(parts)


# --- pages and the document -----------------------------------------------------------------


def _status_html(page: Page) -> str:
    if page.status == "ok" and not page.warnings:
        return ""
    label = f"Page {page.number}" + ("" if page.status == "ok" else f": {page.status}")
    note = _STATUS_NOTES.get(page.status, "")
    head = f"<strong>{esc(label)}</strong>" + (f" — {esc(note)}" if note else "")
    warnings = "".join(f"<li>{esc(w)}</li>" for w in page.warnings)
    body = f"<p>{head}</p>" + (f"<ul>{warnings}</ul>" if warnings else "")
    return f'<div class="page-status" role="note"{_attrs(("data-status", page.status))}>{body}</div>'


def _page_html(page: Page, options: WriteOptions) -> str:
    attrs = _attrs(
        ("class", "page"),
        ("id", f"page-{page.number}"),
        ("data-page", str(page.number)),
        ("data-width", None if page.width is None else _num(page.width)),
        ("data-height", None if page.height is None else _num(page.height)),
        ("data-unit", page.unit),
    )
    low = set(low_blocks(page))
    shown = [(i, b) for i, b in enumerate(page.blocks) if b.role != "furniture" or options.keep_furniture]
    inner = [_status_html(page), *(_low(_with_role(block_html(b, page.unit), b), page, i, low) for i, b in shown)]
    return "\n".join([f"<section{attrs}>", *(part for part in inner if part), "</section>"])


def _low(markup: str, page: Page, index: int, low: set[int]) -> str:
    """A block's markup, inside a <div class="layer-low"> when it disagrees with the PDF's text layer."""
    if index not in low or page.layer is None:
        return markup
    score = page.layer.agreement[index]
    return f'<div class="layer-low" data-layer-agreement="{score}">\n{markup}\n</div>'


def _legend(doc: Document, options: WriteOptions) -> list[str]:
    """The legend of the low-agreement mark, for a document that shows a marked block; else nothing."""
    shown = (
        i
        for page in doc.pages
        for i in low_blocks(page)
        if page.blocks[i].role != "furniture" or options.keep_furniture
    )
    if next(shown, None) is None:
        return []
    return [
        '<div class="layer-legend" role="note"><p><span class="layer-low">Outlined in red</span>: text that '
        f"reads differently from the PDF's own text layer (agreement below {LOW_AGREEMENT:.2f}); check it "
        "against the page.</p></div>"
    ]


def document_title(doc: Document) -> str:
    """The document's title, else the first heading's text, else the source's file name, else "Document"."""
    if doc.title and doc.title.strip():
        return " ".join(clean_text(doc.title).split())
    for page in doc.pages:
        for block in page.blocks:
            if isinstance(block, Heading):
                title = " ".join(clean_text(plain_text(block.content)).split())
                if title:
                    return title
    return PurePath(doc.source).name or doc.source or "Document"


def _pages_html(doc: Document, options: WriteOptions) -> list[str]:
    """Each page a <section id="page-N">; with `options.page_breaks`, a visible rule between them."""
    out: list[str] = []
    for index, page in enumerate(doc.pages):
        if options.page_breaks and index:
            out.append(f'<hr class="page-break"{_attrs(("data-page", str(page.number)))}>')
        out.append(_page_html(page, options))
    return out


def write_html(doc: Document, options: WriteOptions) -> str:
    """The whole document as one HTML5 page: inline style, no script, no external resource.

    Furniture is left out unless `options.keep_furniture`; footnotes, captions and kept furniture
    sit in a <div> of that class with `data-role`; a merged block's <div> names its pages.
    """
    main_attrs = _attrs(("class", "document"), ("data-source", doc.source), ("data-schema-version", doc.schema_version))
    online = options.online_assets and any(isinstance(b, Music) for p in doc.pages for b in p.blocks)
    scripts = (
        [f'<script src="{ABCJS_URL}" integrity="{ABCJS_INTEGRITY}" crossorigin="anonymous"></script>',
         f"<script>{_ABC_INIT}</script>"]
        if online else []
    )  # fmt: skip
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{online_csp() if online else _CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="docparse">',
        f"<title>{esc(document_title(doc))}</title>",
        f"<style>\n{_CSS}{_LOW_CSS if _legend(doc, options) else ''}\n</style>",
        "</head>",
        "<body>",
        sanitize_body(
            "\n".join([f"<main{main_attrs}>", *_legend(doc, options), *_pages_html(doc, options), "</main>"])
        ),
        *scripts,
        "</body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"
