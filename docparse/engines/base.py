"""The engine protocol: page images in, raw model answers (with their generation record) out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from docparse.document import Generation


@dataclass(frozen=True, slots=True)
class Answer:
    """One page's raw model output and what it cost."""

    text: str
    generation: Generation


class Engine(Protocol):
    """Anything that answers the QwenVL HTML request for a batch of page images.

    Images arrive already at the size the model must see (multiples of 28 within the pixel
    bounds); an engine must not resize them. Answers come back in the order of the images.
    """

    @property
    def model_id(self) -> str: ...

    def generate(self, images: Sequence[Image.Image]) -> list[Answer]: ...

    def close(self) -> None: ...
