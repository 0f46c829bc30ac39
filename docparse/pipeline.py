"""Pages from raw answers (read, retried, kept on disk); convert one file; render saved answers again."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast, get_args

from PIL import Image

from docparse.assemble import assemble
from docparse.config import AssembleOptions, ConvertOptions
from docparse.document import Document, FinishReason, Generation, JSONValue, Page, PageStatus, SchemaError, Unit
from docparse.engines.base import Answer, Engine
from docparse.errors import InputError, UsageError
from docparse.files import write_atomic
from docparse.inputs.pageprep import unturn
from docparse.inputs.rasterize import PageImage
from docparse.reader.qwenvl import read_answer
from docparse.reader.repetition import collapse_blocks
from docparse.run.cache import PageCache, request_settings
from docparse.run.keepraw import RecordingEngine, ReplayEngine, generation_record, retry_files, saved_retries
from docparse.run.recover import Budget, read_bands, recover_page
from docparse.version import __version__


@dataclass(frozen=True, slots=True)
class PageDone:
    """Progress event: one page of `source` finished (index counts from 1 up to total)."""

    source: str
    index: int
    total: int
    page: Page
    # Filled by the scheduler: the page came wholly from the page cache; its seconds in the run; the
    # calls it made to the engine (retries included).
    cached: bool = False
    seconds: float = 0.0
    model_calls: int = 0


Progress = Callable[[PageDone], None]


def build_page(
    *,
    number: int,
    raw: str,
    image_size: tuple[int, int] | None,
    page_size: tuple[float, float] | None,
    unit: Unit,
    generation: Generation | None,
) -> Page:
    """Read one raw answer into a Page.

    Boxes are mapped to `page_size` (in `unit`) when the image size is known too; otherwise
    they stay in model pixels and the page is measured in pixels.
    """
    mapped = image_size is not None and page_size is not None
    result = read_answer(raw, image_size=image_size, page_size=page_size if mapped else None)
    reason = generation.finish_reason if generation is not None else None
    # A loop runs until something stops it: only an answer that did not end by itself is cut.
    # A complete answer keeps its repeats (a table's identical rows, a TOC's dot leaders are real).
    ended_badly = result.truncated or reason in ("length", "time", "repetition")
    blocks, repeated = collapse_blocks(result.blocks) if ended_badly else (result.blocks, [])
    warnings = list(result.warnings)
    status: PageStatus = "ok"
    if not result.structured and blocks:
        status = "unstructured"
    if result.truncated or reason in ("length", "time"):
        status = "truncated"
    if generation is not None and reason == "length":
        warnings.append(
            f"the answer was cut at {generation.tokens_out} new tokens: raise --max-new-tokens to keep the rest"
        )
    if generation is not None and reason == "time":
        warnings.append(
            f"the answer was cut by the page time budget after {generation.seconds:.1f} s: raise --page-timeout"
        )
    if repeated or reason == "repetition":
        status = "repetition"
        warnings.extend(repeated)
        if reason == "repetition" and not repeated:
            warnings.append("generation stopped early: the model was repeating itself")
    width: float | None = None
    height: float | None = None
    if mapped and page_size is not None:
        width, height = page_size
    elif image_size is not None:
        width, height = float(image_size[0]), float(image_size[1])
    return Page(
        number=number,
        width=width,
        height=height,
        unit=unit if mapped else "px",
        image_size=image_size,
        blocks=blocks,
        status=status,
        warnings=tuple(warnings),
        generation=generation,
    )


def empty_page(image: PageImage, status: PageStatus, warning: str, attempts: int) -> Page:
    """A page with no blocks: a blank one never sent to the model, or one the engine failed on."""
    return Page(
        number=image.number,
        width=image.width,
        height=image.height,
        unit=image.unit,
        image_size=image.image.size,
        blocks=(),
        status=status,
        warnings=(warning,),
        attempts=attempts,
        rotation=image.turn,
    )


BLANK_WARNING = "the page is blank (no text layer, no ink on its raster); it was not sent to the model"


def _turned_size(width: float, height: float, turn: int) -> tuple[float, float]:
    """The page's size as the model saw it, turned clockwise by `turn`."""
    return (height, width) if turn in (90, 270) else (width, height)


def _on_displayed_page(page: Page, turn: int, width: float, height: float, notes: tuple[str, ...] = ()) -> Page:
    """A page read on the turned image, its boxes mapped back onto the page as displayed."""
    return replace(
        page,
        width=width,
        height=height,
        blocks=unturn(page.blocks, turn, width, height),
        rotation=turn,
        warnings=(*notes, *page.warnings),
    )


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


def convert(
    path: Path,
    options: ConvertOptions,
    get_engine: Callable[[], Engine],
    progress: Progress | None = None,
    cache: PageCache | None = None,
) -> Document:
    """Convert one PDF or image file: the batch scheduler (docparse.run.scheduler) with one input.

    The input is opened (and its page selection checked) before `get_engine` is called, and the
    engine is asked for only when a page needs the model (not for blank or cached pages), so a bad
    input fails in milliseconds rather than after a model load.
    Raises UsageError / InputError for an input that cannot be opened or a bad page selection.
    A batch the engine fails on becomes failed pages (status "failed", the error in warnings);
    the other pages still convert. With `cache`, answers are read from and stored in it.
    """
    from docparse.run.scheduler import FileDone, run_batch

    done: list[FileDone] = []

    def on_event(event: object) -> None:
        if isinstance(event, PageDone) and progress is not None:
            progress(event)
        elif isinstance(event, FileDone):
            done.append(event)

    run_batch([path], options, get_engine, cache=cache, events=on_event)
    (result,) = done
    if result.error is not None:
        raise result.error
    assert result.document is not None
    return result.document


def page_from_answer(engine: Engine, image: PageImage, answer: Answer, options: ConvertOptions, spent: float) -> Page:
    """The page read from its first answer, then through the retry ladder if that answer looped or was cut."""
    recorder = None
    if options.keep_raw is not None:
        save_raw(options.keep_raw, image, answer, options)
        engine = recorder = RecordingEngine(engine)

    def build(ans: Answer, image_size: tuple[int, int], page_size: tuple[float, float]) -> Page:
        return build_page(
            number=image.number,
            raw=ans.text,
            image_size=image_size,
            page_size=page_size,
            unit=image.unit,
            generation=ans.generation,
        )

    # The model saw the turned page: read its answer on the turned page, then turn the boxes back.
    page_size = _turned_size(image.width, image.height, image.turn)
    first = build(answer, image.image.size, page_size)
    timeout = options.page_timeout
    budget = Budget(options.max_retries, None if timeout is None else time.perf_counter() + timeout - spent)
    page = recover_page(
        engine, image.image, page_size, first, build, max_new_tokens=options.model.max_new_tokens, budget=budget
    )
    if options.keep_raw is not None and recorder is not None and recorder.calls:
        save_raw(options.keep_raw, image, answer, options, recorder.calls)  # every attempt, for `render`
    return _on_displayed_page(page, image.turn, image.width, image.height, image.notes)


def page_from_bands(engine: Engine, image: PageImage, options: ConvertOptions) -> Page:
    """A page too tall for the model (docparse.inputs.tallpage), read in bands in one call and stitched."""
    from docparse.engines.base import GenerationSettings
    from docparse.inputs.tallpage import tall_rows

    def build(ans: Answer, image_size: tuple[int, int], page_size: tuple[float, float]) -> Page:
        return build_page(number=image.number, raw=ans.text, image_size=image_size, page_size=page_size,
                          unit=image.unit, generation=ans.generation)  # fmt: skip

    rows = tall_rows(image.image.size, options.raster.min_pixels, options.raster.max_pixels)
    settings = GenerationSettings(time_limit=options.page_timeout)
    page = read_bands(engine, image.image, (image.width, image.height), rows, settings, build, image.number)
    note = (
        f"the page is {image.height / image.width:.0f} times as tall as wide (the model takes up to 200): "
        f"read in {len(rows)} bands, stitched (no retries)"
    )
    return replace(page, attempts=1, warnings=(note, *page.warnings), rotation=0)


def raw_path(directory: Path, source: str, number: int) -> Path:
    """Where --keep-raw puts a page's raw answer; its sidecar has the same name ending in .json."""
    return directory / f"{Path(source).stem}.page-{number:04d}.html"


def save_raw(
    directory: Path, image: PageImage, answer: Answer, options: ConvertOptions, retries: Sequence[list[Answer]] = ()
) -> None:
    """Save the raw answer and a sidecar with what `docparse render` needs to map it again; with `retries`
    (the answers of each retry call, in order), those too, so that render reads the page as it was read."""
    path = raw_path(directory, image.source, image.number)
    files, listing = retry_files(path, retries)
    sidecar: dict[str, Any] = {
        "docparse_version": __version__,
        "source": image.source,
        "page": image.number,
        "page_size": [image.width, image.height],
        "unit": image.unit,
        "image_size": list(image.image.size),
        "rotation": image.turn,
        "system_prompt": options.model.system_prompt,
        "max_new_tokens": options.model.max_new_tokens,
        **generation_record(answer.generation),
    }
    if listing:
        sidecar["retries"] = listing
    try:
        for retry, text in files:
            write_atomic(retry, text)
        write_atomic(path, answer.text)
        write_atomic(path.with_suffix(".json"), json.dumps(sidecar, ensure_ascii=False, indent=2) + "\n")
    except OSError as exc:
        raise UsageError(f"--keep-raw {directory}: cannot write ({exc.strerror or exc})") from None


@dataclass(frozen=True, slots=True)
class RawPage:
    """A saved raw answer and what is known about the image and page it came from."""

    path: Path
    text: str
    image_size: tuple[int, int] | None
    page_size: tuple[float, float] | None
    unit: Unit
    number: int | None
    source: str | None
    generation: Generation | None
    rotation: int = 0  # the clockwise turn the page was given before the model saw it
    # The answers of each retry the conversion made (--keep-raw), and the token limit it ran with.
    retries: tuple[list[Answer], ...] = ()
    max_new_tokens: int = 0


def load_raw(path: Path) -> RawPage:
    """Read a raw answer file and, when present, its --keep-raw sidecar (same name, .json)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    not_an_answer(path, data)
    text = data.decode("utf-8", errors="replace")
    side_path = path.with_suffix(".json")
    side: dict[str, Any] = {}
    if side_path.is_file() and side_path != path:
        try:
            loaded = json.loads(side_path.read_text(encoding="utf-8"))
            side = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            raise InputError(f"{side_path}: sidecar is not valid JSON") from None
    generation = _generation(side)
    image_size = _pair(side.get("image_size"), int)
    page_size = _pair(side.get("page_size"), float)
    unit: Unit = "px" if side.get("unit") == "px" else "pt"
    number = side.get("page")
    source = side.get("source")
    rotation = side.get("rotation")
    return RawPage(
        path=path,
        text=text,
        image_size=image_size,
        page_size=page_size,
        unit=unit,
        number=int(number) if isinstance(number, int) else None,
        source=str(source) if isinstance(source, str) else None,
        generation=generation,
        rotation=rotation if rotation in (90, 180, 270) else 0,
        retries=tuple(saved_retries(path, side, _retry_answer)),
        max_new_tokens=int(side.get("max_new_tokens") or 0),
    )


def _generation(side: dict[str, Any]) -> Generation | None:
    if not {"model", "prompt", "tokens_in", "tokens_out", "seconds", "finish_reason"} <= side.keys():
        return None
    return Generation(
        model=str(side["model"]),
        prompt=str(side["prompt"]),
        tokens_in=int(side["tokens_in"]),
        tokens_out=int(side["tokens_out"]),
        seconds=float(side["seconds"]),
        finish_reason=_finish_reason(side["finish_reason"]),
    )


def _retry_answer(path: Path, entry: dict[str, Any]) -> Answer:
    """One saved retry answer; InputError when its file is gone (render would not read the page as converted)."""
    generation = _generation(entry)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: a retry answer the sidecar lists cannot be read ({exc.strerror or exc})") from None
    if generation is None:
        raise InputError(f"{path}: its entry in the sidecar has no generation record")
    return Answer(text, generation)


# What an input file starts with, for a file given to `render` that is no model answer.
_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


def not_an_answer(path: Path, data: bytes) -> None:
    """UsageError for a file that cannot be a model answer: a PDF or image (to convert, not to render), or
    any other binary file (NUL bytes, or many bytes undecodable as UTF-8). An answer --keep-raw saved (its
    sidecar PAGE.json beside it) is never refused: the model's text may hold any character, U+FFFD included."""
    if path.with_suffix(".json").is_file():
        return
    head = data[:1024]
    kind = "a PDF" if b"%PDF-" in head else next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if kind is None and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        kind = "a WebP image"
    if kind is not None:
        raise UsageError(
            f"{path} is {kind}, not a raw model answer: convert it with `docparse {path}` (render takes the "
            "answers --keep-raw saved, or a document saved with --to json)"
        )
    undecodable = data.decode("utf-8", errors="replace").count("\ufffd") - data.count("\ufffd".encode())
    if b"\x00" in head or undecodable > max(8, len(data) // 100):
        raise UsageError(f"{path} is a binary file, not a raw model answer (QwenVL HTML) or a saved JSON document")


def _finish_reason(value: Any) -> FinishReason:
    for reason in get_args(FinishReason):
        if value == reason:
            return cast("FinishReason", reason)
    return "stop"


def _pair(value: Any, cast: Callable[[Any], Any]) -> tuple[Any, Any] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        try:
            return cast(value[0]), cast(value[1])
        except (TypeError, ValueError):
            return None
    return None


def render(
    paths: Sequence[Path],
    *,
    image_size: tuple[int, int] | None = None,
    page_size: tuple[float, float] | None = None,
    page_unit: Unit = "pt",
    progress: Progress | None = None,
    assemble_options: AssembleOptions | None = None,
    password: str | None = None,
) -> Document:
    """Saved raw answers (one file per page, in order) -> Document, with no model.

    `image_size` (the size the model saw) and `page_size` (in `page_unit`) override the sidecars.
    With no page size known, boxes stay in model pixels. The pages are assembled as `convert`
    assembles them, and checked against the source's text layer when the source is found
    (docparse.layer.agreement.check_source; `password` opens an encrypted one).
    """
    assemble_options = assemble_options or AssembleOptions()
    pages: list[Page] = []
    source: str | None = None
    for index, path in enumerate(paths, start=1):
        raw = load_raw(path)
        source = source or raw.source
        size = page_size or raw.page_size
        page = _rendered_page(raw, index, image_size or raw.image_size, size, page_unit if page_size else raw.unit)
        if raw.rotation and size and (image_size or raw.image_size):  # mapped: boxes back onto the displayed page
            page = _on_displayed_page(page, raw.rotation, *size)
        pages.append(page)
        if progress is not None:
            progress(PageDone(str(path), index, len(paths), page))
    metadata: dict[str, JSONValue] = {
        "docparse_version": __version__,
        "rendered_from": [str(p) for p in paths],
        "merge": assemble_options.merge,
    }
    document = Document(source=source or (str(paths[0]) if paths else ""), pages=tuple(pages), metadata=metadata)
    from docparse.layer.agreement import check_source

    return check_source(assemble(document, assemble_options), password)


def _rendered_page(
    raw: RawPage, index: int, image_size: tuple[int, int] | None, size: tuple[float, float] | None, unit: Unit
) -> Page:
    """A saved answer read as the conversion read it: with its retries replayed through the ladder, when kept."""
    page_size = _turned_size(*size, raw.rotation) if size else None

    def build(text: str, generation: Generation | None, img: Any, pts: Any) -> Page:
        return build_page(
            number=raw.number or index, raw=text, image_size=img, page_size=pts, unit=unit, generation=generation
        )

    page = build(raw.text, raw.generation, image_size, page_size)
    if not raw.retries or raw.generation is None or image_size is None or page_size is None:
        return page
    replay = ReplayEngine(raw.retries, raw.generation.model)
    placeholder = Image.new("L", image_size)  # only its size is read: the answers are saved
    return recover_page(
        replay, placeholder, page_size, page, lambda ans, img, pts: build(ans.text, ans.generation, img, pts),
        max_new_tokens=raw.max_new_tokens, budget=Budget(len(raw.retries), None),
    )  # fmt: skip


def load_document(path: Path) -> Document:
    """A document saved by `--to json` (or Document.to_json), read back as it was written: no model, no
    assembly again. Raises UsageError for a missing file, InputError for one that is not a docparse document.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return Document.from_json(data)
    except SchemaError as exc:
        raise InputError(f"{path}: not a docparse JSON document ({exc})") from None
