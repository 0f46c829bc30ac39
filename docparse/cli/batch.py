"""One `docparse INPUT...` run: the scheduler's events turned into outputs, progress, a report and an exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from glob import escape as glob_escape
from pathlib import Path

from docparse.cli.destination import emit
from docparse.cli.display import Display, plural, summary_line
from docparse.config import ClusterOptions, ConvertOptions, WriteOptions
from docparse.document import Document
from docparse.engines.base import Engine
from docparse.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, DocparseError, InputError, UsageError
from docparse.inputs.plan import Job
from docparse.layer.agreement import layer_warnings
from docparse.pipeline import PageDone
from docparse.run.cache import PageCache
from docparse.run.report import FileStatus, Report, document_failed, page_failed
from docparse.run.scheduler import Event, FileDone, FileStarted

REPORT_EVERY = 10.0  # seconds between rewrites of --report while a batch runs
CPU_HINT = (
    "on a CPU a page takes minutes (the 3B model: about 7 before its first token, then about 1 s a token) and "
    "nothing bounds it: try --page-timeout 900 --max-new-tokens 2048 --max-pixels 602112 (README: Quick start)"
)


class BatchRun:
    """One `docparse INPUT...` run: the scheduler's events turned into outputs, progress, a report and an exit code."""

    def __init__(
        self,
        jobs: Sequence[Job],
        options: ConvertOptions,
        write_options: WriteOptions,
        *,
        batch: bool,
        quiet: bool,
        fail_fast: bool,
        max_page_error_rate: float,
        min_layer_coverage: float | None = None,
    ) -> None:
        self.jobs = jobs
        self.min_layer_coverage = min_layer_coverage
        self.options = options
        self.write_options = write_options
        self.batch = batch
        self.quiet = quiet
        self.fail_fast = fail_fast
        self.max_page_error_rate = max_page_error_rate
        self.display = Display(quiet, batch, len(jobs))
        self.report = Report([(str(j.source), str(j.output) if j.output else None) for j in jobs])
        self.stop = threading.Event()
        self.interrupted = False
        self.loading = False
        self.failed = 0
        self.single: Document | None = None
        self.single_error: DocparseError | None = None
        self.engines: list[Engine] = []
        self.root: Path | None = None  # the output folder of a batch
        self.report_path: Path | None = None
        self.report_written = time.monotonic()
        self.cluster: ClusterOptions | None = None  # --ray: the batch runs on a Ray cluster (docparse.run.cluster)

    def get_engine(self) -> Engine:
        if not self.engines:
            from docparse.engines.open import open_engine

            if self.options.engine == "transformers" and (self.quiet or not sys.stderr.isatty()):
                from docparse.api import quiet_loading

                quiet_loading()  # download and weight-loading bars are for a person at a terminal, not for logs
            if self.options.engine == "openai":
                self.display.info(f"connecting to {self.options.server.api_base} ...")
            elif self.options.engine == "llamacpp":
                from docparse.engines.gguf import hub_name

                self.display.info(f"loading {hub_name(self.options.model.model)} in llama.cpp ...")
            else:
                self.display.info(f"loading {self.options.model.model} ...")
            started = time.monotonic()
            self.loading = True  # nothing is in flight yet: Ctrl-C stops at once
            try:
                self.engines.append(open_engine(self.options))
            finally:
                self.loading = False
            ready = f"model ready in {time.monotonic() - started:.1f} s, batch size {self.engines[0].batch_size}"
            summary = getattr(self.engines[0], "summary", None)  # engine, model, dtype, KV cache (vllm)
            self.display.info(f"{ready}; {summary()}" if callable(summary) else ready)
            if getattr(self.engines[0], "device", None) == "cpu" and self.options.page_timeout is None:
                self.display.info(CPU_HINT)
            served = self.engines[0].model_id
            if self.options.server.pick_single and served != self.options.model.model:
                self.display.info(f"no --model given: using {served}, the one model the server serves")
        return self.engines[0]

    def _failure(self) -> None:
        self.failed += 1
        if self.fail_fast and not self.stop.is_set():
            self.display.error("--fail-fast: stopping after this failure (pages in flight finish)")
            self.stop.set()

    def on_event(self, event: Event) -> None:
        if isinstance(event, FileStarted):
            self.report.started_file(event.source)
            self.display.started(event)
        elif isinstance(event, PageDone):
            self.report.page(event)
            self.display.page(event)
        else:
            self.file_done(event)
            now = time.monotonic()
            if self.report_path is not None and now - self.report_written >= REPORT_EVERY:
                self.report_written = now  # so that even a killed run leaves a recent report
                self._write_report()

    def file_done(self, event: FileDone) -> None:
        job = self.jobs[event.index]
        if event.error is not None:
            self.report.finished_file(event.source, "failed", event.seconds, str(event.error))
            if self.batch:
                self.display.error(str(event.error))
            else:
                self.single_error = event.error
            self.display.file_done(None)
            self._failure()
            return
        if event.interrupted or event.document is None:
            self.report.finished_file(event.source, "interrupted", event.seconds)
            return
        doc = event.document
        self.report.layer(event.source, doc, self.min_layer_coverage)
        for warning in layer_warnings(doc, self.min_layer_coverage):
            self.display.warning(f"{event.source} {warning}" if self.batch else warning)
        failed_pages = sum(page_failed(p, self.min_layer_coverage) for p in doc.pages)
        bad = document_failed(doc, self.max_page_error_rate, self.min_layer_coverage)
        if not self.batch:
            self.single = doc  # written once the run is over (stdout must carry nothing else)
        else:
            assert job.output is not None
            try:
                warnings = write_output(doc, self.write_options, job.output, self.root, self.options.raster.password)
            except DocparseError as exc:
                self.report.finished_file(event.source, "failed", event.seconds, str(exc))
                self.display.error(str(exc))
                self.display.file_done(None)
                self._failure()
                return
            for warning in warnings:
                self.display.warning(f"{event.source}: {warning}")
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
            self.display.error(f"{event.source}: {error}")
        self.display.file_done(summary if self.batch else None)
        if bad:
            self._failure()

    def _on_sigint(self, _signum: int, _frame: object) -> None:
        if (self.stop.is_set() and self.interrupted) or self.loading:
            raise KeyboardInterrupt
        self.interrupted = True
        self.stop.set()
        self.display.notice("interrupted: finishing the pages in flight (Ctrl-C again to stop at once)")

    def _write_report(self) -> None:
        if self.report_path is None:
            return
        try:
            self.report.write(self.report_path)
        except OSError as exc:
            self.display.error(f"--report {self.report_path}: cannot write ({exc.strerror or exc})")

    def run(self, cache: PageCache | None, report_path: Path | None) -> int:
        from docparse.run.scheduler import run_batch

        self.report_path = report_path
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if in_main else None
        try:
            with self.display:
                sources = [j.source for j in self.jobs]
                if self.cluster is not None:
                    from docparse.run.cluster import connect, run_cluster

                    self.display.info(f"joining the Ray cluster ({self.cluster.address}) ...")
                    connect(self.cluster.address)
                    run_cluster(sources, self.options, self.cluster, cache=cache, events=self.on_event,
                                stop=self.stop, info=self.display.info)  # fmt: skip
                else:
                    run_batch(sources, self.options, self.get_engine, cache=cache, events=self.on_event, stop=self.stop)
            code = self._exit_code()
            self.report.exit_code = code
        except DocparseError as exc:
            self.report.exit_code, self.report.error = exc.exit_code, str(exc)
            raise
        except KeyboardInterrupt:
            self.report.exit_code, self.report.error = EXIT_INTERRUPTED, "interrupted"
            self.display.notice("interrupted")
            raise
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
            for engine in self.engines:
                engine.close()
            self._write_report()
        if self.single_error is not None:
            raise self.single_error
        if self.single is not None:
            emit(self.single, self.write_options, self.jobs[0].output, password=self.options.raster.password)
        if self.batch and not self.interrupted:
            self.display.info(summary_line(self.report.totals()))
        if self.interrupted:
            totals = self.report.totals()
            self.display.notice(
                f"interrupted: {totals['converted']} of {plural(totals['files'], 'file')} written; run the same "
                "command again to resume (cached pages make no model call)"
            )
        return code

    def _exit_code(self) -> int:
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
