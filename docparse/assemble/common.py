"""What the assembly steps share: which blocks are prose, their text as the steps compare it, a block given a role."""

from __future__ import annotations

import dataclasses
from typing import TypeAlias, TypeVar, assert_never

from docparse import document as doc
from docparse.document import Block, Heading, Other, Paragraph, Role, plain_text

B = TypeVar("B", bound=Block)

# The blocks of running text, whose text the assembly reads: a title, furniture, a footnote or a
# caption is one of these (headings: only a title or furniture).
Prose: TypeAlias = Heading | Paragraph | Other


def prose(block: Block) -> Prose | None:
    """The block when it is prose, else None; a block type added must be given its case here (mypy names
    this match when one is missing)."""
    match block:
        case doc.Heading() | doc.Paragraph() | doc.Other():
            return block
        case (
            doc.ListBlock()
            | doc.Table()
            | doc.Figure()
            | doc.Formula()
            | doc.Chart()
            | doc.Chemistry()
            | doc.Music()
            | doc.Code()
        ):
            return None
        case _:
            assert_never(block)


def text_of(block: Block) -> str:
    """The text of a prose block, whitespace collapsed; "" for any other block."""
    text = prose(block)
    return " ".join(plain_text(text.content).split()) if text is not None else ""


def with_role(block: B, role: Role) -> B:
    """The block with another role."""
    return dataclasses.replace(block, role=role)
