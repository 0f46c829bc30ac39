"""Document -> GitHub Flavored Markdown, with the model's text escaped so it never turns into markup."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal, assert_never

from docparse.config import WriteOptions
from docparse.document import (
    Block,
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
    Paragraph,
    Pictured,
    Style,
    Styled,
    Table,
    Text,
    plain_text,
)
from docparse.writers.common import clean_text, code_language, image_url, picture_label, safe_href, shown
from docparse.writers.html_markup import table_html

# Where inline content goes: "block" (paragraphs, list items: may span lines), "line" (a heading:
# one line), "cell" (a pipe-table cell: one line, `|` escaped even in code and math).
Mode = Literal["block", "line", "cell"]

# Characters that are Markdown wherever they stand. `#`, `>`, `+`, `-`, `=` and `1.` only
# matter at the start of a line, which `_guard_line` handles.
_ACTIVE = re.compile(r"([\\`*_\[\]<~$|])")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_ORDERED_MARKER = re.compile(r"\d+(?=[.)])")
# In LaTeX math a space changes nothing; in Markdown it keeps `<x` from opening HTML or an
# autolink, `](` from making a link or image, `]:` from defining a link target.
_MATH_GUARD = re.compile(r"(<(?=\S)|\](?=[(:]))")
_BACKTICKS = re.compile(r"`+")
_BLOCK_START = re.compile(r"[ \t]*(?:[>#*+=_~:|<`-]|\d+[.)])")
# Stands for a hard line break until the block's lines are known (clean_text removes NUL from text).
_HARD_BREAK = "\x00"
_EDGES = re.compile(r"([\s\x00]*)([^\s\x00](?:.*[^\s\x00])?)([\s\x00]*)", re.DOTALL)
_URL_SAFE = "%:/?#[]@!$&'*+,;=-._~"


@dataclass(frozen=True, slots=True)
class _Ctx:
    mode: Mode
    in_link: bool = False


_BLOCK = _Ctx("block")
_LINE = _Ctx("line")
_CELL = _Ctx("cell")


# --- inline content -------------------------------------------------------------------------


def _escape(text: str, ctx: _Ctx) -> str:
    text = _ACTIVE.sub(r"\\\1", clean_text(text))
    text = _ENTITY.sub(r"\\&", text)
    if ctx.mode == "block":
        return re.sub(r"[ \t]*\n\s*", "\n", text)
    return re.sub(r"\s*\n\s*", " ", text)


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", clean_text(text))


def _code_span(text: str, ctx: _Ctx) -> str:
    text = _one_line(text)
    if not text:
        return ""
    if ctx.mode == "cell":
        text = text.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = text[0] == "`" or text[-1] == "`" or (text[0] == text[-1] == " " and text.strip() != "")
    return f"{fence} {text} {fence}" if pad else f"{fence}{text}{fence}"


def _latex(latex: str) -> str:
    """LaTeX as written, but for spaces that change no math (`< x`, `] (`, `] :`) and backticks escaped.

    Math goes out unescaped, so these keep it from making HTML, links, images, link targets or
    code spans in a renderer that knows no math (a stray backtick would pair with a code span's
    fence and set that span's raw text free).
    """
    return _MATH_GUARD.sub(r"\1 ", clean_text(latex)).replace("`", "\\`")


def _inline_math(latex: str, ctx: _Ctx) -> str:
    text = _latex(_one_line(latex)).strip()
    if not text:
        return ""
    return "$" + (text.replace("|", "\\|") if ctx.mode == "cell" else text) + "$"


def _delimit(inner: str, mark: str, tag: str, whole_line: bool = False) -> str:
    """Wrap in `mark` where CommonMark surely reads it as emphasis, else (or with no mark) in <tag>.

    Inside a line that holds only when both inner edges are alphanumeric (whatever stands around);
    around a whole paragraph, any edge but the mark's own character will do. Edge whitespace goes
    outside, so that no tag ever stands alone on a line (there it would open a raw HTML block).
    """
    match = _EDGES.fullmatch(inner)
    if match is None:
        return inner
    lead, core, trail = match.groups()
    alnum_edges = core[0].isalnum() and core[-1].isalnum()
    if mark and (alnum_edges or (whole_line and mark[0] not in (core[0], core[-1]))):
        return f"{lead}{mark}{core}{mark}{trail}"
    return f"{lead}<{tag}>{core}</{tag}>{trail}"


def _styled(style: Style, children: Inlines, ctx: _Ctx) -> str:
    match style:
        case "code":
            return _code_span(plain_text(children), ctx)
        case "bold":
            return _delimit(_inlines(children, ctx), "**", "strong")
        case "italic":
            return _delimit(_inlines(children, ctx), "*", "em")
        case "strike":
            return _delimit(_inlines(children, ctx), "~~", "del")
        case "underline" | "sub" | "sup":
            return _delimit(_inlines(children, ctx), "", "u" if style == "underline" else style)
        case _:
            assert_never(style)


def _url(url: str) -> str:
    return urllib.parse.quote(clean_text(url), safe=_URL_SAFE)


def _inline(item: Inline, ctx: _Ctx) -> str:
    match item:
        case Text(text):
            return _escape(text, ctx)
        case Styled(style, children):
            return _styled(style, children, ctx)
        case Math(latex):
            return _inline_math(latex, ctx)
        case Link(href, children):
            url = None if ctx.in_link else safe_href(href)
            inner = _inlines(children, replace(ctx, in_link=True))
            if url is None:
                return inner
            return f"[{inner if inner.strip() else _escape(url, ctx)}]({_url(url)})"
        case LineBreak():
            match ctx.mode:
                case "block":
                    return _HARD_BREAK + "\n"
                case "line":
                    return " "
                case "cell":
                    return "<br>"
                case _:
                    assert_never(ctx.mode)
        case _:
            assert_never(item)


def _inlines(items: Iterable[Inline], ctx: _Ctx) -> str:
    return "".join(_inline(item, ctx) for item in items)


def _guard_line(line: str) -> str:
    """Strip a line and escape what would make it a heading, quote, list item, rule or setext underline."""
    line = line.strip(" \t")
    marker = _ORDERED_MARKER.match(line)
    if marker:
        return line[: marker.end()] + "\\" + line[marker.end() :]
    if line[:1] in ("#", ">", "+", "-", "="):
        return "\\" + line
    return line


def _text_block(items: Iterable[Inline]) -> str:
    """Inline content as one paragraph's lines: no blank line, no stray block syntax, hard breaks `\\`."""
    raw = [_guard_line(line) for line in _inlines(items, _BLOCK).split("\n")]
    lines = [line for line in raw if line.replace(_HARD_BREAK, "").strip()]
    out: list[str] = []
    for i, line in enumerate(lines):
        body = line.rstrip(_HARD_BREAK + " \t")
        if line.endswith(_HARD_BREAK) and i < len(lines) - 1:
            body += "\\"
        out.append(body.replace(_HARD_BREAK, ""))
    return "\n".join(out)


def _emphasised(items: Inlines) -> str:
    """A caption: its paragraph in italics."""
    return _delimit(_text_block(items), "*", "em", whole_line=True)


# --- blocks ---------------------------------------------------------------------------------


def _display_math(latex: str) -> str:
    """`$$`, the LaTeX, `$$`: no blank line inside, and a line that would start a block (`= b`, `- c`)
    indented four spaces, which a paragraph's continuation line ignores and so does math."""
    lines = [line for line in _latex(latex).split("\n") if line.strip()]
    if not lines:
        return ""
    body = "\n".join("    " + line.lstrip(" \t") if _BLOCK_START.match(line) else line for line in lines)
    return f"$$\n{body}\n$$"


def _fenced(text: str, info: str) -> str:
    text = clean_text(text)
    fence = "`" * max(3, max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    body = text if not text or text.endswith("\n") else text + "\n"
    return f"{fence}{info}\n{body}{fence}"


def _image(block: Pictured, alt: Inlines) -> str:
    """`![alt](url)` for the block's crop, alt text the caption's plain text (or the block's label); "" without one."""
    url = image_url(block.image)
    if url is None:
        return ""
    text = " ".join(clean_text(plain_text(alt)).split()) or picture_label(block)
    return f"![{_escape(text, _LINE)}]({url})"


def _is_grid(table: Table) -> bool:
    """A table GFM can hold: at least one cell, every row as wide as the first, no span."""
    rows = table.rows
    return (
        bool(rows)
        and len(rows[0]) > 0
        and all(len(row) == len(rows[0]) for row in rows)
        and all(cell.colspan == 1 and cell.rowspan == 1 for row in rows for cell in row)
    )


def _table(table: Table) -> str:
    if not table.rows:
        return _emphasised(table.caption) if table.caption else ""
    if not _is_grid(table):
        # An HTML block ends at a blank line, so the table must have none.
        return re.sub(r"\n\s*\n", "\n", table_html(table, with_box=False))
    lines = ["| " + " | ".join(_inlines(c.content, _CELL).strip() for c in row) + " |" for row in table.rows]
    lines.insert(1, "|" + "|".join(" --- " for _ in table.rows[0]) + "|")
    grid = "\n".join(lines)
    return f"{_emphasised(table.caption)}\n\n{grid}" if table.caption else grid


def _list(block: ListBlock, alternate: bool) -> list[str]:
    """The list's lines; `alternate` picks the other marker (`*`, `1)`) so two lists in a row stay two."""
    lines: list[str] = []
    for number, item in enumerate(block.items, 1):
        bullet = "*" if alternate else "-"
        marker = f"{number}{')' if alternate else '.'}" if block.ordered else bullet
        indent = " " * (len(marker) + 1)
        first, *rest = _text_block(item.content).split("\n")
        lines.append(f"{marker} {first}".rstrip())
        lines.extend(indent + line for line in rest)
        lines.extend(indent + line for line in _blocks(item.children).split("\n") if line)
    return lines


def _heading(block: Heading) -> str:
    text = _inlines(block.content, _LINE).strip()
    if not text:
        return ""
    if text.endswith("#"):  # would be read as a closing sequence and dropped
        text = text[:-1] + "\\#"
    return "#" * min(6, max(1, block.level)) + " " + text


def _join(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part)


def block_markdown(block: Block, alternate_list: bool = False) -> str:
    """One block as Markdown ("" when it shows nothing); `alternate_list` is for a list right after a list."""
    match block:
        case Heading():
            return _heading(block)
        case Paragraph(content=content) | Other(content=content):
            return _text_block(content)
        case ListBlock():
            return "\n".join(_list(block, alternate_list))
        case Table():
            return _table(block)
        case Figure(caption=caption, inner_text=text):
            picture = _image(block, caption or text) or "<!-- figure -->"
            return _join(picture, _text_block(text), _emphasised(caption))
        case Formula(latex=latex):
            return _display_math(latex)
        case Chart(table=table, caption=caption):
            picture = _image(block, caption) or "<!-- chart -->"
            return _join(picture, _table(table) if table else "", _emphasised(caption))
        case Chemistry(smiles=smiles, valid=valid):
            note = "<!-- RDKit could not read this SMILES -->" if valid is False else ""
            return _join(_image(block, ()), _fenced(smiles, "smiles"), note)
        case Music(abc=abc, valid=valid):
            note = "<!-- music21 could not read this ABC notation -->" if valid is False else ""
            return _join(_image(block, ()), _fenced(abc, "abc"), note)
        case Code(text=text, language=language):
            return _fenced(text, code_language(language))
        case _:
            assert_never(block)


def _blocks(blocks: Iterable[Block]) -> str:
    """Blocks apart by one blank line. A list right after a list of its kind (ordered or not) takes
    the other marker, or Markdown would read the two as one."""
    parts: list[str] = []
    previous: Block | None = None
    alternate = False
    for block in blocks:
        other = (
            isinstance(block, ListBlock)
            and isinstance(previous, ListBlock)
            and previous.ordered == block.ordered
            and not alternate
        )
        text = block_markdown(block, other)
        if text:
            parts.append(text)
            previous, alternate = block, other
    return "\n\n".join(parts)


def write_markdown(doc: Document, options: WriteOptions) -> str:
    """The document as GFM: blocks and pages apart by one blank line, ending in one newline ("" if empty).

    Furniture is left out unless `options.keep_furniture`; with `options.page_markers` each page
    starts with a `<!-- page N -->` comment (a block merged across pages shows at its first page).
    """
    if not options.page_markers:
        text = _blocks(block for page in doc.pages for block in page.blocks if shown(block, options))
        return text + "\n" if text else ""
    parts = []
    for page in doc.pages:
        body = _blocks(block for block in page.blocks if shown(block, options))
        parts.append(_join(f"<!-- page {page.number} -->", body))
    text = "\n\n".join(parts)
    return text + "\n" if text else ""
