"""The closed set of content types: boxes, inline runs and blocks, with their names and plain text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias, assert_never, get_args

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"

Unit = Literal["pt", "px"]
# What a block is to a reader: the text itself, page furniture (running headers and footers, page
# numbers, "continued" captions), a footnote, or a caption standing apart from its table or figure.
Role = Literal["body", "furniture", "footnote", "caption"]
ROLES: tuple[Role, ...] = ("body", "furniture", "footnote", "caption")
Style = Literal["bold", "italic", "underline", "strike", "sub", "sup", "code"]


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box, origin top-left, in the page's unit (PDF points, or pixels)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def as_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]


@dataclass(frozen=True, slots=True)
class Part:
    """Where one piece of a merged block came from: its page number and its box there."""

    page: int
    box: Box | None


# --- inline content -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Styled:
    style: Style
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Math:
    """Inline LaTeX, without its `$` delimiters."""

    latex: str


@dataclass(frozen=True, slots=True)
class Link:
    href: str
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class LineBreak:
    pass


Inline: TypeAlias = Text | Styled | Math | Link | LineBreak
Inlines: TypeAlias = tuple[Inline, ...]


def plain_text(inlines: Iterable[Inline]) -> str:
    """The text a reader sees, inline math kept as `$latex$`."""
    out: list[str] = []
    stack: list[Iterable[Inline]] = [iter(inlines)]
    while stack:
        item = next(stack[-1], None)  # type: ignore[call-overload]
        if item is None:
            stack.pop()
            continue
        match item:
            case Text(text):
                out.append(text)
            case Math(latex):
                out.append(f"${latex}$")
            case LineBreak():
                out.append("\n")
            case Styled(_, children) | Link(_, children):
                stack.append(iter(children))
            case _:
                assert_never(item)
    return "".join(out)


# --- blocks ---------------------------------------------------------------------------------
# Blocks nested in others (a chart's table, a sub-list) carry neither `role` nor `parts`. The JSON
# form writes each class's own fields before the ones it inherits (docparse.document.json), so a
# block's box and raw class come after its content, as they always did.


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockBase:
    """What every block keeps: its box (None where the model gave none), the model's raw class name
    ("p", "h2", "div.formula", "div.image caption", ...), its `role` (set by docparse.assemble), and,
    when the assembly merged it from pieces on several pages, `parts`: each piece's page and box, in
    order (the block itself sits on the first piece's page, with the first piece's box). A block that
    was not merged has no parts."""

    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PicturedBase(BlockBase):
    """A block that is a picture on the page and may carry its crop (docparse.output): `image` is a path
    relative to the output file, or a `data:image/png;base64,...` URI; None when no crop was made."""

    image: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NotationBase(PicturedBase):
    """A picture the model wrote down in a notation; `valid`: whether the notation's checker read it
    (None: not checked, the checker not installed)."""

    valid: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Heading(BlockBase):
    level: int
    content: Inlines


@dataclass(frozen=True, slots=True, kw_only=True)
class Paragraph(BlockBase):
    content: Inlines


@dataclass(frozen=True, slots=True, kw_only=True)
class ListItem:
    content: Inlines
    children: tuple[ListBlock, ...] = ()
    box: Box | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListBlock(BlockBase):
    ordered: bool
    items: tuple[ListItem, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    content: Inlines
    colspan: int = 1
    rowspan: int = 1
    header: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Table(BlockBase):
    rows: tuple[tuple[Cell, ...], ...]
    caption: Inlines = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure(PicturedBase):
    """A picture. `caption` is the caption the model attached; `inner_text` is text it read inside the picture."""

    caption: Inlines = ()
    inner_text: Inlines = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Formula(BlockBase):
    """A display formula in LaTeX (delimiters removed); `variant` is e.g. "handwritten" from `formula.handwritten`."""

    latex: str
    variant: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart(PicturedBase):
    """A chart with the data table the model read off it (None when it read none)."""

    table: Table | None
    caption: Inlines = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Chemistry(NotationBase):
    """A chemical structure as the model's SMILES, byte for byte; `valid`: whether RDKit parsed it."""

    smiles: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Music(NotationBase):
    """A music sheet as the model's ABC notation, byte for byte; `valid`: whether music21 parsed it into notes."""

    abc: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Code(BlockBase):
    text: str
    language: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Other(BlockBase):
    """Anything the reader does not know, kept with its text rather than dropped."""

    content: Inlines


Block: TypeAlias = Heading | Paragraph | ListBlock | Table | Figure | Formula | Chart | Chemistry | Music | Code | Other
# The blocks that are pictures on the page (the subclasses of PicturedBase): they may carry a crop.
Pictured: TypeAlias = Figure | Chart | Chemistry | Music


# The name of each block type in JSON ("type"); block_type_name and docparse.document.json's decoder
# match on these, ending in assert_never, so a type checker names both when a block type is added.
BlockType = Literal[
    "heading", "paragraph", "list", "table", "figure", "formula", "chart", "chemistry", "music", "code", "other"
]
BLOCK_TYPES: tuple[BlockType, ...] = get_args(BlockType)


def block_type_name(block: Block) -> BlockType:
    """The block's type name in JSON, and in crop file names (`p0001-figure1.png`)."""
    match block:
        case Heading():
            return "heading"
        case Paragraph():
            return "paragraph"
        case ListBlock():
            return "list"
        case Table():
            return "table"
        case Figure():
            return "figure"
        case Formula():
            return "formula"
        case Chart():
            return "chart"
        case Chemistry():
            return "chemistry"
        case Music():
            return "music"
        case Code():
            return "code"
        case Other():
            return "other"
        case _:
            assert_never(block)


def block_text(block: Block) -> str:
    """Plain text of a block, for search and for JSON consumers that want no structure."""
    match block:
        case Heading(content=c) | Paragraph(content=c) | Other(content=c):
            return plain_text(c)
        case ListBlock():
            return "\n".join(_list_lines(block))
        case Table():
            return _table_text(block)
        case Figure(caption=cap, inner_text=txt):
            return "\n".join(t for t in (plain_text(txt), plain_text(cap)) if t)
        case Formula(latex=latex):
            return latex
        case Chart(table=table, caption=cap):
            return "\n".join(t for t in (_table_text(table) if table else "", plain_text(cap)) if t)
        case Chemistry(smiles=smiles):
            return smiles
        case Music(abc=abc):
            return abc
        case Code(text=text):
            return text
        case _:
            assert_never(block)


def _list_lines(block: ListBlock) -> list[str]:
    lines: list[str] = []
    for item in block.items:
        lines.append(plain_text(item.content))
        for child in item.children:
            lines.extend(_list_lines(child))
    return lines


def _table_text(table: Table) -> str:
    return "\n".join("\t".join(plain_text(c.content) for c in row) for row in table.rows)
