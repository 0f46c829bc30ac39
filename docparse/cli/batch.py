"""The convert command's run as a person sees it: the engine's loading lines, progress, and the closing lines."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from docparse.cli.destination import emit
from docparse.cli.display import Display, plural, summary_line
from docparse.config import ClusterOptions, ConvertOptions, WriteOptions
from docparse.engines.base import Engine
from docparse.inputs.plan import Job
from docparse.run.batch import Batch, BatchPolicy

CPU_HINT = (
    "on a CPU a page takes minutes (the 3B model: about 7 before its first token, then about 1 s a token) and "
    "nothing bounds it: try --page-timeout 900 --max-new-tokens 2048 --max-pixels 602112 (README: Quick start)"
)


def open_engine_saying(options: ConvertOptions, display: Display) -> Engine:
    """Open the engine, saying what loads (or which server answers), how long it took and what it runs."""
    from docparse.engines.open import open_engine

    if options.engine == "transformers" and (display.quiet or not sys.stderr.isatty()):
        from docparse.api import quiet_loading

        quiet_loading()  # download and weight-loading bars are for a person at a terminal, not for logs
    if options.engine == "openai":
        display.info(f"connecting to {options.server.api_base} ...")
    elif options.engine == "llamacpp":
        from docparse.engines.gguf import hub_name

        display.info(f"loading {hub_name(options.model.model)} in llama.cpp ...")
    else:
        display.info(f"loading {options.model.model} ...")
    started = time.monotonic()
    engine = open_engine(options)
    ready = f"model ready in {time.monotonic() - started:.1f} s, batch size {engine.batch_size}"
    summary = getattr(engine, "summary", None)  # engine, model, dtype, KV cache (vllm)
    display.info(f"{ready}; {summary()}" if callable(summary) else ready)
    if getattr(engine, "device", None) == "cpu" and options.page_timeout is None:
        display.info(CPU_HINT)
    if options.server.pick_single and engine.model_id != options.model.model:
        display.info(f"no --model given: using {engine.model_id}, the one model the server serves")
    return engine


def run_jobs(
    jobs: Sequence[Job],
    options: ConvertOptions,
    write_options: WriteOptions,
    *,
    batch: bool,
    quiet: bool,
    policy: BatchPolicy,
    root: Path | None,
    cluster: ClusterOptions | None,
    warnings: Sequence[str],
    cache_dir: Path | None,
    no_cache: bool,
    report: Path | None,
) -> int:
    """Run the jobs (docparse.run.batch) with progress on stderr; one file's document goes to -o or stdout
    at the end. Returns the exit code."""
    display = Display(quiet, batch, len(jobs))
    run = Batch(jobs, options, write_options, display, lambda: open_engine_saying(options, display),
                batch=batch, policy=policy, root=root, cluster=cluster)  # fmt: skip
    for warning in warnings:
        display.warning(warning)
    from docparse.run.cache import PageCache, default_cache_dir

    cache = None if no_cache else PageCache(cache_dir or default_cache_dir())
    code = run.run(cache, report, showing=display)
    if run.single is not None:
        emit(run.single, write_options, jobs[0].output, password=options.raster.password)
    if batch and not run.interrupted:
        display.info(summary_line(run.report.totals()))
    if run.interrupted:
        totals = run.report.totals()
        display.notice(
            f"interrupted: {totals['converted']} of {plural(totals['files'], 'file')} written; run the same "
            "command again to resume (cached pages make no model call)"
        )
    return code
