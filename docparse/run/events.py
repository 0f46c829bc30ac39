"""What a run reports as it goes: a file opened, a page done, a file done (the scheduler's and Ray's events)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from docparse.document import Document, Page
from docparse.errors import DocparseError


@dataclass(frozen=True, slots=True)
class FileStarted:
    """Event: input `index` (0-based, in the order given) opened; `pages` of it will be converted."""

    index: int
    source: str
    pages: int
    warnings: tuple[str, ...] = ()  # about the file as a whole (e.g. pages --pages asks for that it lacks)


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
Progress = Callable[[PageDone], None]
