"""docparse.document.boxes: every box of a block mapped, however deep; the shift and scale maps."""

from __future__ import annotations

from docparse.document import Box, Paragraph, Part, Text
from docparse.document.boxes import map_boxes, scaled, shifted


def test_map_boxes_reaches_the_parts_of_a_merged_block_and_leaves_the_rest() -> None:
    block = Paragraph(content=(Text("a"),), box=Box(1, 2, 3, 4), parts=(Part(1, Box(1, 2, 3, 4)), Part(2, None)))
    moved = map_boxes((block,), lambda b: shifted(b, dy=10))
    assert moved[0].box == Box(1, 12, 3, 14)
    assert moved[0].parts == (Part(1, Box(1, 12, 3, 14)), Part(2, None))
    assert moved[0].content == block.content
    assert map_boxes("no box", lambda b: b) == "no box"


def test_shifted_keeps_a_coordinate_it_does_not_move_and_scaled_rounds_when_asked() -> None:
    assert type(shifted(Box(1, 2, 3, 4), dy=0.5).x0) is int
    assert scaled(Box(1, 1, 3, 3), 1 / 3, 2) == Box(1 / 3, 2, 1.0, 6)
    assert scaled(Box(1, 1, 3, 3), 1 / 3, 2, ndigits=2) == Box(0.33, 2, 1.0, 6)
