"""Document -> one self-contained HTML5 page: the page shell (head, CSS, status notes, legend) around the blocks."""

from __future__ import annotations

from pathlib import PurePath

from docparse.config import WriteOptions
from docparse.document import Document, Heading, Music, Page, PageStatus, plain_text
from docparse.layer.agreement import LOW_AGREEMENT, low_blocks
from docparse.writers.common import clean_text, shown
from docparse.writers.html_blocks import block_html, with_role
from docparse.writers.html_markup import attrs, esc, num
from docparse.writers.html_safety import abcjs_scripts, page_csp, sanitize_body

# Every text and attribute value from the model is escaped (docparse.writers.html_markup), and the
# whole body then passes the allow-list of docparse.writers.html_safety.

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


def _status_html(page: Page) -> str:
    if page.status == "ok" and not page.warnings:
        return ""
    label = f"Page {page.number}" + ("" if page.status == "ok" else f": {page.status}")
    note = _STATUS_NOTES.get(page.status, "")
    head = f"<strong>{esc(label)}</strong>" + (f" — {esc(note)}" if note else "")
    warnings = "".join(f"<li>{esc(w)}</li>" for w in page.warnings)
    body = f"<p>{head}</p>" + (f"<ul>{warnings}</ul>" if warnings else "")
    return f'<div class="page-status" role="note"{attrs(("data-status", page.status))}>{body}</div>'


def _page_html(page: Page, options: WriteOptions) -> str:
    section = attrs(
        ("class", "page"),
        ("id", f"page-{page.number}"),
        ("data-page", str(page.number)),
        ("data-width", None if page.width is None else num(page.width)),
        ("data-height", None if page.height is None else num(page.height)),
        ("data-unit", page.unit),
    )
    low = set(low_blocks(page))
    blocks = [(i, b) for i, b in enumerate(page.blocks) if shown(b, options)]
    inner = [_status_html(page), *(_low(with_role(block_html(b, page.unit), b), page, i, low) for i, b in blocks)]
    return "\n".join([f"<section{section}>", *(part for part in inner if part), "</section>"])


def _low(markup: str, page: Page, index: int, low: set[int]) -> str:
    """A block's markup, inside a <div class="layer-low"> when it disagrees with the PDF's text layer."""
    if index not in low or page.layer is None:
        return markup
    score = page.layer.agreement[index]
    return f'<div class="layer-low" data-layer-agreement="{score}">\n{markup}\n</div>'


def _legend(doc: Document, options: WriteOptions) -> list[str]:
    """The legend of the low-agreement mark, for a document that shows a marked block; else nothing."""
    marked = (i for page in doc.pages for i in low_blocks(page) if shown(page.blocks[i], options))
    if next(marked, None) is None:
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
            out.append(f'<hr class="page-break"{attrs(("data-page", str(page.number)))}>')
        out.append(_page_html(page, options))
    return out


def write_html(doc: Document, options: WriteOptions) -> str:
    """The whole document as one HTML5 page: inline style, no script, no external resource.

    Furniture is left out unless `options.keep_furniture`; footnotes, captions and kept furniture
    sit in a <div> of that class with `data-role`; a merged block's <div> names its pages.
    """
    main_attrs = attrs(("class", "document"), ("data-source", doc.source), ("data-schema-version", doc.schema_version))
    online = options.online_assets and any(isinstance(b, Music) for p in doc.pages for b in p.blocks)
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{page_csp(online)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="docparse">',
        f"<title>{esc(document_title(doc))}</title>",
        f"<style>\n{_CSS}{_LOW_CSS if _legend(doc, options) else ''}\n</style>",
        "</head>",
        "<body>",
        sanitize_body(
            "\n".join([f"<main{main_attrs}>", *_legend(doc, options), *_pages_html(doc, options), "</main>"])
        ),
        *(abcjs_scripts() if online else []),
        "</body>",
        "</html>",
    ]
    return "\n".join(lines) + "\n"
