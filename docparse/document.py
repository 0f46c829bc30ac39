"""The document model in the middle: Document, Page, the closed set of Block and Inline types, and JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, assert_never

SCHEMA_VERSION = "1.3"

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"

Unit = Literal["pt", "px"]
# "retried", "repetition" and "skipped-blank" are set by the engine side (repetition guard, retries, blank
# pages); the assembly never sets a status.
# "fallback-text-layer": the model failed on the page and its blocks came from the PDF's text layer
# (--fallback text-layer, docparse.agreement).
PageStatus = Literal[
    "ok", "retried", "truncated", "repetition", "unstructured", "failed", "skipped-blank", "fallback-text-layer"
]
# "repetition": stopped early on a degenerate loop; "time": stopped by the per-page time budget.
FinishReason = Literal["stop", "length", "repetition", "time"]
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
# Every block keeps its box (None where the model gave none) and the model's raw class name
# ("p", "h2", "div.formula", "div.image caption", ...), its `role` (set by docparse.assemble), and,
# when the assembly merged it from pieces on several pages, `parts`: each piece's page and box, in
# order (the block itself sits on the first piece's page, with the first piece's box). A block that
# was not merged has no parts. Blocks nested in others (a chart's table, a sub-list) carry neither.


@dataclass(frozen=True, slots=True, kw_only=True)
class Heading:
    level: int
    content: Inlines
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Paragraph:
    content: Inlines
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ListItem:
    content: Inlines
    children: tuple[ListBlock, ...] = ()
    box: Box | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListBlock:
    ordered: bool
    items: tuple[ListItem, ...]
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    content: Inlines
    colspan: int = 1
    rowspan: int = 1
    header: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    rows: tuple[tuple[Cell, ...], ...]
    caption: Inlines = ()
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """A picture. `caption` is the caption the model attached; `inner_text` is text it read inside the picture.

    `image` is the picture cropped from the page, once written out (docparse.assets): a path relative
    to the output file, or a `data:image/png;base64,...` URI; None when no crop was made.
    """

    caption: Inlines = ()
    inner_text: Inlines = ()
    image: str | None = None
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Formula:
    """A display formula in LaTeX (delimiters removed); `variant` is e.g. "handwritten" from `formula.handwritten`."""

    latex: str
    variant: str | None = None
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    """A chart with the data table the model read off it (None when it read none); `image` as for Figure."""

    table: Table | None
    caption: Inlines = ()
    image: str | None = None
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Chemistry:
    """A chemical structure as the model's SMILES, byte for byte.

    `valid`: whether RDKit parsed the SMILES (None: not checked, RDKit not installed); `image` as for Figure.
    """

    smiles: str
    valid: bool | None = None
    image: str | None = None
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Music:
    """A music sheet as the model's ABC notation, byte for byte.

    `valid`: whether music21 parsed the ABC into notes (None: not checked); `image` as for Figure.
    """

    abc: str
    valid: bool | None = None
    image: str | None = None
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Code:
    text: str
    language: str | None = None
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Other:
    """Anything the reader does not know, kept with its text rather than dropped."""

    content: Inlines
    box: Box | None = None
    raw_class: str = ""
    role: Role = "body"
    parts: tuple[Part, ...] = ()


Block: TypeAlias = Heading | Paragraph | ListBlock | Table | Figure | Formula | Chart | Chemistry | Music | Code | Other


@dataclass(frozen=True, slots=True, kw_only=True)
class Generation:
    """What the engine reported for one page."""

    model: str
    prompt: str
    tokens_in: int
    tokens_out: int
    seconds: float
    finish_reason: FinishReason


@dataclass(frozen=True, slots=True)
class LayerLine:
    """A line of the PDF's text layer (its text, its box in points on the displayed page)."""

    text: str
    box: Box


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerCheck:
    """The page checked against its PDF text layer (docparse.agreement): the share of the layer's words
    some block holds, the layer lines no block covers, and each block's agreement (0-1, None for a block
    with no text to compare), in the order of the page's blocks."""

    coverage: float
    missing: tuple[LayerLine, ...]
    agreement: tuple[float | None, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page. Boxes are in `unit` on a page `width` x `height` (origin top-left).

    `image_size` is the size in pixels of the image the model saw, where known. `attempts` counts
    the model calls the page took (0 when it was skipped, or rendered from a saved answer);
    `rotation` is the clockwise turn in degrees (0, 90, 180, 270) docparse gave the displayed page
    to make its content upright before the model saw it; boxes are on the page as displayed.
    `layer` is the check against the PDF's text layer; None where the page has no usable layer.
    """

    number: int
    width: float | None
    height: float | None
    unit: Unit
    image_size: tuple[int, int] | None
    blocks: tuple[Block, ...]
    status: PageStatus = "ok"
    warnings: tuple[str, ...] = ()
    generation: Generation | None = None
    attempts: int = 0
    rotation: int = 0
    layer: LayerCheck | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """A whole document: its pages in order, what produced it, and its title where one was found.

    `to_json`/`from_json` are the versioned JSON contract (docparse/schema/document.schema.json).
    """

    source: str
    pages: tuple[Page, ...]
    metadata: Mapping[str, JSONValue] = field(default_factory=dict)
    title: str | None = None
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> str:
        """The document as JSON text (UTF-8, indented, ending in a newline); valid against the shipped schema."""
        return json.dumps(document_to_json(self), ensure_ascii=False, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> Document:
        """A document from JSON text (or its parsed object); SchemaError when it is not a docparse document."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise SchemaError(f"not JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise SchemaError("a docparse document is a JSON object")
        return document_from_json(data)


# --- JSON -----------------------------------------------------------------------------------

_BLOCK_TYPES: dict[str, type[Any]] = {
    "heading": Heading,
    "paragraph": Paragraph,
    "list": ListBlock,
    "table": Table,
    "figure": Figure,
    "formula": Formula,
    "chart": Chart,
    "chemistry": Chemistry,
    "music": Music,
    "code": Code,
    "other": Other,
}
_BLOCK_NAMES = {cls: name for name, cls in _BLOCK_TYPES.items()}


def block_type_name(block: Block) -> str:
    return _BLOCK_NAMES[type(block)]


def inline_to_json(item: Inline) -> dict[str, JSONValue]:
    match item:
        case Text(text):
            return {"type": "text", "text": text}
        case Styled(style, children):
            return {"type": "styled", "style": style, "children": inlines_to_json(children)}
        case Math(latex):
            return {"type": "math", "latex": latex}
        case Link(href, children):
            return {"type": "link", "href": href, "children": inlines_to_json(children)}
        case LineBreak():
            return {"type": "break"}
        case _:
            assert_never(item)


def inlines_to_json(items: Iterable[Inline]) -> list[JSONValue]:
    return [inline_to_json(i) for i in items]


_TOP_LEVEL_ONLY = frozenset({"role", "parts"})


def _encode(value: Any) -> JSONValue:
    """Dataclass fields to JSON values; inline tuples become inline lists.

    Blocks met here are nested in another block (a chart's table, a sub-list): they are written
    without `role` and `parts`, which only top-level blocks carry (see block_to_json).
    """
    if isinstance(value, Box):
        coords: list[JSONValue] = [value.x0, value.y0, value.x1, value.y1]
        return coords
    if isinstance(value, Text | Styled | Math | Link | LineBreak):
        return inline_to_json(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in _TOP_LEVEL_ONLY
        }
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot encode {type(value).__name__}")


PageSizes: TypeAlias = Mapping[int, tuple[float | None, float | None]]


def box_norm(box: Box | None, width: float | None, height: float | None) -> list[JSONValue] | None:
    """The box on a 0-1000 grid of the page (integers, origin top-left); None without a box or a page size.

    Derived when writing JSON, never stored: the box in the page's unit is the one truth.
    """
    if box is None or not width or not height or width <= 0 or height <= 0:
        return None

    def grid(value: float, size: float) -> int:
        ratio = value / size * 1000
        return 0 if ratio != ratio else round(min(1000.0, max(0.0, ratio)))  # NaN -> 0; inf clamped

    return [grid(box.x0, width), grid(box.y0, height), grid(box.x1, width), grid(box.y1, height)]


def block_to_json(
    block: Block, page: Page | None = None, sizes: PageSizes | None = None, agreement: float | None = None
) -> dict[str, JSONValue]:
    """One top-level block. `page` (the page it sits on) and `sizes` (page number -> width, height, for
    the pages its parts came from) give the normalised boxes; without them those are null. `agreement`:
    its agreement with the text layer (None: not checked)."""
    body = _encode(block)
    assert isinstance(body, dict)
    out: dict[str, JSONValue] = {"type": block_type_name(block)}
    out.update(body)
    width, height = (page.width, page.height) if page is not None else (None, None)
    out["box_norm"] = box_norm(block.box, width, height)
    out["role"] = block.role
    sizes = sizes or {}
    out["parts"] = [
        {
            "page": part.page,
            "box": _encode(part.box),
            "box_norm": box_norm(part.box, *sizes.get(part.page, (None, None))),
        }
        for part in block.parts
    ]
    out["text"] = block_text(block)
    out["layer_agreement"] = agreement
    return out


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


def page_to_json(page: Page, sizes: PageSizes | None = None) -> dict[str, JSONValue]:
    return {
        "number": page.number,
        "width": page.width,
        "height": page.height,
        "unit": page.unit,
        "image_size": list(page.image_size) if page.image_size else None,
        "status": page.status,
        "warnings": list(page.warnings),
        "generation": _encode(page.generation),
        "attempts": page.attempts,
        "rotation": page.rotation,
        "layer_coverage": page.layer.coverage if page.layer else None,
        "layer_missing": [{"text": m.text, "box": _encode(m.box)} for m in page.layer.missing] if page.layer else None,
        "blocks": [block_to_json(b, page, sizes, _agreement(page, i)) for i, b in enumerate(page.blocks)],
    }


def _agreement(page: Page, index: int) -> float | None:
    if page.layer is None or index >= len(page.layer.agreement):
        return None
    return page.layer.agreement[index]


def document_to_json(doc: Document) -> dict[str, JSONValue]:
    sizes = {p.number: (p.width, p.height) for p in doc.pages}
    return {
        "schema_version": doc.schema_version,
        "source": doc.source,
        "title": doc.title,
        "metadata": _encode(doc.metadata),
        "pages": [page_to_json(p, sizes) for p in doc.pages],
    }


class SchemaError(ValueError):
    """A JSON document does not follow the docparse schema."""


def _inlines(data: Any) -> Inlines:
    if not isinstance(data, list):
        raise SchemaError("inline content must be a list")
    return tuple(_inline(d) for d in data)


def _inline(d: Any) -> Inline:
    kind = d.get("type") if isinstance(d, dict) else None
    if kind == "text":
        return Text(str(d["text"]))
    if kind == "styled":
        return Styled(d["style"], _inlines(d["children"]))
    if kind == "math":
        return Math(str(d["latex"]))
    if kind == "link":
        return Link(str(d["href"]), _inlines(d["children"]))
    if kind == "break":
        return LineBreak()
    raise SchemaError(f"unknown inline type {kind!r}")


def _box(data: Any) -> Box | None:
    if data is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in data)
    return Box(x0, y0, x1, y1)


def _list_block(d: Mapping[str, Any]) -> ListBlock:
    items = tuple(
        ListItem(
            content=_inlines(i["content"]),
            children=tuple(_list_block(c) for c in i.get("children", [])),
            box=_box(i.get("box")),
        )
        for i in d["items"]
    )
    return ListBlock(ordered=bool(d["ordered"]), items=items, box=_box(d.get("box")), raw_class=d["raw_class"])


def _table(d: Mapping[str, Any]) -> Table:
    rows = tuple(
        tuple(
            Cell(
                content=_inlines(c["content"]),
                colspan=int(c["colspan"]),
                rowspan=int(c["rowspan"]),
                header=bool(c["header"]),
            )
            for c in row
        )
        for row in d["rows"]
    )
    return Table(rows=rows, caption=_inlines(d.get("caption", [])), box=_box(d.get("box")), raw_class=d["raw_class"])


def _role(value: Any) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise SchemaError(f"unknown role {value!r}")


def _parts(data: Any) -> tuple[Part, ...]:
    if not isinstance(data, list):
        raise SchemaError("parts must be a list")
    return tuple(Part(page=int(p["page"]), box=_box(p.get("box"))) for p in data)


def block_from_json(d: Mapping[str, Any]) -> Block:
    """One top-level block; `box_norm` and `text` are derived, so they are not read."""
    block = _block_from_json(d)
    try:
        role, parts = _role(d.get("role", "body")), _parts(d.get("parts", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"bad block: {exc}") from exc
    if role == "body" and not parts:
        return block
    return dataclasses.replace(block, role=role, parts=parts)


def _image(d: Mapping[str, Any]) -> str | None:
    """A block's crop reference (absent in schema 1.1 and earlier)."""
    value = d.get("image")
    return str(value) if value is not None else None


def _flag(d: Mapping[str, Any]) -> bool | None:
    value = d.get("valid")
    return value if isinstance(value, bool) else None


def _block_from_json(d: Mapping[str, Any]) -> Block:
    try:
        kind = d["type"]
        box, raw = _box(d.get("box")), str(d.get("raw_class", ""))
        if kind == "heading":
            return Heading(level=int(d["level"]), content=_inlines(d["content"]), box=box, raw_class=raw)
        if kind == "paragraph":
            return Paragraph(content=_inlines(d["content"]), box=box, raw_class=raw)
        if kind == "other":
            return Other(content=_inlines(d["content"]), box=box, raw_class=raw)
        if kind == "list":
            return _list_block(d)
        if kind == "table":
            return _table(d)
        if kind == "figure":
            return Figure(
                caption=_inlines(d["caption"]),
                inner_text=_inlines(d["inner_text"]),
                image=_image(d),
                box=box,
                raw_class=raw,
            )
        if kind == "formula":
            return Formula(latex=str(d["latex"]), variant=d.get("variant"), box=box, raw_class=raw)
        if kind == "chart":
            table = _table(d["table"]) if d.get("table") else None
            caption = _inlines(d.get("caption", []))
            return Chart(table=table, caption=caption, image=_image(d), box=box, raw_class=raw)
        if kind == "chemistry":
            return Chemistry(smiles=str(d["smiles"]), valid=_flag(d), image=_image(d), box=box, raw_class=raw)
        if kind == "music":
            return Music(abc=str(d["abc"]), valid=_flag(d), image=_image(d), box=box, raw_class=raw)
        if kind == "code":
            return Code(text=str(d["text"]), language=d.get("language"), box=box, raw_class=raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"bad block: {exc}") from exc
    raise SchemaError(f"unknown block type {kind!r}")


def page_from_json(d: Mapping[str, Any]) -> Page:
    gen = d.get("generation")
    size = d.get("image_size")
    return Page(
        number=int(d["number"]),
        width=d.get("width"),
        height=d.get("height"),
        unit=d["unit"],
        image_size=(int(size[0]), int(size[1])) if size else None,
        blocks=tuple(block_from_json(b) for b in d["blocks"]),
        status=d.get("status", "ok"),
        warnings=tuple(d.get("warnings", [])),
        generation=Generation(**gen) if gen else None,
        attempts=int(d.get("attempts", 0)),
        rotation=int(d.get("rotation", 0)),
        layer=_layer_from_json(d),
    )


def _layer_from_json(d: Mapping[str, Any]) -> LayerCheck | None:
    """The page's text-layer check (absent before schema 1.3, null where the page had no usable layer)."""
    coverage = d.get("layer_coverage")
    if coverage is None:
        return None
    missing = tuple(LayerLine(str(m["text"]), _box(m["box"]) or Box(0, 0, 0, 0)) for m in d.get("layer_missing") or [])
    agreement = tuple(None if b.get("layer_agreement") is None else float(b["layer_agreement"]) for b in d["blocks"])
    return LayerCheck(coverage=float(coverage), missing=missing, agreement=agreement)


def document_from_json(d: Mapping[str, Any]) -> Document:
    """Inverse of document_to_json; raises SchemaError on a document of another shape or version."""
    version = d.get("schema_version")
    if not isinstance(version, str) or version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaError(f"unsupported schema_version {version!r} (this docparse reads {SCHEMA_VERSION})")
    title = d.get("title")
    try:
        # An older minor version reads with the newer fields at their defaults, and is written back
        # in the current version.
        return Document(
            source=str(d["source"]),
            pages=tuple(page_from_json(p) for p in d["pages"]),
            metadata=dict(d.get("metadata", {})),
            title=str(title) if title is not None else None,
            schema_version=SCHEMA_VERSION,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"bad document: {exc}") from exc


def iter_blocks(pages: Sequence[Page]) -> Iterable[tuple[Page, Block]]:
    for page in pages:
        for block in page.blocks:
            yield page, block
