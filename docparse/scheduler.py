"""The multi-document scheduler: pages of many inputs rendered ahead, batched for the engine, assembled per file.

One producer thread opens the inputs in order and renders their pages into a small, bounded
set of slots (at most `batch_size * (concurrency + 1)` page images exist at once, however many
files and pages the run holds), so the engine never waits for PyMuPDF and memory does not grow
with the page count. The coordinator (the calling thread) gathers the pages that need the model,
from any number of documents, into batches of the engine's `batch_size`, and runs up to its
`concurrency` generate calls at once, each in a thread of its own: a local model gets one big
batch at a time, a server many one-page calls in flight. A batch is sent when it is full, or when
no more pages will come, so the same inputs always make the same batches.

Each page then goes through the retry ladder (docparse.recover) in its worker. With a page cache,
every call's answer is stored, and a page whose answers are all cached is rebuilt by the producer
without rendering it and without the model: the engine is loaded only when the first page that
needs it arrives. A document is assembled as soon as its last page is done, handed to `events`
(FileDone), and dropped. Progress is reported through events only; showing it is the caller's job.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from docparse.agreement import check_document, fallback_page
from docparse.assemble import assemble
from docparse.cache import PageCache, RasterInfo, answer_key, page_prefix, raster_key
from docparse.config import ConvertOptions
from docparse.document import Document, Page
from docparse.engines.base import GREEDY, Answer, Engine, GenerationSettings
from docparse.errors import DocparseError, EngineError, InputError
from docparse.files import sha256_file
from docparse.pipeline import BLANK_WARNING, PageDone, document_metadata, empty_page, page_from_answer, page_from_bands
from docparse.rasterize import InputDocument, PageImage, open_input
from docparse.tallpage import is_tall
from docparse.textlayer import TextLayer


@dataclass(frozen=True, slots=True)
class FileStarted:
    """Event: input `index` (0-based, in the order given) opened; `pages` of it will be converted."""

    index: int
    source: str
    pages: int
    warnings: tuple[str, ...] = ()  # about the file as a whole (e.g. pages --pages asks for that it lacks)


@dataclass(frozen=True, slots=True)
class FileDone:
    """Event: input `index` is finished: `document` assembled, or `error` (it could not be opened), or
    `interrupted` (the run stopped before its last page). `seconds` from its opening to now."""

    index: int
    source: str
    document: Document | None
    error: DocparseError | None
    seconds: float
    interrupted: bool = False


Event = FileStarted | PageDone | FileDone


class CacheMiss(Exception):
    """A page rebuilt from the cache needed an answer the cache does not hold: render it and ask the model."""


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


class _PageEngine:
    """The engine as one page's retries see it: answers come from the cache where held; new ones are stored.

    With no engine (rebuilding a page from the cache), a missing answer raises CacheMiss.
    `calls` counts the calls that reached the engine.
    """

    def __init__(self, engine: Engine | None, cache: PageCache | None, prefix: dict[str, Any], model: str) -> None:
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


@dataclass(slots=True)
class _Doc:
    index: int
    path: Path
    sha256: str
    page_count: int
    numbers: list[int]
    started: float
    notes: tuple[str, ...] = ()
    pages: dict[int, Page] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    layers: dict[int, TextLayer | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Outcome:
    page: Page
    model_calls: int
    seconds: float


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
    emit = events or (lambda _event: None)
    first_try = GenerationSettings(time_limit=options.page_timeout)
    q: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=64)
    slots = _Slots(max(1, options.model.batch_size or 1) * 2)
    docs: dict[int, _Doc] = {}
    listed: set[int] = set()  # documents whose pages the producer has all handed over
    pending: list[tuple[int, PageImage, dict[str, Any]]] = []
    engine: Engine | None = None
    model_name = options.model.model
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
                    doc = open_input(path, options.raster)
                except DocparseError as exc:
                    put(("failed", index, exc, started))
                    continue
                with doc:
                    try:
                        sha = sha256_file(path)
                    except OSError as exc:  # gone or unreadable since it was opened
                        put(("failed", index, InputError(f"{path}: cannot read ({exc.strerror or exc})"), started))
                        continue
                    put(("open", _Doc(index, path, sha, doc.page_count, list(doc.page_numbers), started, doc.notes)))
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
            page = _replay(cache, options, first_try, sha, number, str(path), model_name)
            if page is not None:
                put(("layer", index, number, doc.text_layer(number)))  # not rendered: read on its own
                put(("page", index, _Outcome(page, 0, time.monotonic() - started)))
                return
        if not slots.acquire(halt):
            return
        try:
            image = doc.render(number)
        except InputError as exc:
            slots.release()
            failed = Page(number=number, width=None, height=None, unit="pt", image_size=None, blocks=(),
                          status="failed", warnings=(str(exc),))  # fmt: skip
            put(("layer", index, number, doc.text_layer(number)))  # --fallback may still have its text
            put(("page", index, _Outcome(failed, 0, time.monotonic() - started)))
            return
        put(("layer", index, number, image.layer))
        if cache is not None:
            cache.put_raster(raster_key(options, sha, number), _raster_info(image))
        if image.blank:
            slots.release()
            put(("page", index, _Outcome(empty_page(image, "skipped-blank", BLANK_WARNING, 0), 0, 0.0)))
            return
        put(("todo", index, image, page_prefix(options, sha, number, image.turn)))

    def work(batch: list[tuple[int, PageImage, dict[str, Any]]], engine: Engine) -> None:
        released = 0
        try:
            outcomes: list[tuple[int, _Outcome]] = []
            start = time.perf_counter()
            wrappers = [_PageEngine(engine, cache, prefix, engine.model_id) for _, _, prefix in batch]
            keys = [answer_key(prefix, first_try, 0, 1, img.image.size) for _, img, prefix in batch]
            tall = {k for k, (_, img, _) in enumerate(batch) if is_tall(img.image.size)}  # read in bands below
            answers: list[Answer | None] = [cache.get_answer(k) if cache else None for k in keys]
            missing = [k for k, a in enumerate(answers) if a is None and k not in tall]
            failure: EngineError | None = None
            if missing:
                try:
                    fresh = engine.generate([batch[k][1].image for k in missing], first_try)
                except EngineError as exc:
                    failure = exc
                else:
                    for k, new in zip(missing, fresh, strict=True):
                        answers[k] = new
                        wrappers[k].calls += 1
                        if cache is not None:
                            cache.put_answer(keys[k], new)
            spent = time.perf_counter() - start
            for k, (index, image, _) in enumerate(batch):
                got = answers[k]
                if k in tall:
                    own = time.perf_counter()
                    try:
                        page = page_from_bands(wrappers[k], image, options)
                    except EngineError as exc:
                        page = empty_page(image, "failed", str(exc), 1)
                    outcome = _Outcome(page, wrappers[k].calls, time.perf_counter() - own)
                elif got is None:
                    outcome = _Outcome(empty_page(image, "failed", str(failure), 1), 1, spent)
                else:
                    own = time.perf_counter()
                    page = page_from_answer(wrappers[k], image, got, options, spent)
                    outcome = _Outcome(page, wrappers[k].calls, spent + time.perf_counter() - own)
                outcomes.append((index, outcome))
                slots.release()
                released += 1
            put(("result", outcomes))
        except BaseException as exc:
            slots.release(len(batch) - released)
            put(("crash", exc))

    def finish(index: int, interrupted: bool = False) -> None:
        doc = docs.pop(index)
        seconds = time.monotonic() - doc.started
        if interrupted:
            emit(FileDone(index, str(doc.path), None, None, seconds, interrupted=True))
            return
        pages = tuple(doc.pages[n] for n in doc.numbers)
        if options.layer.fallback:
            pages = tuple(fallback_page(p, doc.layers.get(p.number)) for p in pages)
        model = engine.model_id if engine is not None else min(doc.models, default=model_name)
        metadata = document_metadata(doc.sha256, options, doc.page_count, model)
        document = Document(source=str(doc.path), pages=pages, metadata=metadata)
        checked = check_document(assemble(document, options.assemble), doc.layers, snap=options.layer.snap_boxes)
        emit(FileDone(index, str(doc.path), checked, None, seconds))

    def complete(index: int) -> bool:
        return index in listed and len(docs[index].pages) == len(docs[index].numbers)

    def record(index: int, outcome: _Outcome) -> None:
        doc = docs[index]
        page = outcome.page
        doc.pages[page.number] = page
        if page.generation is not None:
            doc.models.add(page.generation.model)
        cached = outcome.model_calls == 0 and page.generation is not None
        emit(PageDone(str(doc.path), len(doc.pages), len(doc.numbers), page, cached, outcome.seconds,
                      outcome.model_calls))  # fmt: skip
        if complete(index):
            finish(index)

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
                emit(FileDone(index, str(sources[index]), None, exc, time.monotonic() - started))
            elif kind == "open":
                doc = item[1]
                docs[doc.index] = doc
                emit(FileStarted(doc.index, str(doc.path), len(doc.numbers), doc.notes))
            elif kind == "end":
                listed.add(item[1])
                if complete(item[1]):
                    finish(item[1])
            elif kind == "layer":
                docs[item[1]].layers[item[2]] = item[3]
            elif kind == "page":
                record(item[1], item[2])
            elif kind == "todo":
                pending.append((item[1], item[2], item[3]))
            elif kind == "result":
                inflight -= 1
                for index, outcome in item[1]:
                    record(index, outcome)
        stopped = halt.is_set()
        for index in sorted(docs):
            finish(index, interrupted=True)
    finally:
        halt.set()  # lets the producer end when we leave early (an error, a second Ctrl-C)
        gone.set()
    return stopped


def _raster_info(image: PageImage) -> RasterInfo:
    return RasterInfo(
        width=image.width,
        height=image.height,
        unit=image.unit,
        image_size=image.image.size,
        rotation=image.rotation,
        turn=image.turn,
        has_text=image.has_text,
        blank=image.blank,
        notes=image.notes,
    )


def _replay(
    cache: PageCache,
    options: ConvertOptions,
    first_try: GenerationSettings,
    sha: str,
    number: int,
    source: str,
    model: str,
) -> Page | None:
    """The page rebuilt from cached answers alone, without rendering it; None when anything is missing."""
    info = cache.get_raster(raster_key(options, sha, number))
    if info is None:
        return None
    # Stands in for the raster: only its size is read (answers are keyed by page and size, not pixels).
    placeholder = Image.new("L", info.image_size)
    image = PageImage(source, number, placeholder, info.width, info.height, info.unit, info.rotation,
                      turn=info.turn, has_text=info.has_text, blank=info.blank, notes=info.notes)  # fmt: skip
    if info.blank:
        return empty_page(image, "skipped-blank", BLANK_WARNING, 0)
    prefix = page_prefix(options, sha, number, info.turn)
    if is_tall(info.image_size):
        try:
            return page_from_bands(_PageEngine(None, cache, prefix, model), image, options)
        except CacheMiss:
            return None
    first = cache.get_answer(answer_key(prefix, first_try, 0, 1, info.image_size))
    if first is None:
        return None
    try:
        return page_from_answer(_PageEngine(None, cache, prefix, model), image, first, options, 0.0)
    except CacheMiss:
        return None
