"""The multi-document scheduler: pages of many inputs rendered ahead, batched for the engine, assembled per file.

One producer thread opens the inputs in order and renders their pages into a small, bounded
set of slots (at most `batch_size * (concurrency + 1)` page images exist at once, however many
files and pages the run holds), so the engine never waits for PyMuPDF and memory does not grow
with the page count. The coordinator (the calling thread) gathers the pages that need the model,
from any number of documents, into batches of the engine's `batch_size`, and runs up to its
`concurrency` generate calls at once, each in a thread of its own: a local model gets one big
batch at a time, a server many one-page calls in flight. A batch is sent when it is full, or when
no more pages will come, so the same inputs always make the same batches.

Each page then goes through the retry ladder (docparse.run.recover) in its worker. With a page cache,
every call's answer is stored, and a page whose answers are all cached is rebuilt by the producer
without rendering it and without the model: the engine is loaded only when the first page that
needs it arrives. A document is assembled as soon as its last page is done, handed to `events`
(FileDone), and dropped. Progress is reported through events only; showing it is the caller's job.
Each step is docparse.run.pages' public page API, which the Ray runner (docparse.run.cluster) calls too.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from docparse.config import ConvertOptions
from docparse.engines.base import Engine
from docparse.errors import DocparseError
from docparse.inputs.rasterize import InputDocument
from docparse.run.cache import PageCache, raster_key
from docparse.run.events import Event
from docparse.run.pages import (
    Documents,
    PageResult,
    PageWork,
    answer_pages,
    open_source,
    render_page,
    replay_page,
)

__all__ = ["run_batch"]


class _Slots:
    """A counting semaphore whose size can grow once the engine says how many pages it wants at once."""

    def __init__(self, size: int) -> None:
        self._cv = threading.Condition()
        self._size = size
        self._free = size

    def resize(self, size: int) -> None:
        if size == self._size:
            return
        with self._cv:
            self._free += size - self._size
            self._size = size
            self._cv.notify_all()

    def acquire(self, stop: threading.Event) -> bool:
        """Take a slot; False when `stop` is set while waiting."""
        with self._cv:
            while self._free <= 0:
                if stop.is_set():
                    return False
                self._cv.wait(0.1)
            self._free -= 1
            return True

    def release(self, count: int = 1) -> None:
        with self._cv:
            self._free += count
            self._cv.notify_all()


def run_batch(
    sources: Sequence[Path],
    options: ConvertOptions,
    get_engine: Callable[[], Engine],
    *,
    cache: PageCache | None = None,
    events: Callable[[Event], None] | None = None,
    stop: threading.Event | None = None,
) -> bool:
    """Convert every input; each one's outcome (and progress) arrives through `events`, in this thread.

    An input that cannot be opened is a FileDone with its error, and the rest go on. Setting `stop`
    (from a signal handler or an event callback) ends the run gently: no new page is started, the
    calls in flight finish (and are cached), documents whose pages are all done are still
    assembled, the others come back as interrupted. Returns True when the run was stopped.
    Raises what get_engine raises (e.g. ModelUnavailableError), and any error saving --keep-raw.
    """
    stop = stop or threading.Event()
    halt = threading.Event()  # our own stop: set by `stop`, or when we leave
    gone = threading.Event()  # the coordinator has left: nothing reads the queue any more
    q: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=64)
    slots = _Slots(max(1, options.model.batch_size or 1) * 2)
    pending: list[tuple[int, PageWork]] = []
    engine: Engine | None = None
    model_name = options.model.model
    docs = Documents(options, events or (lambda _event: None), lambda: engine.model_id if engine else None)
    inflight = 0
    producer_done = False

    def put(item: tuple[Any, ...]) -> None:
        while not gone.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if halt.is_set() and item[0] in ("todo", "page"):
                    if item[0] == "todo":
                        slots.release()
                    return

    def produce() -> None:
        try:
            for index, path in enumerate(sources):
                if halt.is_set():
                    break
                started = time.monotonic()
                try:
                    doc, sha = open_source(path, options)
                except DocparseError as exc:
                    put(("failed", index, exc, started))
                    continue
                with doc:
                    put(("open", index, path, sha, doc.page_count, list(doc.page_numbers), started, doc.notes))
                    for number in doc.page_numbers:
                        if halt.is_set():
                            break
                        produce_page(doc, index, path, sha, number)
                put(("end", index))
        except BaseException as exc:  # handed to the coordinator, which raises it
            put(("crash", exc))
        finally:
            put(("producer-done",))

    def produce_page(doc: InputDocument, index: int, path: Path, sha: str, number: int) -> None:
        started = time.monotonic()
        if cache is not None:
            page = replay_page(cache, options, sha, number, str(path), model_name)
            if page is not None:  # not rendered: its text layer is read on its own, for the check
                put(("page", index, PageResult(page, 0, time.monotonic() - started, doc.text_layer(number))))
                return
        if not slots.acquire(halt):
            return
        rendered, info = render_page(doc, options, sha, number)
        if cache is not None and info is not None:
            cache.put_raster(raster_key(options, sha, number), info)
        if isinstance(rendered, PageWork):
            put(("todo", index, rendered))
            return
        slots.release()
        put(("page", index, rendered if info is not None else replace(rendered, seconds=time.monotonic() - started)))

    def work(batch: list[tuple[int, PageWork]], engine: Engine) -> None:
        try:
            results = answer_pages(engine, [w for _, w in batch], options, cache)
            put(("result", [(index, result) for (index, _), result in zip(batch, results, strict=True)]))
        except BaseException as exc:
            put(("crash", exc))
        finally:
            slots.release(len(batch))

    producer = threading.Thread(target=produce, name="docparse-render", daemon=True)
    producer.start()
    try:
        while True:
            if stop.is_set():
                halt.set()
            if halt.is_set() and pending:
                slots.release(len(pending))
                pending.clear()
            if pending and engine is None:
                engine = get_engine()
            if engine is not None:
                # Read each time: an engine may change its batch size (e.g. halved after running out of memory).
                size, parallel = max(1, engine.batch_size), max(1, engine.concurrency)
                slots.resize(size * (parallel + 1))
                while pending and inflight < parallel and (len(pending) >= size or producer_done):
                    batch, pending[:] = pending[:size], pending[size:]
                    inflight += 1
                    threading.Thread(target=work, args=(batch, engine), name="docparse-generate", daemon=True).start()
            if producer_done and inflight == 0 and not pending:
                break
            try:
                item = q.get(timeout=0.2)
            except queue.Empty:
                continue
            kind = item[0]
            if kind == "crash":
                raise item[1]
            if kind == "producer-done":
                producer_done = True
            elif kind == "failed":
                _, index, exc, started = item
                docs.failed(index, str(sources[index]), exc, started)
            elif kind == "open":
                docs.opened(*item[1:])
            elif kind == "end":
                docs.ended(item[1])
            elif kind == "page":
                docs.add(item[1], item[2])
            elif kind == "todo":
                pending.append((item[1], item[2]))
            elif kind == "result":
                inflight -= 1
                for index, result in item[1]:
                    docs.add(index, result)
        stopped = halt.is_set()
        docs.interrupt_all()
    finally:
        halt.set()  # lets the producer end when we leave early (an error, a second Ctrl-C)
        gone.set()
    return stopped
