"""One page's way through docparse, public: open an input, render a page, answer pages, assemble a document.

Every batch runner calls these: the local scheduler (docparse.run.scheduler) in its threads, the Ray
runner (docparse.run.cluster) in tasks and actors across a cluster. A page is rendered (`render_page`:
a finished Page when it is blank or cannot be rendered, else a PageWork that needs the model), or
rebuilt from the page cache without rendering (`replay_page`); pages that need the model are
answered in batches (`answer_pages`: the engine's call, then the retry ladder of docparse.run.recover),
their answers read from and stored in an AnswerStore (the PageCache, or the answers a remote
worker was handed); `Documents` keeps each document's pages and assembles it when its last one is in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from docparse.assemble import assemble
from docparse.config import ConvertOptions
from docparse.document import Document, JSONValue, Page
from docparse.engines.base import Answer, Engine
from docparse.errors import DocparseError, EngineError, InputError
from docparse.files import sha256_file
from docparse.inputs.rasterize import InputDocument, PageImage, open_input
from docparse.inputs.tallpage import is_tall
from docparse.inputs.textlayer import TextLayer
from docparse.layer.agreement import check_document, fallback_page
from docparse.run.answers import AnswerStore, CacheMiss, PageEngine, RecordingStore
from docparse.run.build import first_try, page_from_answer, page_from_bands
from docparse.run.cache import PageCache, RasterInfo, answer_key, page_prefix, raster_key, request_settings
from docparse.run.events import Event, FileDone, FileStarted, PageDone
from docparse.run.status import blank_page, failed_page, unrendered_page
from docparse.version import __version__


@dataclass(frozen=True, slots=True)
class PageWork:
    """A rendered page that needs the model, with the part of its answers' cache keys the page fixes."""

    image: PageImage
    prefix: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PageResult:
    """A finished page, the calls it made to the engine (retries included), its seconds in the run, and the
    PDF page's own text layer (docparse.inputs.textlayer; None for an image) that the assembled document is checked
    against (docparse.layer.agreement)."""

    page: Page
    model_calls: int
    seconds: float
    layer: TextLayer | None = None


def first_key(prefix: dict[str, Any], options: ConvertOptions, image_size: tuple[int, int]) -> str:
    """The cache key of a page's first answer (`prefix`: docparse.run.cache.page_prefix)."""
    return answer_key(prefix, first_try(options), 0, 1, image_size)


def open_source(path: Path, options: ConvertOptions) -> tuple[InputDocument, str]:
    """The input opened (its page selection checked) and its SHA-256; raises UsageError / InputError."""
    doc = open_input(path, options.raster)
    try:
        return doc, sha256_file(path)
    except OSError as exc:  # gone or unreadable since it was opened
        doc.close()
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def raster_info(image: PageImage) -> RasterInfo:
    """What the page cache keeps of a rendered page (enough to rebuild it from cached answers)."""
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


def render_page(
    doc: InputDocument, options: ConvertOptions, sha: str, number: int
) -> tuple[PageResult | PageWork, RasterInfo | None]:
    """Render one page: a finished page when it cannot be rendered (failed; its text layer is still read, for
    --fallback) or is blank (never sent to the model), else the PageWork for the model; with what the cache
    should keep of the raster (None: failed). A finished page's seconds are 0: the caller knows its own."""
    try:
        image = doc.render(number)
    except InputError as exc:
        return PageResult(unrendered_page(number, str(exc)), 0, 0.0, doc.text_layer(number)), None
    if image.blank:
        return PageResult(blank_page(image), 0, 0.0, image.layer), raster_info(image)
    return PageWork(image, page_prefix(options, sha, number, image.turn)), raster_info(image)


def replay_page(
    cache: PageCache, options: ConvertOptions, sha: str, number: int, source: str, model: str,
    found: dict[str, Answer] | None = None,
) -> Page | None:  # fmt: skip
    """The page rebuilt from cached answers alone, without rendering it; None when anything is missing.
    `found` collects the answers the cache held on the way (for a worker that then asks the model)."""
    info = cache.get_raster(raster_key(options, sha, number))
    if info is None:
        return None
    # Stands in for the raster: only its size is read (answers are keyed by page and size, not pixels).
    placeholder = Image.new("L", info.image_size)
    image = PageImage(source, number, placeholder, info.width, info.height, info.unit, info.rotation,
                      turn=info.turn, has_text=info.has_text, blank=info.blank, notes=info.notes)  # fmt: skip
    if info.blank:
        return blank_page(image)
    store: AnswerStore = cache if found is None else RecordingStore(cache, found)
    prefix = page_prefix(options, sha, number, info.turn)
    if is_tall(info.image_size):
        try:
            return page_from_bands(PageEngine(None, store, prefix, model), image, options)
        except CacheMiss:
            return None
    first = store.get_answer(first_key(prefix, options, info.image_size))
    if first is None:
        return None
    try:
        return page_from_answer(PageEngine(None, store, prefix, model), image, first, options, 0.0)
    except CacheMiss:
        return None


def answer_pages(
    engine: Engine, work: Sequence[PageWork], options: ConvertOptions, cache: AnswerStore | None
) -> list[PageResult]:
    """Answer a batch of pages: one engine call for the first answers the store lacks, then each page read
    and sent through the retry ladder. A call the engine fails on makes those pages failed, not an error.
    Raises what saving --keep-raw raises (UsageError)."""
    settings = first_try(options)
    start = time.perf_counter()
    wrappers = [PageEngine(engine, cache, w.prefix, engine.model_id) for w in work]
    keys = [first_key(w.prefix, options, w.image.image.size) for w in work]
    tall = {k for k, w in enumerate(work) if is_tall(w.image.image.size)}  # read in bands below
    answers: list[Answer | None] = [cache.get_answer(k) if cache else None for k in keys]
    missing = [k for k, a in enumerate(answers) if a is None and k not in tall]
    failure: EngineError | None = None
    if missing:
        try:
            fresh = engine.generate([work[k].image.image for k in missing], settings)
        except EngineError as exc:
            failure = exc
        else:
            for k, new in zip(missing, fresh, strict=True):
                answers[k] = new
                wrappers[k].calls += 1
                if cache is not None:
                    cache.put_answer(keys[k], new)
    spent = time.perf_counter() - start
    results = []
    for k, w in enumerate(work):
        got = answers[k]
        layer = w.image.layer
        if k in tall:
            own = time.perf_counter()
            try:
                page = page_from_bands(wrappers[k], w.image, options)
            except EngineError as exc:
                page = failed_page(w.image, str(exc))
            results.append(PageResult(page, wrappers[k].calls, time.perf_counter() - own, layer))
        elif got is None:
            results.append(PageResult(failed_page(w.image, str(failure)), 1, spent, layer))
        else:
            own = time.perf_counter()
            page = page_from_answer(wrappers[k], w.image, got, options, spent)
            results.append(PageResult(page, wrappers[k].calls, spent + time.perf_counter() - own, layer))
    return results


def engine_settings(options: ConvertOptions) -> dict[str, JSONValue]:
    """The engine and its weight format, where they are not the transformers engine in the checkpoint's dtype."""
    m = options.model
    settings: dict[str, JSONValue] = {} if options.engine == "transformers" else {"engine": options.engine}
    if options.engine == "llamacpp":
        settings["quant"] = None if m.model.lower().endswith(".gguf") else m.quant
    if m.quantize is not None:
        settings["quantize"] = m.quantize
    return settings


def document_metadata(sha256: str, options: ConvertOptions, page_count: int, model: str) -> dict[str, JSONValue]:
    """The metadata of a converted document: its input's hash, the model and every setting that shaped it."""
    m = options.model
    return {
        "docparse_version": __version__,
        "source_sha256": sha256,
        "page_count": page_count,
        "model": model,
        "revision": m.revision,
        **request_settings(options),
        **engine_settings(options),
        "decoding": "greedy",
        "batch_size": m.batch_size if m.batch_size is not None else "auto",
        "merge": options.assemble.merge,
        "max_retries": options.max_retries,
        "page_timeout": options.page_timeout,
        "fallback": "text-layer" if options.layer.fallback else "none",
        "snap_boxes": options.layer.snap_boxes,
    }


def assemble_pages(
    source: str,
    sha: str,
    options: ConvertOptions,
    page_count: int,
    pages: Sequence[Page],
    model: str,
    layers: Mapping[int, TextLayer | None] | None = None,
) -> Document:
    """The document of a file's finished pages (in order), with its metadata, assembled as options say, and
    checked against the pages' text `layers` by number (docparse.layer.agreement; --fallback fills failed pages
    from them first). Without `layers` (an image, or a caller that has none) the fields stay null."""
    layers = layers or {}
    if options.layer.fallback:
        pages = [fallback_page(p, layers.get(p.number)) for p in pages]
    metadata = document_metadata(sha, options, page_count, model)
    document = assemble(Document(source=source, pages=tuple(pages), metadata=metadata), options.assemble)
    return check_document(document, layers, snap=options.layer.snap_boxes)


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


class Documents:
    """The documents of a run between their opening and their last page: each is assembled, handed to
    `emit` (FileDone) and dropped as soon as all its pages are in and it is known to have no more.
    `model()` names the engine's model once there is one (else a document names its pages' model)."""

    def __init__(self, options: ConvertOptions, emit: Callable[[Event], None], model: Callable[[], str | None]) -> None:
        self.options = options
        self.emit = emit
        self.model = model
        self.docs: dict[int, _Doc] = {}
        self.listed: set[int] = set()  # documents whose pages have all been handed over

    def opened(
        self,
        index: int,
        path: Path,
        sha: str,
        page_count: int,
        numbers: Sequence[int],
        started: float,
        notes: tuple[str, ...] = (),
    ) -> None:
        """Input `index` is open: `numbers` are its pages to convert; `notes` warnings about the whole file."""
        self.docs[index] = _Doc(index, path, sha, page_count, list(numbers), started, notes)
        self.emit(FileStarted(index, str(path), len(numbers), notes))

    def failed(self, index: int, source: str, error: DocparseError, started: float) -> None:
        self.emit(FileDone(index, source, None, error, time.monotonic() - started))

    def ended(self, index: int) -> None:
        """Every page of input `index` has been handed over (rendered, replayed or sent to the model)."""
        self.listed.add(index)
        if self._complete(index):
            self._finish(index)

    def add(self, index: int, result: PageResult) -> None:
        doc = self.docs[index]
        page = result.page
        doc.pages[page.number] = page
        doc.layers[page.number] = result.layer
        if page.generation is not None:
            doc.models.add(page.generation.model)
        cached = result.model_calls == 0 and page.generation is not None
        self.emit(PageDone(str(doc.path), len(doc.pages), len(doc.numbers), page, cached, result.seconds,
                           result.model_calls))  # fmt: skip
        if self._complete(index):
            self._finish(index)

    def interrupt_all(self) -> None:
        for index in sorted(self.docs):
            self._finish(index, interrupted=True)

    def _complete(self, index: int) -> bool:
        return index in self.listed and len(self.docs[index].pages) == len(self.docs[index].numbers)

    def _finish(self, index: int, interrupted: bool = False) -> None:
        doc = self.docs.pop(index)
        seconds = time.monotonic() - doc.started
        if interrupted:
            self.emit(FileDone(index, str(doc.path), None, None, seconds, interrupted=True))
            return
        pages = [doc.pages[n] for n in doc.numbers]
        model = self.model() or min(doc.models, default=self.options.model.model)
        document = assemble_pages(str(doc.path), doc.sha256, self.options, doc.page_count, pages, model, doc.layers)
        self.emit(FileDone(index, str(doc.path), document, None, seconds))
