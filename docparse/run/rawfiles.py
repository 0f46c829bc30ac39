"""Raw answer files (--keep-raw): a page's answer and its sidecar saved, read back for `render`, or refused."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

from docparse.config import ConvertOptions
from docparse.document import FinishReason, Generation, Unit
from docparse.engines.base import Answer
from docparse.errors import InputError, UsageError
from docparse.files import write_atomic
from docparse.inputs.rasterize import PageImage
from docparse.run.keepraw import generation_record, retry_files, saved_retries
from docparse.version import __version__


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


def read_given(path: Path) -> bytes:
    """The bytes of a file given to `render`: UsageError when it does not exist, InputError when unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_raw(path: Path) -> RawPage:
    """Read a raw answer file and, when present, its --keep-raw sidecar (same name, .json)."""
    data = read_given(path)
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
