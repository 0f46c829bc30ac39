"""Page cache: raw model answers (and what a page's raster showed) on disk, keyed by everything that shapes them.

A re-run finds every answer it already paid for: an interrupted batch resumes at page
granularity, and converting again to another format makes no model call. Entries are written
atomically; an entry that cannot be read back (corrupt, partial, another version's shape) is a
miss, never an error. Answers cut by the page time budget are not stored (a re-run with more
time should try again), and a failed call stores nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docparse.config import ConvertOptions
from docparse.document import Generation, Unit
from docparse.engines.base import Answer, GenerationSettings
from docparse.files import write_atomic
from docparse.version import __version__

# Bumped when the shape of an entry changes: older entries are then misses.
FORMAT = 1
ANSWERS = "answers"
PAGES = "pages"


def default_cache_dir() -> Path:
    """The user's cache folder for docparse (e.g. ~/.cache/docparse on Linux), or $DOCPARSE_CACHE_DIR."""
    env = os.environ.get("DOCPARSE_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("docparse", appauthor=False))


def model_identity(options: ConvertOptions) -> dict[str, Any]:
    """What names the model that answers. Locally: the checkpoint, its revision and the dtype it runs in. On a
    server (--engine openai): the name it serves the model under (its weights and dtype are the server's). A GGUF
    model (--engine llamacpp): its files' digests, or its repository and quant (threads do not change answers).
    The engine kind is part of it: two engines' kernels do not give byte-identical answers."""
    m = options.model
    if options.engine == "openai":
        if options.server.pick_single:  # the one model the server serves, whichever name it has
            return {"engine": "openai", "model": None, "server": options.server.api_base}
        return {"engine": "openai", "model": options.server.served_model or m.model}
    if options.engine == "llamacpp":
        from docparse.engines.gguf import gguf_identity

        return gguf_identity(m.model, m.mmproj, m.quant, m.revision)
    if options.engine == "vllm":
        # Sharding changes the order of the sums, hence the last bits of the logits.
        tp = options.vllm.tensor_parallel
        return {"engine": "vllm", "model": m.model, "revision": m.revision, "dtype": m.dtype, "tensor_parallel": tp}
    quantized = {"quantize": m.quantize} if m.quantize else {}
    return {"engine": options.engine, "model": m.model, "revision": m.revision, "dtype": m.dtype, **quantized}


def request_settings(options: ConvertOptions) -> dict[str, Any]:
    """What the run asks the model with, besides the page: the prompts, the pixel bounds and the token limit.
    Part of every answer's cache key, and recorded in each document's metadata."""
    m = options.model
    return {
        "prompt": m.prompt,
        "system_prompt": m.system_prompt,
        "min_pixels": options.raster.min_pixels,
        "max_pixels": options.raster.max_pixels,
        "max_new_tokens": m.max_new_tokens,
    }


def page_prefix(options: ConvertOptions, file_sha256: str, number: int, turn: int) -> dict[str, Any]:
    """The part of an answer's key that a page and the run's options fix (settings and image part aside)."""
    return {
        "format": FORMAT,
        "file": file_sha256,
        "page": number,
        "turn": turn,
        **model_identity(options),
        **request_settings(options),
    }


def settings_key(settings: GenerationSettings) -> dict[str, Any]:
    """A call's decoding settings, less its time limit (the budget left, different on every run)."""
    fields = dataclasses.asdict(settings)
    fields.pop("time_limit", None)
    return fields


def answer_key(
    prefix: dict[str, Any], settings: GenerationSettings, part: int, parts: int, size: tuple[int, int]
) -> str:
    """The key of one image's answer in one call: `part` of `parts` images (a band of a page), `size` pixels."""
    return _digest({**prefix, "settings": settings_key(settings), "part": [part, parts], "size": list(size)})


def raster_key(options: ConvertOptions, file_sha256: str, number: int) -> str:
    """The key of what rendering a page showed (size, turn, blankness): fixed by the file, page and bounds."""
    r = options.raster
    return _digest(
        {
            "format": FORMAT,
            "docparse": __version__,
            "file": file_sha256,
            "page": number,
            "min_pixels": r.min_pixels,
            "max_pixels": r.max_pixels,
        }
    )


def _digest(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class RasterInfo:
    """What a rendered page showed, enough to rebuild its Page from cached answers without rendering it again."""

    width: float
    height: float
    unit: Unit
    image_size: tuple[int, int]
    rotation: int
    turn: int
    has_text: bool
    blank: bool
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What `docparse cache info` reports."""

    path: Path
    answers: int
    pages: int
    bytes: int


class PageCache:
    """Answers and raster records under `root` (answers/ab/<sha256>.json, pages/ab/<sha256>.json).

    Safe to use from several threads and processes: every write is a rename of a complete file.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    def _read(self, kind: str, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(kind, key).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("format") == FORMAT else None

    def _write(self, kind: str, key: str, data: dict[str, Any]) -> None:
        # A cache that cannot be written costs a re-run its model calls, nothing else.
        with contextlib.suppress(OSError):
            write_atomic(self._path(kind, key), json.dumps({"format": FORMAT, **data}, ensure_ascii=False))

    def get_answer(self, key: str) -> Answer | None:
        data = self._read(ANSWERS, key)
        if data is None:
            return None
        try:
            g = data["generation"]
            reason = g["finish_reason"]
            if not isinstance(data["text"], str) or reason not in ("stop", "length", "repetition"):
                return None
            generation = Generation(
                model=str(g["model"]),
                prompt=str(g["prompt"]),
                tokens_in=int(g["tokens_in"]),
                tokens_out=int(g["tokens_out"]),
                seconds=float(g["seconds"]),
                finish_reason=reason,
            )
        except (KeyError, TypeError, ValueError):
            return None
        return Answer(data["text"], generation)

    def put_answer(self, key: str, answer: Answer) -> None:
        """Store an answer, unless the time budget cut it (a later run with more time should try again)."""
        if answer.generation.finish_reason == "time":
            return
        self._write(ANSWERS, key, {"text": answer.text, "generation": dataclasses.asdict(answer.generation)})

    def get_raster(self, key: str) -> RasterInfo | None:
        data = self._read(PAGES, key)
        if data is None:
            return None
        try:
            w, h = data["image_size"]
            notes = data["notes"]
            if data["unit"] not in ("pt", "px") or not all(isinstance(n, str) for n in notes):
                return None
            return RasterInfo(
                width=float(data["width"]),
                height=float(data["height"]),
                unit=data["unit"],
                image_size=(int(w), int(h)),
                rotation=int(data["rotation"]),
                turn=int(data["turn"]),
                has_text=bool(data["has_text"]),
                blank=bool(data["blank"]),
                notes=tuple(notes),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def put_raster(self, key: str, info: RasterInfo) -> None:
        fields = dataclasses.asdict(info)
        fields["image_size"] = list(info.image_size)
        fields["notes"] = list(info.notes)
        self._write(PAGES, key, fields)

    def _entries(self) -> Iterator[tuple[str, Path]]:
        for kind in (ANSWERS, PAGES):
            folder = self.root / kind
            if folder.is_dir():
                for path in folder.glob("*/*.json"):
                    yield kind, path
                for path in folder.glob("*/.*.part"):  # left by a write that was killed
                    yield kind, path

    def stats(self) -> CacheStats:
        counts = {ANSWERS: 0, PAGES: 0}
        size = 0
        for kind, path in self._entries():
            try:
                size += path.stat().st_size
            except OSError:
                continue
            if path.suffix == ".json":
                counts[kind] += 1
        return CacheStats(self.root, counts[ANSWERS], counts[PAGES], size)

    def clear(self) -> int:
        """Delete every entry (only docparse's own files); returns how many were removed."""
        removed = 0
        for _kind, path in list(self._entries()):
            try:
                path.unlink()
                removed += 1
            except OSError:
                continue
        for kind in (ANSWERS, PAGES):
            folder = self.root / kind
            if folder.is_dir():
                for sub in folder.iterdir():
                    with contextlib.suppress(OSError):
                        sub.rmdir()
                with contextlib.suppress(OSError):
                    folder.rmdir()
        return removed
