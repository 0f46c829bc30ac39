"""--keep-raw's retries: every model call a page took, saved beside its first answer and replayed by `render`."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from docparse.document import Generation
from docparse.engines.base import GREEDY, Answer, Engine, GenerationSettings
from docparse.errors import EngineError, UsageError

# A retry's answer file: PAGE.retry-N.html for a call on the whole page, PAGE.retry-N.band-K.html for a band.
RETRY_NAME = re.compile(r"\.retry-\d+(?:\.band-\d+)?$")


class RecordingEngine:
    """An engine that remembers the answers of every call made through it, in order (the retries of a page)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[list[Answer]] = []

    @property
    def model_id(self) -> str:
        return self.engine.model_id

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size

    @property
    def concurrency(self) -> int:
        return self.engine.concurrency

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        answers = self.engine.generate(images, settings)
        self.calls.append(list(answers))
        return answers

    def close(self) -> None:
        pass


class ReplayEngine:
    """The saved calls of a page, answered in the order they were made; a call past them fails (EngineError)."""

    def __init__(self, calls: Sequence[Sequence[Answer]], model: str) -> None:
        self.calls = list(calls)
        self._model = model

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def batch_size(self) -> int:
        return 1

    @property
    def concurrency(self) -> int:
        return 1

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        if not self.calls or len(self.calls[0]) != len(images):
            raise EngineError("no saved answer for this retry")
        return list(self.calls.pop(0))

    def close(self) -> None:
        pass


def generation_record(g: Generation) -> dict[str, Any]:
    return {
        "model": g.model,
        "prompt": g.prompt,
        "tokens_in": g.tokens_in,
        "tokens_out": g.tokens_out,
        "seconds": g.seconds,
        "finish_reason": g.finish_reason,
    }


def retry_files(page_path: Path, calls: Sequence[Sequence[Answer]]) -> tuple[list[tuple[Path, str]], list[Any]]:
    """The files to write for a page's retries (path, text) and their list for the sidecar's `retries`."""
    files: list[tuple[Path, str]] = []
    listing: list[Any] = []
    stem = page_path.name.removesuffix(".html")
    for n, answers in enumerate(calls, start=1):
        entries = []
        for k, answer in enumerate(answers, start=1):
            name = f"{stem}.retry-{n}.html" if len(answers) == 1 else f"{stem}.retry-{n}.band-{k}.html"
            files.append((page_path.with_name(name), answer.text))
            entries.append({"file": name, **generation_record(answer.generation)})
        listing.append(entries)
    return files, listing


def saved_retries(path: Path, side: dict[str, Any], read: Any) -> list[list[Answer]]:
    """The retries a sidecar lists, read back (`read(path, side_entry) -> Answer`); InputError if one is gone."""
    calls = side.get("retries")
    if not isinstance(calls, list):
        return []
    return [[read(path.with_name(str(e.get("file"))), e) for e in call if isinstance(e, dict)] for call in calls]


def answer_files(paths: Sequence[Path]) -> list[Path]:
    """The answers `render` reads from what it was given: --keep-raw sidecars (PAGE.json beside a given
    PAGE.html) and retry answers (read through their page's sidecar) are passed over, so `render raw/*` works.
    A sidecar given without its answer is a UsageError."""
    given = {p.resolve() for p in paths}
    out: list[Path] = []
    for path in paths:
        if RETRY_NAME.search(path.stem) and path.suffix.lower() == ".html":
            base = path.with_name(RETRY_NAME.sub("", path.stem) + ".html")
            if base.resolve() in given:
                continue
        if path.suffix.lower() == ".json":
            answer = path.with_suffix(".html")
            if answer.resolve() in given:
                continue
            if answer.is_file() and _is_sidecar(path):
                raise UsageError(f"{path} is a --keep-raw sidecar: render its answer, {answer} (read with it)")
        out.append(path)
    return out


def _is_sidecar(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "schema_version" not in data and "image_size" in data
