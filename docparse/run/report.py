"""The run report (--report FILE.json): per file and page, what happened, what it cost, what went wrong.

Built from the scheduler's events as they arrive, so whatever stops the run, the report says how
far it got; the CLI writes it (atomically) at the end, however the run ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from docparse.document import Document, Page
from docparse.files import write_atomic
from docparse.layer.agreement import below_coverage, low_blocks
from docparse.run.events import PageDone
from docparse.version import __version__

FileStatus = Literal["converted", "failed", "interrupted", "not-started"]
REPORT_VERSION = "1.1"


def page_failed(page: Page, min_layer_coverage: float | None = None) -> bool:
    """Whether a page counts as failed: the engine failed on it, or (with --min-layer-coverage) the model's
    blocks hold less of its text layer than the floor."""
    return page.failed or below_coverage(page, min_layer_coverage)


def failed_share(doc: Document, min_layer_coverage: float | None = None) -> float:
    """The share of a document's pages that failed (0 for a document with no pages)."""
    if not doc.pages:
        return 0.0
    return sum(page_failed(p, min_layer_coverage) for p in doc.pages) / len(doc.pages)


def document_failed(doc: Document, max_page_error_rate: float, min_layer_coverage: float | None = None) -> bool:
    """Whether a converted document counts as failed: its share of failed pages is above the rate."""
    share = failed_share(doc, min_layer_coverage)
    return share > 0 and share > max_page_error_rate


def _page_entry(done: PageDone) -> dict[str, Any]:
    page: Page = done.page
    g = page.generation
    return {
        "number": page.number,
        "status": page.status,
        "seconds": round(done.seconds, 3),
        "tokens_in": g.tokens_in if g else 0,
        "tokens_out": g.tokens_out if g else 0,
        "attempts": page.attempts,
        "model_calls": done.model_calls,
        "cached": done.cached,
        "error": page.error,
        "warnings": list(page.warnings),
        "layer_coverage": None,
        "layer_missing_lines": None,
        "low_agreement_blocks": None,
        "below_layer_coverage": False,
    }


@dataclass(slots=True)
class _File:
    input: str
    output: str | None
    status: FileStatus = "not-started"
    error: str | None = None
    seconds: float = 0.0
    pages: dict[int, dict[str, Any]] = field(default_factory=dict)


class Report:
    """Collects a run's outcome; `to_json()` is what --report writes (see README, "The run report")."""

    def __init__(self, jobs: Sequence[tuple[str, str | None]]) -> None:
        self.started = datetime.now(UTC)
        self._clock = time.monotonic()
        self.files = [_File(source, output) for source, output in jobs]
        self._by_source = {f.input: i for i, f in enumerate(self.files)}
        self.exit_code: int | None = None
        self.error: str | None = None

    def _file(self, source: str) -> _File:
        return self.files[self._by_source[source]]

    def page(self, done: PageDone) -> None:
        self._file(done.source).pages[done.page.number] = _page_entry(done)

    def layer(self, source: str, doc: Document, min_layer_coverage: float | None) -> None:
        """Each page's text-layer check, once the document is assembled and checked (null: no usable layer)."""
        for page in doc.pages:
            entry = self._file(source).pages.get(page.number)
            if entry is None:
                continue
            entry["status"] = page.status  # a fallback page's status is known only now
            entry["layer_coverage"] = page.layer.coverage if page.layer else None
            entry["layer_missing_lines"] = len(page.layer.missing) if page.layer else None
            entry["low_agreement_blocks"] = len(low_blocks(page)) if page.layer else None
            entry["below_layer_coverage"] = below_coverage(page, min_layer_coverage)

    def started_file(self, source: str) -> None:
        self._file(source).status = "interrupted"  # until it is done

    def finished_file(self, source: str, status: FileStatus, seconds: float, error: str | None = None) -> None:
        entry = self._file(source)
        entry.status, entry.seconds, entry.error = status, round(seconds, 3), error

    def totals(self) -> dict[str, int]:
        pages = [p for f in self.files for p in f.pages.values()]
        return {
            "files": len(self.files),
            "converted": sum(f.status == "converted" for f in self.files),
            "failed": sum(f.status == "failed" for f in self.files),
            "interrupted": sum(f.status == "interrupted" for f in self.files),
            "not_started": sum(f.status == "not-started" for f in self.files),
            "pages": len(pages),
            "pages_failed": sum(p["status"] == "failed" or bool(p["below_layer_coverage"]) for p in pages),
            "pages_cached": sum(bool(p["cached"]) for p in pages),
            "model_calls": sum(int(p["model_calls"]) for p in pages),
            "tokens_in": sum(int(p["tokens_in"]) for p in pages),
            "tokens_out": sum(int(p["tokens_out"]) for p in pages),
        }

    def to_json(self) -> str:
        data = {
            "report_version": REPORT_VERSION,
            "docparse_version": __version__,
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - self._clock, 3),
            "exit_code": self.exit_code,
            "error": self.error,
            "totals": self.totals(),
            "files": [
                {
                    "input": f.input,
                    "output": f.output,
                    "status": f.status,
                    "error": f.error,
                    "seconds": f.seconds,
                    "pages": [f.pages[n] for n in sorted(f.pages)],
                }
                for f in self.files
            ],
        }
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"

    def write(self, path: Path) -> None:
        write_atomic(path, self.to_json())
