"""One block as HTML: headings, paragraphs, lists, figures with their crops, formulas, notation, code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import assert_never

from docparse.document import (
    Block,
    Box,
    Chart,
    Chemistry,
    Code,
    Figure,
    Formula,
    Heading,
    Inlines,
    ListBlock,
    Music,
    Other,
    Paragraph,
    Pictured,
    Table,
    Unit,
    block_type_name,
    plain_text,
)
from docparse.writers.common import code_language, image_url, picture_label
from docparse.writers.html_markup import attrs, block_attrs, esc, inlines_html, math_html, table_html
from docparse.writers.notation import smiles_svg


def with_role(markup: str, block: Block) -> str:
    """A block's markup in a <div> naming its role and, for a merged block, the pages it came from.

    Body blocks that were not merged are left bare.
    """
    pages = " ".join(str(part.page) for part in block.parts) or None
    if block.role == "body" and pages is None:
        return markup
    cls = None if block.role == "body" else block.role
    return f"<div{attrs(('class', cls), ('data-role', block.role), ('data-pages', pages))}>\n{markup}\n</div>"


def _pre(text: str) -> str:
    """Text for a <pre>: the parser drops one newline right after <pre>, so a leading one is doubled."""
    body = esc(text)
    return "\n" + body if body.startswith("\n") else body


def _picture(block: Pictured, alt: Inlines, inner: str = "", width: int | None = None) -> str:
    """The block's crop when it has one (alt text: the caption, else its label), else the placeholder box.

    `width` (CSS pixels) shows the crop at the size it has on the page; CSS keeps it within the column.
    """
    url, label = image_url(block.image), picture_label(block)
    if url is None:
        return _placeholder(label, inner)
    alt_text = " ".join(plain_text(alt).split()) or label
    return f"<img{attrs(('src', url), ('alt', alt_text), ('width', str(width) if width else None))}>" + inner


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
    lines = [f"<{tag}{block_attrs(block.box, block.raw_class)}>"]
    for item in block.items:
        children = "".join("\n" + _list_html(child) for child in item.children)
        lines.append(f"<li{block_attrs(item.box, '')}>{inlines_html(item.content)}{children}</li>")
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
            return f"<h{n}{block_attrs(block.box, block.raw_class)}>{inlines_html(content)}</h{n}>"
        case Paragraph(content=content):
            return f"<p{block_attrs(block.box, block.raw_class)}>{inlines_html(content)}</p>"
        case ListBlock():
            return _list_html(block)
        case Table():
            return table_html(block)
        case Figure(caption=caption, inner_text=text):
            inside = f'<p class="figure-text">{inlines_html(text)}</p>' if text else ""
            picture = _picture(block, caption or text, inside, width)
            return _figure(block, (picture, _figcaption(caption)), ("class", "figure"))
        case Formula(latex=latex, variant=variant):
            formula_attrs = block_attrs(block.box, block.raw_class, ("class", "formula"), ("data-variant", variant))
            return f"<div{formula_attrs}>{math_html(latex, display=True)}</div>"
        case Chart(table=table, caption=caption):
            picture = _picture(block, caption, width=width)
            table_markup = table_html(table) if table is not None else ""
            return _figure(block, (picture, table_markup, _figcaption(caption)), ("class", "chart"))
        case Chemistry(smiles=smiles, valid=valid):
            drawn = smiles_svg(smiles) if valid is not False else None
            shown = [drawn, f'<pre class="smiles">{_pre(smiles)}</pre>']
            note = _invalid("RDKit", "SMILES") if valid is False else ""
            return _notation_html(block, width, shown, note)
        case Music(abc=abc, valid=valid):
            note = _invalid("music21", "ABC notation") if valid is False else ""
            return _notation_html(block, width, [f'<pre class="abc">{_pre(abc)}</pre>'], note)
        case Code(text=text, language=language):
            lang = code_language(language)
            code_attrs = attrs(("class", f"language-{lang}" if lang else None))
            pre_attrs = block_attrs(block.box, block.raw_class, ("class", "code"))
            return f"<pre{pre_attrs}><code{code_attrs}>{esc(text)}</code></pre>"
        case Other(content=content):
            other_attrs = block_attrs(block.box, block.raw_class, ("class", "other"))
            return f"<div{other_attrs}>{inlines_html(content)}</div>"
        case _:
            assert_never(block)


def _figcaption(caption: Inlines) -> str:
    return f"<figcaption>{inlines_html(caption)}</figcaption>" if caption else ""


def _figure(block: Pictured, parts: Iterable[str], *extra: tuple[str, str | None]) -> str:
    """A <figure> with the block's attributes (`extra` first) around its parts that are not empty, one a line."""
    return "\n".join(
        [f"<figure{block_attrs(block.box, block.raw_class, *extra)}>", *(p for p in parts if p), "</figure>"]
    )


def _notation_html(block: Chemistry | Music, width: int | None, shown: list[str | None], note: str) -> str:
    """A chemical structure or a music sheet: the crop, then the notation (drawn and as text), then any flag.

    Its class is its type name ("chemistry", "music"); without a crop it shows no placeholder.
    """
    valid = None if block.valid is None else str(block.valid).lower()
    picture = _picture(block, (), width=width) if image_url(block.image) is not None else ""
    notation = '<div class="notation">' + "".join(s for s in shown if s) + "</div>"
    return _figure(block, (picture, notation, note), ("class", block_type_name(block)), ("data-valid", valid))
