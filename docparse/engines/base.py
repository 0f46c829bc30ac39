"""The engine protocol: page images in, raw model answers (with their generation record) out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from docparse.document import Generation


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    """How one generate call decodes; the default is the engine's greedy decoding as configured.

    `max_new_tokens` and `repetition_penalty` of None keep the engine's own; `temperature` None is
    greedy, a number samples at that temperature with the RNG seeded by `seed` (reproducible on one
    machine and library version). `time_limit` (seconds, None: none) stops the call when exceeded,
    finish reason "time". `stop_on_repetition` stops a sequence caught looping, finish reason
    "repetition"; its batch-mates continue.
    """

    max_new_tokens: int | None = None
    repetition_penalty: float | None = None
    temperature: float | None = None
    seed: int = 0
    time_limit: float | None = None
    stop_on_repetition: bool = True

    def describe(self) -> str:
        """A short human-readable summary, for warnings."""
        parts = []
        if self.repetition_penalty is not None:
            parts.append(f"repetition penalty {self.repetition_penalty:g}")
        parts.append("greedy" if self.temperature is None else f"sampling at temperature {self.temperature:g}")
        if self.max_new_tokens is not None:
            parts.append(f"{self.max_new_tokens} new tokens")
        return ", ".join(parts)


GREEDY = GenerationSettings()


@dataclass(frozen=True, slots=True)
class Answer:
    """One page's raw model output and what it cost."""

    text: str
    generation: Generation


class Engine(Protocol):
    """Anything that answers the QwenVL HTML request for a batch of page images.

    Images arrive already at the size the model must see (multiples of 28 within the pixel
    bounds); an engine must not resize them. Answers come back in the order of the images.
    `settings` change decoding for this call only (the retry ladder of docparse.run.recover uses them).

    `generate` takes any number of images and splits them as it must (an engine that runs out of
    memory splits further rather than fail); it raises EngineError, one line, when it cannot answer.
    `batch_size` is how many pages one call should carry to keep the engine busy, and `concurrency`
    how many calls may run at once from different threads: a local model wants big batches one at a
    time (concurrency 1), a server wants many one-page calls in flight.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def concurrency(self) -> int: ...

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]: ...

    def close(self) -> None: ...
