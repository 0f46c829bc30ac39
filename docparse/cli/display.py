"""How a run shows itself on stderr: progress bars or plain lines, warnings and errors, the summary lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from docparse.run.batch import plural
from docparse.run.events import FileStarted, PageDone

err = Console(stderr=True, highlight=False, soft_wrap=True)


class _RateColumn(ProgressColumn):
    """Items per second of a task ("pages/s", "files/s")."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{'--' if speed is None else f'{speed:.2f}'} {task.description}/s")


class Display:
    """How a run shows itself on stderr: rich bars (files, pages, pages/s, ETA) when stderr is a terminal,
    else one plain line per page and per file (no bars, no colour codes). `quiet`: warnings and errors only.
    NO_COLOR is honoured (rich reads it)."""

    def __init__(self, quiet: bool, batch: bool, files: int) -> None:
        self.quiet = quiet
        self.batch = batch
        self.bars = not quiet and err.is_terminal
        self.progress: Progress | None = None
        self.files = files
        self._files_task: TaskID | None = None
        self._pages_task: TaskID | None = None
        self._pages_total = 0

    def __enter__(self) -> Display:
        if self.bars:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(),
                TimeRemainingColumn(),
                console=err,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.progress.start()
            self._files_task = self.progress.add_task("files", total=self.files)
            self._pages_task = self.progress.add_task("pages", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _print(self, text: str) -> None:
        console = self.progress.console if self.progress is not None else err
        console.print(text, markup=False, highlight=False)

    def info(self, text: str) -> None:
        if not self.quiet:
            self._print(f"docparse: {text}")

    def warning(self, text: str) -> None:
        self._print(f"docparse: warning: {text}")

    def error(self, text: str) -> None:
        self._print(f"docparse: error: {text}")

    def notice(self, text: str) -> None:
        """A line shown even with -q that is neither a warning nor an error (Ctrl-C)."""
        self._print(f"docparse: {text}")

    def started(self, event: FileStarted) -> None:
        for warning in event.warnings:
            self.warning(f"{event.source}: {warning}")
        self._pages_total += event.pages
        if self.progress is not None and self._pages_task is not None:
            self.progress.update(self._pages_task, total=self._pages_total)

    def page(self, done: PageDone) -> None:
        page = done.page
        where = f"{done.source} page {page.number}" if self.batch else f"page {page.number}"
        for warning in page.warnings:
            self.warning(f"{where}: {warning}")
        if self.progress is not None and self._pages_task is not None:
            self.progress.advance(self._pages_task)
        if self.bars or self.quiet:
            return
        g = page.generation
        cost = f"{g.tokens_out} tokens in {g.seconds:.1f} s ({g.finish_reason})" if g else page.status
        if done.cached:
            cost += ", cached"
        self._print(
            f"docparse: {Path(done.source).name} page {page.number} ({done.index}/{done.total}): "
            f"{len(page.blocks)} blocks, {cost}"
        )

    def file_done(self, text: str | None) -> None:
        if self.progress is not None and self._files_task is not None:
            self.progress.advance(self._files_task)
        if text is not None:
            self.info(text)


def reporter(quiet: bool) -> Callable[[PageDone], None]:
    display = Display(quiet, batch=False, files=1)
    display.bars = False  # `render` is quick: plain lines
    return display.page


def summary_line(totals: dict[str, int]) -> str:
    """The closing line of a batch: files converted and failed, pages, and what the cache saved."""
    failed = f", {totals['failed']} failed" if totals["failed"] else ""
    return (
        f"done: {totals['converted']} of {plural(totals['files'], 'file')} converted{failed}; "
        f"{plural(totals['pages'], 'page')} "
        f"({totals['pages_failed']} failed, {totals['pages_cached']} from the cache, {totals['model_calls']} "
        "model calls)"
    )
