"""A page: what the model was asked and said (blocks in page space), its status, and its text-layer check."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from docparse.document.blocks import Block, Box, Unit

# "retried", "repetition" and "skipped-blank" are set by the engine side (repetition guard, retries, blank
# pages); the assembly never sets a status.
# "fallback-text-layer": the model failed on the page and its blocks came from the PDF's text layer
# (--fallback text-layer, docparse.layer.agreement).
PageStatus = Literal[
    "ok", "retried", "truncated", "repetition", "unstructured", "failed", "skipped-blank", "fallback-text-layer"
]
# "repetition": stopped early on a degenerate loop; "time": stopped by the per-page time budget.
FinishReason = Literal["stop", "length", "repetition", "time"]


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
    """The page checked against its PDF text layer (docparse.layer.agreement): the share of the layer's words
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
    A failed page's `error` (why it has no blocks) is the first of its `warnings`, as the JSON carries it.
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

    @property
    def failed(self) -> bool:
        """The model gave nothing for the page: the engine failed on it, or it could not be rendered."""
        return self.status == "failed"

    @property
    def error(self) -> str | None:
        """Why a failed page has no blocks (None for any other page): its first warning."""
        return self.warnings[0] if self.failed and self.warnings else None


def iter_blocks(pages: Sequence[Page]) -> Iterable[tuple[Page, Block]]:
    for page in pages:
        for block in page.blocks:
            yield page, block
