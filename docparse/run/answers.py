"""Where a page's answers come from: a store (the page cache, or answers a worker was handed) before the engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from PIL import Image

from docparse.engines.base import GREEDY, Answer, Engine, GenerationSettings
from docparse.run.cache import PageCache, answer_key


class CacheMiss(Exception):
    """A page rebuilt from the cache needed an answer the cache does not hold: render it and ask the model."""


class AnswerStore(Protocol):
    """Where answers are looked up before a call and stored after it: a PageCache, or HeldAnswers."""

    def get_answer(self, key: str) -> Answer | None: ...

    def put_answer(self, key: str, answer: Answer) -> None: ...


class HeldAnswers:
    """Answers in memory: those a worker was handed (found in the driver's cache), and `new` ones it made."""

    def __init__(self, held: dict[str, Answer] | None = None) -> None:
        self.held = dict(held or {})
        self.new: dict[str, Answer] = {}

    def get_answer(self, key: str) -> Answer | None:
        return self.new.get(key) or self.held.get(key)

    def put_answer(self, key: str, answer: Answer) -> None:
        self.new[key] = answer


class RecordingStore:
    """A PageCache read through, remembering every answer found (handed to the worker that carries on)."""

    def __init__(self, cache: PageCache, found: dict[str, Answer]) -> None:
        self.cache = cache
        self.found = found

    def get_answer(self, key: str) -> Answer | None:
        answer = self.cache.get_answer(key)
        if answer is not None:
            self.found[key] = answer
        return answer

    def put_answer(self, key: str, answer: Answer) -> None:
        self.cache.put_answer(key, answer)


class PageEngine:
    """The engine as one page's retries see it: answers come from the store where held; new ones are stored.

    With no engine (rebuilding a page from the cache), a missing answer raises CacheMiss.
    `calls` counts the calls that reached the engine.
    """

    def __init__(self, engine: Engine | None, cache: AnswerStore | None, prefix: dict[str, Any], model: str) -> None:
        self.engine = engine
        self.cache = cache
        self.prefix = prefix
        self._model = model
        self.calls = 0

    @property
    def model_id(self) -> str:
        return self.engine.model_id if self.engine is not None else self._model

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size if self.engine is not None else 1

    @property
    def concurrency(self) -> int:
        return self.engine.concurrency if self.engine is not None else 1

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        keys = [answer_key(self.prefix, settings, i, len(images), im.size) for i, im in enumerate(images)]
        if self.cache is not None:
            held = [self.cache.get_answer(k) for k in keys]
            if all(a is not None for a in held):
                return [a for a in held if a is not None]
        if self.engine is None:
            raise CacheMiss
        self.calls += 1
        answers = self.engine.generate(images, settings)
        if self.cache is not None:
            for key, answer in zip(keys, answers, strict=True):
                self.cache.put_answer(key, answer)
        return answers

    def close(self) -> None:
        pass
