"""A batch's policy: outputs per file, the report and its cadence, fail-fast, the error-rate verdict, Ctrl-C.

No printing and no exiting: what a person should hear goes to a BatchView (the CLI's Display, or
whatever an API caller passes), and the outcome is an exit code the caller may use or ignore.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path
from typing import Protocol

from docparse.config import ClusterOptions, ConvertOptions, WriteOptions
from docparse.document import Document
from docparse.engines.base import Engine
from docparse.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, DocparseError, InputError, UsageError
from docparse.inputs.plan import Job
from docparse.layer.agreement import layer_warnings
from docparse.run.cache import PageCache
from docparse.run.events import Event, FileDone, FileStarted, PageDone
from docparse.run.report import FileStatus, Report, document_failed, page_failed

REPORT_EVERY = 10.0  # seconds between rewrites of --report while a batch runs


class BatchView(Protocol):
    """What a batch says while it runs, line by line (docparse.cli.display.Display is one)."""

    def info(self, text: str) -> None: ...
    def warning(self, text: str) -> None: ...
    def error(self, text: str) -> None: ...
    def notice(self, text: str) -> None:
        """A line for even a quiet view that is neither a warning nor an error (Ctrl-C)."""

    def started(self, event: FileStarted) -> None: ...
    def page(self, done: PageDone) -> None: ...
    def file_done(self, text: str | None) -> None:
        """A file is over: its summary line in a batch, None for one file or a file that failed."""


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a file and the run count as failed: `fail_fast` stops at the first failed file (pages in flight
    finish); a file fails when its share of failed pages is above `max_page_error_rate`, a page failing
    also when the model's blocks hold less than `min_layer_coverage` of its text layer."""

    fail_fast: bool = False
    max_page_error_rate: float = 0.0
    min_layer_coverage: float | None = None


def plural(count: int, noun: str) -> str:
    """ "1 page", "2 pages"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


class Batch:
    """One run over `jobs`: the scheduler's (or the cluster's) events turned into written outputs, the
    report and an exit code. `batch` False is one file whose document is held in `single` (the caller
    writes it, e.g. to stdout once nothing else goes there); `open_engine` is called at most once, when
    the first page needs the model, and the engine is closed when the run ends."""

    def __init__(
        self,
        jobs: Sequence[Job],
        options: ConvertOptions,
        write_options: WriteOptions,
        view: BatchView,
        open_engine: Callable[[], Engine],
        *,
        batch: bool,
        policy: BatchPolicy = BatchPolicy(),
        root: Path | None = None,
        cluster: ClusterOptions | None = None,
    ) -> None:
        self.jobs = jobs
        self.options = options
        self.write_options = write_options
        self.view = view
        self.open_engine = open_engine
        self.batch = batch
        self.policy = policy
        self.root = root  # the output folder of a batch: no output may leave it through a symbolic link
        self.cluster = cluster  # --ray: the batch runs on a Ray cluster (docparse.run.cluster)
        self.report = Report([(str(j.source), str(j.output) if j.output else None) for j in jobs])
        self.stop = threading.Event()
        self.interrupted = False
        self.loading = False
        self.failed = 0
        self.single: Document | None = None
        self.single_error: DocparseError | None = None
        self.engines: list[Engine] = []
        self.report_path: Path | None = None
        self.report_written = time.monotonic()

    def get_engine(self) -> Engine:
        if not self.engines:
            self.loading = True  # nothing is in flight yet: Ctrl-C stops at once
            try:
                self.engines.append(self.open_engine())
            finally:
                self.loading = False
        return self.engines[0]

    def _failure(self) -> None:
        self.failed += 1
        if self.policy.fail_fast and not self.stop.is_set():
            self.view.error("--fail-fast: stopping after this failure (pages in flight finish)")
            self.stop.set()

    def on_event(self, event: Event) -> None:
        if isinstance(event, FileStarted):
            self.report.started_file(event.source)
            self.view.started(event)
        elif isinstance(event, PageDone):
            self.report.page(event)
            self.view.page(event)
        else:
            self.file_done(event)
            now = time.monotonic()
            if self.report_path is not None and now - self.report_written >= REPORT_EVERY:
                self.report_written = now  # so that even a killed run leaves a recent report
                self._write_report()

    def _file_failed(self, event: FileDone, error: DocparseError) -> None:
        self.report.finished_file(event.source, "failed", event.seconds, str(error))
        if self.batch:
            self.view.error(str(error))
        else:
            self.single_error = error
        self.view.file_done(None)
        self._failure()

    def file_done(self, event: FileDone) -> None:
        job = self.jobs[event.index]
        if event.error is not None:
            self._file_failed(event, event.error)
            return
        if event.interrupted or event.document is None:
            self.report.finished_file(event.source, "interrupted", event.seconds)
            return
        doc = event.document
        coverage = self.policy.min_layer_coverage
        self.report.layer(event.source, doc, coverage)
        for warning in layer_warnings(doc, coverage):
            self.view.warning(f"{event.source} {warning}" if self.batch else warning)
        failed_pages = sum(page_failed(p, coverage) for p in doc.pages)
        bad = document_failed(doc, self.policy.max_page_error_rate, coverage)
        if not self.batch:
            self.single = doc  # written once the run is over (stdout must carry nothing else)
        else:
            assert job.output is not None
            try:
                warnings = write_output(doc, self.write_options, job.output, self.root, self.options.raster.password)
            except DocparseError as exc:  # in a batch this file fails, the others go on
                self._file_failed(event, exc)
                return
            for warning in warnings:
                self.view.warning(f"{event.source}: {warning}")
        status: FileStatus = "failed" if bad else "converted"
        error = f"{failed_pages} of {len(doc.pages)} pages failed" if failed_pages else None
        self.report.finished_file(event.source, status, event.seconds, error)
        cached = sum(bool(p["cached"]) for p in self.report.files[event.index].pages.values())
        where = f" -> {job.output}" if self.batch else ""
        summary = (
            f"{event.source}{where}: {plural(len(doc.pages), 'page')} ({failed_pages} failed, {cached} from the cache) "
            f"in {event.seconds:.1f} s"
        )
        if bad and self.batch:
            self.view.error(f"{event.source}: {error}")
        self.view.file_done(summary if self.batch else None)
        if bad:
            self._failure()

    def _on_sigint(self, _signum: int, _frame: object) -> None:
        if (self.stop.is_set() and self.interrupted) or self.loading:
            raise KeyboardInterrupt
        self.interrupted = True
        self.stop.set()
        self.view.notice("interrupted: finishing the pages in flight (Ctrl-C again to stop at once)")

    def _write_report(self) -> None:
        if self.report_path is None:
            return
        try:
            self.report.write(self.report_path)
        except OSError as exc:
            self.view.error(f"--report {self.report_path}: cannot write ({exc.strerror or exc})")

    @contextlib.contextmanager
    def _session(self, report_path: Path | None) -> Iterator[None]:
        """Ctrl-C handled while the run lasts (in the main thread); however it ends, the report records the
        exit code or error, the engines are closed and the report is written."""
        self.report_path = report_path
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if in_main else None
        try:
            yield
            self.report.exit_code = self.exit_code()
        except DocparseError as exc:
            self.report.exit_code, self.report.error = exc.exit_code, str(exc)
            raise
        except KeyboardInterrupt:
            self.report.exit_code, self.report.error = EXIT_INTERRUPTED, "interrupted"
            self.view.notice("interrupted")
            raise
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
            for engine in self.engines:
                engine.close()
            self._write_report()

    def _execute(self, cache: PageCache | None) -> None:
        sources = [j.source for j in self.jobs]
        if self.cluster is not None:
            from docparse.run.cluster import connect, run_cluster

            self.view.info(f"joining the Ray cluster ({self.cluster.address}) ...")
            connect(self.cluster.address)
            run_cluster(sources, self.options, self.cluster, cache=cache, events=self.on_event,
                        stop=self.stop, info=self.view.info)  # fmt: skip
        else:
            from docparse.run.scheduler import run_batch

            run_batch(sources, self.options, self.get_engine, cache=cache, events=self.on_event, stop=self.stop)

    def run(
        self,
        cache: PageCache | None,
        report_path: Path | None = None,
        showing: AbstractContextManager[object] | None = None,
    ) -> int:
        """Run every job; returns the exit code (EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED). `showing` is held
        open while pages are converted (the CLI's progress bars). Raises the error of a single file that
        could not be converted, DocparseError for the run, KeyboardInterrupt for a second Ctrl-C."""
        with self._session(report_path), showing or nullcontext():
            self._execute(cache)
        if self.single_error is not None:
            raise self.single_error
        return self.exit_code()

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


def write_output(
    doc: Document, options: WriteOptions, path: Path, root: Path | None = None, password: str | None = None
) -> tuple[str, ...]:
    """Write one document of a batch, with its crops, to its output file (atomically), refusing a path that a
    symbolic link in the output tree would carry outside `root`. Returns the warnings of the write."""
    from docparse.output import write_with_assets

    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.part"):  # left by a run that was killed mid-write
        with contextlib.suppress(OSError):
            stale.unlink()
    if root is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        real_root = os.path.realpath(root)
        if os.path.commonpath([os.path.realpath(path.parent), real_root]) != real_root:
            raise InputError(f"{path}: not written, a symbolic link would take it outside -o {root}")
    try:
        return write_with_assets(doc, options, path, password=password).warnings
    except UsageError as exc:  # cannot write: in a batch this file fails, the others go on
        raise InputError(str(exc)) from None
