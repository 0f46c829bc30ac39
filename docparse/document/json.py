"""The JSON form of blocks, inline runs and pages, both ways (the shipped schema describes it)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias, assert_never

from docparse.document.blocks import (
    BLOCK_TYPES,
    ROLES,
    Block,
    BlockType,
    Box,
    Cell,
    Chart,
    Chemistry,
    Code,
    Figure,
    Formula,
    Heading,
    Inline,
    Inlines,
    JSONValue,
    LineBreak,
    Link,
    ListBlock,
    ListItem,
    Math,
    Music,
    Other,
    Paragraph,
    Part,
    Role,
    Styled,
    Table,
    Text,
    block_text,
    block_type_name,
)
from docparse.document.page import (
    Generation,
    LayerCheck,
    LayerLine,
    Page,
)


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


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's fields in JSON order: each class's own, as declared, before those it inherits.

    So a block's content comes first and what every block keeps (docparse.document.blocks.BlockBase:
    box, raw class) last, the order of JSON documents written before blocks shared a base class.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    ordered = (name for klass in cls.__mro__ for name in vars(klass).get("__annotations__", {}))
    return tuple(dict.fromkeys(name for name in ordered if name in names))


def encoded(value: Any) -> JSONValue:
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
            name: encoded(getattr(value, name)) for name in _field_names(type(value)) if name not in _TOP_LEVEL_ONLY
        }
    if isinstance(value, tuple | list):
        return [encoded(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encoded(v) for k, v in value.items()}
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
    body = encoded(block)
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
            "box": encoded(part.box),
            "box_norm": box_norm(part.box, *sizes.get(part.page, (None, None))),
        }
        for part in block.parts
    ]
    out["text"] = block_text(block)
    out["layer_agreement"] = agreement
    return out


def page_to_json(page: Page, sizes: PageSizes | None = None) -> dict[str, JSONValue]:
    return {
        "number": page.number,
        "width": page.width,
        "height": page.height,
        "unit": page.unit,
        "image_size": list(page.image_size) if page.image_size else None,
        "status": page.status,
        "warnings": list(page.warnings),
        "generation": encoded(page.generation),
        "attempts": page.attempts,
        "rotation": page.rotation,
        "layer_coverage": page.layer.coverage if page.layer else None,
        "layer_missing": [{"text": m.text, "box": encoded(m.box)} for m in page.layer.missing] if page.layer else None,
        "blocks": [block_to_json(b, page, sizes, _agreement(page, i)) for i, b in enumerate(page.blocks)],
    }


def _agreement(page: Page, index: int) -> float | None:
    if page.layer is None or index >= len(page.layer.agreement):
        return None
    return page.layer.agreement[index]


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
        known = next((name for name in BLOCK_TYPES if kind == name), None)
        if known is not None:
            return _decode(known, d, box, raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"bad block: {exc}") from exc
    raise SchemaError(f"unknown block type {kind!r}")


def _decode(kind: BlockType, d: Mapping[str, Any], box: Box | None, raw: str) -> Block:
    """One block of a known type, without its role and parts (block_from_json adds them)."""
    match kind:
        case "heading":
            return Heading(level=int(d["level"]), content=_inlines(d["content"]), box=box, raw_class=raw)
        case "paragraph":
            return Paragraph(content=_inlines(d["content"]), box=box, raw_class=raw)
        case "other":
            return Other(content=_inlines(d["content"]), box=box, raw_class=raw)
        case "list":
            return _list_block(d)
        case "table":
            return _table(d)
        case "figure":
            caption, inner_text = _inlines(d["caption"]), _inlines(d["inner_text"])
            return Figure(caption=caption, inner_text=inner_text, image=_image(d), box=box, raw_class=raw)
        case "formula":
            return Formula(latex=str(d["latex"]), variant=d.get("variant"), box=box, raw_class=raw)
        case "chart":
            table = _table(d["table"]) if d.get("table") else None
            caption = _inlines(d.get("caption", []))
            return Chart(table=table, caption=caption, image=_image(d), box=box, raw_class=raw)
        case "chemistry":
            return Chemistry(smiles=str(d["smiles"]), valid=_flag(d), image=_image(d), box=box, raw_class=raw)
        case "music":
            return Music(abc=str(d["abc"]), valid=_flag(d), image=_image(d), box=box, raw_class=raw)
        case "code":
            return Code(text=str(d["text"]), language=d.get("language"), box=box, raw_class=raw)
        case _:
            assert_never(kind)


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
