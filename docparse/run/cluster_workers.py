"""What runs on a Ray cluster's workers for --ray (docparse.run.cluster): a page rendered in a task, an engine actor."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from docparse.config import ConvertOptions
from docparse.engines.base import Answer, Engine
from docparse.errors import DocparseError
from docparse.inputs.rasterize import open_input
from docparse.run.answers import HeldAnswers
from docparse.run.pages import PageResult, PageWork, answer_pages, render_page
from docparse.run.status import unrendered_page

EngineFactory = Callable[[ConvertOptions], Engine]


def render_task(path: str, source: str, options: ConvertOptions, sha: str, number: int) -> tuple[Any, Any]:
    """Ray task: one page rendered on any node. Returns (the finished page or None, its raster record) and
    the PageWork for the model (or None); the second stays in the object store for the actor."""
    try:
        doc = open_input(Path(path), options.raster)  # not hashed again: the driver did, once
    except DocparseError as exc:  # the file is not readable on this node
        return (PageResult(unrendered_page(number, str(exc)), 0, 0.0), None), None
    with doc:
        rendered, info = render_page(doc, options, sha, number)
    if isinstance(rendered, PageWork):
        return (None, info), PageWork(replace(rendered.image, source=source), rendered.prefix)
    return (rendered, info), None


class EngineWorker:
    """Ray actor: one engine, loaded once, answering batches of pages (several calls at once when its
    engine's concurrency allows) with the answers the driver's cache already holds."""

    def __init__(self, options: ConvertOptions, factory: EngineFactory | None) -> None:
        self.options = options
        self.factory = factory
        self.engine: Engine | None = None
        self.lock = threading.Lock()

    def load(self) -> tuple[str, int, int]:
        """Open the engine; its model id, batch size and concurrency (raises ModelUnavailableError)."""
        with self.lock:
            if self.engine is None:
                if self.factory is not None:
                    self.engine = self.factory(self.options)
                else:
                    from docparse.engines.open import open_engine

                    self.engine = open_engine(self.options)
            return self.engine.model_id, self.engine.batch_size, self.engine.concurrency

    def pid(self) -> int:
        return os.getpid()

    def answer(self, held: dict[str, Answer], *work: PageWork) -> tuple[list[PageResult], dict[str, Answer], int, int]:
        """The pages answered, the answers the engine gave (for the driver's cache), and the engine's batch size
        and concurrency now (an engine may halve its batch after running out of memory)."""
        self.load()
        assert self.engine is not None
        store = HeldAnswers(held)
        results = answer_pages(self.engine, work, self.options, store)
        return results, store.new, self.engine.batch_size, self.engine.concurrency

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
