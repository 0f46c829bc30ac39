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
The threads talk to the coordinator only through a queue of small frozen messages (Message), one class each.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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

__all__ = ["Scheduler", "run_batch"]


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


# --- messages to the coordinator, from the producer thread and the generate threads -------------------


@dataclass(frozen=True, slots=True)
class OpenFailed:
    """Input `index` could not be opened (`started`: time.monotonic() when the producer tried)."""

    index: int
    error: DocparseError
    started: float


@dataclass(frozen=True, slots=True)
class Opened:
    """Input `index` is open: `numbers` are its pages to convert; `notes` warnings about the whole file."""

    index: int
    path: Path
    sha: str
    page_count: int
    numbers: tuple[int, ...]
    started: float
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ended:
    """Every page of input `index` has been handed over."""

    index: int


@dataclass(frozen=True, slots=True)
class Finished:
    """A page of input `index` finished without the model (blank, failed to render, or from the cache)."""

    index: int
    result: PageResult


@dataclass(frozen=True, slots=True)
class Todo:
    """A rendered page of input `index` that needs the model; it holds a slot until its batch is answered."""

    index: int
    work: PageWork


@dataclass(frozen=True, slots=True)
class Answered:
    """A batch the engine answered: each page's input index and result."""

    results: tuple[tuple[int, PageResult], ...]


@dataclass(frozen=True, slots=True)
class Crashed:
    """A thread raised: the coordinator raises it again."""

    error: BaseException


@dataclass(frozen=True, slots=True)
class ProducerDone:
    """The producer has handed over every input (or stopped)."""


Message = OpenFailed | Opened | Ended | Finished | Todo | Answered | Crashed | ProducerDone


class Scheduler:
    """One run of the batch: a producer thread rendering pages ahead, generate threads, and the coordinator
    (the thread that calls `run`) batching pages for the engine and assembling documents."""

    def __init__(
        self, sources: Sequence[Path], options: ConvertOptions, get_engine: Callable[[], Engine],
        cache: PageCache | None, emit: Callable[[Event], None], stop: threading.Event,
    ) -> None:  # fmt: skip
        self.sources = sources
        self.options = options
        self.get_engine = get_engine
        self.cache = cache
        self.stop = stop
        self.halt = threading.Event()  # our own stop: set by `stop`, or when we leave
        self.gone = threading.Event()  # the coordinator has left: nothing reads the queue any more
        self.queue: queue.Queue[Message] = queue.Queue(maxsize=64)
        self.slots = _Slots(max(1, options.model.batch_size or 1) * 2)
        self.pending: list[tuple[int, PageWork]] = []
        self.engine: Engine | None = None
        self.docs = Documents(options, emit, self._model_id)
        self.inflight = 0
        self.producer_done = False

    def _model_id(self) -> str | None:
        return self.engine.model_id if self.engine else None

    def run(self) -> bool:
        """Convert every input (see run_batch); True when the run was stopped."""
        producer = threading.Thread(target=self._produce, name="docparse-render", daemon=True)
        producer.start()
        try:
            while True:
                if self.stop.is_set():
                    self.halt.set()
                if self.halt.is_set() and self.pending:
                    self.slots.release(len(self.pending))
                    self.pending.clear()
                if self.pending and self.engine is None:
                    self.engine = self.get_engine()
                if self.engine is not None:
                    self._dispatch(self.engine)
                if self.producer_done and self.inflight == 0 and not self.pending:
                    break
                try:
                    message = self.queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._receive(message)
            stopped = self.halt.is_set()
            self.docs.interrupt_all()
        finally:
            self.halt.set()  # lets the producer end when we leave early (an error, a second Ctrl-C)
            self.gone.set()
        return stopped

    # --- the coordinator ---------------------------------------------------------------------------

    def _dispatch(self, engine: Engine) -> None:
        """Start generate calls for the pending pages, as many as the engine takes at once."""
        # Read each time: an engine may change its batch size (e.g. halved after running out of memory).
        size, parallel = max(1, engine.batch_size), max(1, engine.concurrency)
        self.slots.resize(size * (parallel + 1))
        pending = self.pending
        while pending and self.inflight < parallel and (len(pending) >= size or self.producer_done):
            batch, pending[:] = pending[:size], pending[size:]
            self.inflight += 1
            threading.Thread(target=self._work, args=(batch, engine), name="docparse-generate", daemon=True).start()

    def _receive(self, message: Message) -> None:
        docs = self.docs
        match message:
            case Crashed(error):
                raise error
            case ProducerDone():
                self.producer_done = True
            case OpenFailed(index, error, started):
                docs.failed(index, str(self.sources[index]), error, started)
            case Opened(index, path, sha, page_count, numbers, started, notes):
                docs.opened(index, path, sha, page_count, list(numbers), started, notes)
            case Ended(index):
                docs.ended(index)
            case Finished(index, result):
                docs.add(index, result)
            case Todo(index, work):
                self.pending.append((index, work))
            case Answered(results):
                self.inflight -= 1
                for index, result in results:
                    docs.add(index, result)

    # --- the producer and generate threads ---------------------------------------------------------

    def _put(self, message: Message) -> None:
        while not self.gone.is_set():
            try:
                self.queue.put(message, timeout=0.1)
                return
            except queue.Full:
                if self.halt.is_set() and isinstance(message, Todo | Finished):
                    if isinstance(message, Todo):
                        self.slots.release()
                    return

    def _produce(self) -> None:
        try:
            for index, path in enumerate(self.sources):
                if self.halt.is_set():
                    break
                started = time.monotonic()
                try:
                    doc, sha = open_source(path, self.options)
                except DocparseError as exc:
                    self._put(OpenFailed(index, exc, started))
                    continue
                with doc:
                    numbers = tuple(doc.page_numbers)
                    self._put(Opened(index, path, sha, doc.page_count, numbers, started, doc.notes))
                    for number in numbers:
                        if self.halt.is_set():
                            break
                        self._produce_page(doc, index, path, sha, number)
                self._put(Ended(index))
        except BaseException as exc:  # handed to the coordinator, which raises it
            self._put(Crashed(exc))
        finally:
            self._put(ProducerDone())

    def _produce_page(self, doc: InputDocument, index: int, path: Path, sha: str, number: int) -> None:
        started = time.monotonic()
        options, cache = self.options, self.cache
        if cache is not None:
            page = replay_page(cache, options, sha, number, str(path), options.model.model)
            if page is not None:  # not rendered: its text layer is read on its own, for the check
                self._put(Finished(index, PageResult(page, 0, time.monotonic() - started, doc.text_layer(number))))
                return
        if not self.slots.acquire(self.halt):
            return
        rendered, info = render_page(doc, options, sha, number)
        if cache is not None and info is not None:
            cache.put_raster(raster_key(options, sha, number), info)
        if isinstance(rendered, PageWork):
            self._put(Todo(index, rendered))
            return
        self.slots.release()
        seconds = time.monotonic() - started
        self._put(Finished(index, rendered if info is not None else replace(rendered, seconds=seconds)))

    def _work(self, batch: list[tuple[int, PageWork]], engine: Engine) -> None:
        try:
            results = answer_pages(engine, [w for _, w in batch], self.options, self.cache)
            self._put(Answered(tuple((index, result) for (index, _), result in zip(batch, results, strict=True))))
        except BaseException as exc:
            self._put(Crashed(exc))
        finally:
            self.slots.release(len(batch))


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
    emit = events or (lambda _event: None)
    return Scheduler(sources, options, get_engine, cache, emit, stop or threading.Event()).run()
