"""One block's text against the layer tokens near it: how each block type is compared, the match, the score.

See docparse.layer.agreement for the rules; a block type added is given its way of comparison in `comparison`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal, assert_never

from docparse import document as doc
from docparse.document import Block, block_text, plain_text
from docparse.layer.textnorm import formula_chars, tokens

# How a block is compared with the layer: "text", its tokens (Dice); "formula", its characters (Dice);
# "caption", a picture scored on its caption (precision) and holding every token under it; "none",
# nothing to compare.
Compared = Literal["text", "formula", "caption", "none"]


def comparison(block: Block) -> tuple[Compared, str]:
    """How the block is compared with the layer, and the text compared; a block type added must be given
    its case here (mypy names this match when one is missing)."""
    match block:
        case doc.Heading() | doc.Paragraph() | doc.ListBlock() | doc.Table() | doc.Code() | doc.Other():
            return "text", block_text(block)
        case doc.Formula(latex=latex):
            return "formula", latex
        # A picture's data table and the text read inside it come off the drawing, which the layer may not
        # hold (a raster, a plot): only its caption is a witness's matter.
        case doc.Figure(caption=caption) | doc.Chart(caption=caption):
            return "caption", plain_text(caption)
        case doc.Chemistry() | doc.Music():  # SMILES and ABC: nothing in a text layer to compare them with
            return "none", ""
        case _:
            assert_never(block)


def match_layer(compared: Compared, text: str, layer: Sequence[str]) -> tuple[int, list[int]]:
    """(the size of the block's `text` in comparison units, the positions of the `layer` tokens it matches)."""
    if compared == "none":
        return 0, []
    matched: list[int] = []
    if compared == "formula":
        mine: Counter[str] = Counter(formula_chars(text))
        size = sum(mine.values())
        for i, value in enumerate(layer):
            chars = Counter(formula_chars(value))
            if chars and all(mine[c] >= n for c, n in chars.items()):
                mine.subtract(chars)
                matched.append(i)
        return size, matched
    bag = Counter(tokens(text))
    size = sum(bag.values())
    for i, value in enumerate(layer):
        if bag[value] > 0:
            bag[value] -= 1
            matched.append(i)
    return size, matched


def weight(compared: Compared, layer: Sequence[str]) -> int:
    """The size of layer tokens in the block's comparison units (characters for a formula, else tokens)."""
    if compared == "formula":
        return sum(len(formula_chars(value)) for value in layer)
    return len(layer)


def score(compared: Compared, size: int, hit: int, free: int) -> float | None:
    """Agreement from the size of the block's text, of the layer tokens it matched (`hit`), and of the layer
    under it that no other block matched (`free`): Dice for text, precision for a picture's caption."""
    if compared == "none":
        return None
    if compared == "caption":
        return round(hit / size, 3) if size else None
    total = size + free
    return round(2 * hit / total, 3) if total else None
