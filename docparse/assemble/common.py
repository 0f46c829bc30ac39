"""What the assembly steps share: a block's text as they compare it, and a block given a role."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from docparse.document import Block, Heading, Other, Paragraph, Role, plain_text

B = TypeVar("B", bound=Block)


def text_of(block: Block) -> str:
    """The text of a heading, paragraph or unclassified block, whitespace collapsed; "" for any other block."""
    if isinstance(block, Heading | Paragraph | Other):
        return " ".join(plain_text(block.content).split())
    return ""


def with_role(block: B, role: Role) -> B:
    """The block with another role."""
    return dataclasses.replace(block, role=role)
