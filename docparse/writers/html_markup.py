"""HTML fragments both writers emit: escaping, attributes, inline runs, math and tables (Markdown's spanned tables)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import assert_never

from docparse.document import Box, Cell, Inline, LineBreak, Link, Math, Style, Styled, Table, Text
from docparse.writers.common import clean_text, safe_href
from docparse.writers.notation import NotationError, latex_to_mathml

# The model's text is untrusted. Tag and attribute names are constants of the HTML modules;
# everything that comes from the document goes through `esc` (text and attribute values alike),
# and a link keeps its href only for the schemes common.safe_href allows.


def esc(text: str) -> str:
    """Escape text for an HTML text node or a double-quoted attribute value."""
    return html.escape(clean_text(text), quote=True)


def num(value: float) -> str:
    """A number as HTML shows it: `12` for a whole number, else Python's shortest repr."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def attrs(*pairs: tuple[str, str | None]) -> str:
    """` name="value"` for each pair whose value is not None, the value escaped."""
    return "".join(f' {name}="{esc(value)}"' for name, value in pairs if value is not None)


def _bbox(box: Box | None) -> str | None:
    return None if box is None else " ".join(num(v) for v in box.as_list())


def block_attrs(box: Box | None, raw_class: str, *extra: tuple[str, str | None]) -> str:
    """A block's attributes: `extra`, then its box as data-bbox and the model's class as data-raw-class."""
    return attrs(*extra, ("data-bbox", _bbox(box)), ("data-raw-class", raw_class or None))


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
            return f"<a{attrs(('href', url))}>{inner or esc(url)}</a>"
        case LineBreak():
            return "<br>"
        case _:
            assert_never(item)


# --- tables and math -----------------------------------------------------------------------


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
    spans = attrs(
        ("colspan", str(cell.colspan) if cell.colspan > 1 else None),
        ("rowspan", str(cell.rowspan) if cell.rowspan > 1 else None),
    )
    return f"<{tag}{spans}>{inlines_html(cell.content)}</{tag}>"


def table_html(table: Table, with_box: bool = True) -> str:
    """A table with its spans, <th> header cells and <caption>, one line per row."""
    table_attrs = block_attrs(table.box, table.raw_class) if with_box else ""
    lines = [f"<table{table_attrs}>"]
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
