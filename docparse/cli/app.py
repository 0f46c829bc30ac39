"""The command line: the only code that prints to the user, exits, or picks exit codes."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from glob import escape as glob_escape
from pathlib import Path
from typing import Annotated, NoReturn

import typer
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

from docparse.cli.help import (
    PANEL_BATCH,
    PANEL_CLUSTER,
    PANEL_ENGINE,
    PANEL_GENERAL,
    PANEL_INPUT,
    PANEL_LAYER,
    PANEL_MODEL,
    PANEL_OUTPUT,
    PANEL_RETRIES,
    PanelCommand,
)
from docparse.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    AssembleOptions,
    Attn,
    ClusterOptions,
    ConvertOptions,
    Device,
    DType,
    EngineKind,
    Fallback,
    Format,
    Images,
    Quantize,
    WriteOptions,
    convert_options,
    parse_batch_size,
)
from docparse.document import Document, Unit
from docparse.engines.base import Engine
from docparse.engines.gguf import DEFAULT_QUANT
from docparse.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_USAGE,
    DocparseError,
    InputError,
    UsageError,
)
from docparse.inputs.plan import Job
from docparse.layer.agreement import layer_warnings
from docparse.prompt import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    DEFAULT_MODEL,
    DEFAULT_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
    FACTOR,
)
from docparse.run.cache import PageCache
from docparse.run.events import Event, FileDone, FileStarted, PageDone
from docparse.run.report import FileStatus, Report, document_failed, page_failed
from docparse.version import __version__

EXIT_CODES_HELP = (
    f"Exit codes: {EXIT_OK} everything converted; {EXIT_FAILED} some files or pages failed (the rest are "
    f"written; see --max-page-error-rate); {EXIT_USAGE} usage error; {EXIT_MODEL} the model could not be "
    f"loaded (or the server reached); {EXIT_INTERRUPTED} interrupted (what was complete is written; run "
    f"again to resume)."
)

SUFFIX_FORMATS: dict[str, Format] = {
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
}

err = Console(stderr=True, highlight=False, soft_wrap=True)

# Options both commands take, declared once.
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file (format from its extension); '-' or none: stdout.",
        rich_help_panel=PANEL_OUTPUT,
    ),
]
KeepFurnitureOption = Annotated[
    bool,
    typer.Option(
        "--keep-furniture",
        help="Keep running headers, footers and page numbers in Markdown and HTML (JSON always has them).",
        rich_help_panel=PANEL_OUTPUT,
    ),
]
NoMergeOption = Annotated[
    bool,
    typer.Option(
        "--no-merge",
        help="Do not join paragraphs and tables that a page break cut in two.",
        rich_help_panel=PANEL_OUTPUT,
    ),
]
PageMarkersOption = Annotated[
    bool,
    typer.Option(
        "--page-markers", help="Mark where each page starts in Markdown: <!-- page N -->.", rich_help_panel=PANEL_OUTPUT
    ),
]
PageBreaksOption = Annotated[
    bool,
    typer.Option(
        "--page-breaks",
        help="Show a visible break between pages in HTML (a new page in print).",
        rich_help_panel=PANEL_OUTPUT,
    ),
]
ToOption = Annotated[
    Format | None, typer.Option("--to", help="Output format (default: from -o, else md).", rich_help_panel=PANEL_OUTPUT)
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only warnings and errors.", rich_help_panel=PANEL_GENERAL)
]
ImagesOption = Annotated[
    Images | None,
    typer.Option(
        "--images",
        help=(
            "Crops of figures, charts, chemical structures and music sheets: files (saved as PNG in "
            "<stem>_files/ beside -o), embed (data URIs in the output), none. "
            "Default: files with -o FILE, none on stdout (where files is an error)."
        ),
        show_default=False,
        rich_help_panel=PANEL_OUTPUT,
    ),
]
OnlineAssetsOption = Annotated[
    bool,
    typer.Option(
        "--online-assets",
        help="HTML may load abcjs from a CDN to draw ABC music as notation (default: self-contained, no script).",
        rich_help_panel=PANEL_OUTPUT,
    ),
]

convert_app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion (of the convert command's options)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cache_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="The page cache of raw model answers: where it is, how big, and clearing it.",
    no_args_is_help=True,
)
render_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"docparse {__version__}")
        raise typer.Exit(0)


def output_format(output: Path | None, to: Format | None) -> Format:
    """The format to write: --to, else the output file's extension, else Markdown."""
    by_suffix = SUFFIX_FORMATS.get(output.suffix.lower()) if output is not None and str(output) != "-" else None
    if to is not None and by_suffix is not None and to != by_suffix:
        raise UsageError(f"--to {to} disagrees with the extension of -o {output}")
    if to is not None:
        return to
    if output is not None and str(output) != "-" and by_suffix is None:
        raise UsageError(
            f"cannot tell the format from -o {output}: use .md, .html or .json, give --to, or end it with / "
            "for a folder"
        )
    return by_suffix or "md"


def parse_size(text: str, option: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UsageError(f"{option} takes WIDTHxHEIGHT in whole numbers, e.g. 1008x1540 (got {text!r})")
    return int(m.group(1)), int(m.group(2))


def parse_page_size(text: str) -> tuple[tuple[float, float], Unit]:
    """--page-size: WIDTHxHEIGHT in points, or with a `px` suffix for a page that was an image."""
    unit: Unit = "px" if text.strip().lower().endswith("px") else "pt"
    body = re.sub(r"(?i)\s*(px|pt)\s*$", "", text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*[xX×]\s*(\d+(?:\.\d+)?)\s*", body)
    if not m or float(m.group(1)) <= 0 or float(m.group(2)) <= 0:
        raise UsageError(f"--page-size takes WIDTHxHEIGHT in points (or ...px), e.g. 612x792 (got {text!r})")
    return (float(m.group(1)), float(m.group(2))), unit


def writable_folder(folder: Path, option: str) -> None:
    """Create `folder` if needed and check it can be written, before any model time is spent."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {folder}: cannot create ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {folder}: not writable")


def check_output(output: Path | None) -> None:
    if output is None or str(output) == "-":
        return
    if output.is_dir():
        raise UsageError(f"-o {output} is a directory: give a file name")
    writable_folder(output.parent, "-o")


def to_stdout(output: Path | None) -> bool:
    return output is None or str(output) == "-"


def images_mode(images: Images | None, output: Path | None) -> Images:
    """--images, by default files when writing a file and none on stdout (files cannot go there)."""
    if images is None:
        return "none" if to_stdout(output) else "files"
    if images == "files" and to_stdout(output):
        raise UsageError("--images files needs -o FILE (the crops go beside it): on stdout use --images embed or none")
    return images


def emit(doc: Document, options: WriteOptions, output: Path | None, password: str | None = None) -> None:
    """Write the document, with its crops as `options.images` asks, to -o (atomically) or to stdout."""
    from docparse.output import write_with_assets

    written = write_with_assets(doc, options, None if to_stdout(output) else output, password=password)
    for warning in written.warnings:
        err.print(f"docparse: warning: {warning}", markup=False)
    if to_stdout(output):
        sys.stdout.write(written.text)
        sys.stdout.flush()


def _exit_for(doc: Document) -> int:
    return EXIT_FAILED if any(p.status == "failed" for p in doc.pages) else EXIT_OK


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


def _reporter(quiet: bool) -> Callable[[PageDone], None]:
    display = Display(quiet, batch=False, files=1)
    display.bars = False  # `render` is quick: plain lines
    return display.page


@convert_app.command(
    cls=PanelCommand,
    help=(
        "Convert PDFs and images (PNG, JPEG, TIFF, WebP, BMP, GIF) to Markdown, HTML or JSON with Qwen2.5-VL. "
        "One file: Markdown goes to stdout unless -o names a file. Folders (walked recursively) and several "
        "inputs: -o names an output folder, where the inputs' tree is mirrored. Model answers are cached per "
        "page, so a re-run resumes where the last one stopped and another output format costs no model call. "
        "Progress and warnings go to stderr. "
        "To re-render saved raw model answers without a model: docparse render --help. "
        "Cache: docparse cache --help."
    ),
    epilog=EXIT_CODES_HELP,
)
def convert(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="PDF or image files, or folders to convert.", show_default=False, metavar="INPUT"),
    ],
    output_text: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Output file (format from its extension; '-' or none: stdout); a folder (DIR/, or one that "
            "exists) takes INPUT's name; with folders or several inputs, the output folder.",
            metavar="PATH",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = None,
    to: ToOption = None,
    globs: Annotated[
        list[str] | None,
        typer.Option(
            "--glob",
            help="In folders, convert only files matching this pattern (name, or path with '/'); repeatable "
            "(default: every PDF and image).",
            rich_help_panel=PANEL_INPUT,
        ),
    ] = None,
    excludes: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="In folders, leave out files and folders matching this pattern; repeatable.",
            rich_help_panel=PANEL_INPUT,
        ),
    ] = None,
    pages: Annotated[
        str | None,
        typer.Option(
            "--pages", help="Pages to convert, 1-based: e.g. 1-3,7,10- (default: all).", rich_help_panel=PANEL_INPUT
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password", envvar="DOCPARSE_PASSWORD", help="Password of an encrypted PDF.", rich_help_panel=PANEL_INPUT
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            envvar="DOCPARSE_MODEL",
            help="Hugging Face model id, or a local checkpoint folder (--engine openai: the server's model; "
            "default there: the one it serves).",
            show_default=DEFAULT_MODEL,
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision", help="Model revision (branch, tag or commit) on the hub.", rich_help_panel=PANEL_MODEL
        ),
    ] = None,
    device: Annotated[
        Device, typer.Option("--device", help="Where the model runs.", rich_help_panel=PANEL_MODEL)
    ] = "auto",
    dtype: Annotated[
        DType,
        typer.Option(
            "--dtype",
            help="Weight dtype (auto: bfloat16 where the hardware runs it natively, else float32 or float16).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = "auto",
    attn: Annotated[
        Attn,
        typer.Option(
            "--attn",
            help="Attention kernel (auto: flash_attention_2 if installed, else sdpa).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = "auto",
    min_pixels: Annotated[
        int,
        typer.Option(
            "--min-pixels",
            help="Smallest image the model sees, in pixels.",
            min=FACTOR * FACTOR,
            rich_help_panel=PANEL_MODEL,
        ),
    ] = DEFAULT_MIN_PIXELS,
    max_pixels: Annotated[
        int,
        typer.Option(
            "--max-pixels",
            help="Largest image the model sees, in pixels.",
            min=FACTOR * FACTOR,
            rich_help_panel=PANEL_MODEL,
        ),
    ] = DEFAULT_MAX_PIXELS,
    max_new_tokens: Annotated[
        int,
        typer.Option(
            "--max-new-tokens", help="Most tokens the model may write per page.", min=1, rich_help_panel=PANEL_MODEL
        ),
    ] = DEFAULT_MAX_NEW_TOKENS,
    prompt: Annotated[
        str, typer.Option("--prompt", help="The request sent with each page image.", rich_help_panel=PANEL_MODEL)
    ] = DEFAULT_PROMPT,
    system_prompt: Annotated[
        str, typer.Option("--system-prompt", help="The system message.", rich_help_panel=PANEL_MODEL)
    ] = DEFAULT_SYSTEM_PROMPT,
    batch_size: Annotated[
        str,
        typer.Option(
            "--batch-size",
            help="Pages per generate call, or auto: what free memory holds (CPU: 8 to 16, else 1; CUDA: up to 32).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = "auto",
    keep_raw: Annotated[
        Path | None,
        typer.Option(
            "--keep-raw",
            help="Folder to save each page's raw answer with a JSON sidecar.",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = None,
    keep_furniture: KeepFurnitureOption = False,
    no_merge: NoMergeOption = False,
    page_markers: PageMarkersOption = False,
    page_breaks: PageBreaksOption = False,
    images: ImagesOption = None,
    online_assets: OnlineAssetsOption = False,
    max_retries: Annotated[
        int,
        typer.Option(
            "--max-retries",
            help="Retries of a page whose answer loops or is cut off (penalty, sampling, then bands); 0: none.",
            min=0,
            rich_help_panel=PANEL_RETRIES,
        ),
    ] = 3,
    page_timeout: Annotated[
        float | None,
        typer.Option(
            "--page-timeout",
            help="Seconds of model time one page may take, retries included; past it the page keeps what it has.",
            min=0.001,
            show_default="no limit",
            rich_help_panel=PANEL_RETRIES,
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            envvar="DOCPARSE_CACHE_DIR",
            help="Folder of the page cache (raw model answers by file, page, model, prompt and settings).",
            show_default="the user cache folder, e.g. ~/.cache/docparse",
            rich_help_panel=PANEL_BATCH,
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Neither read nor store model answers in the page cache.", rich_help_panel=PANEL_BATCH
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write a JSON report: each file and page, status, seconds, tokens, errors.",
            rich_help_panel=PANEL_BATCH,
        ),
    ] = None,
    fail_fast: Annotated[
        bool,
        typer.Option(
            "--fail-fast",
            help="Stop at the first file that fails (pages in flight finish; exit 1).",
            rich_help_panel=PANEL_BATCH,
        ),
    ] = False,
    max_page_error_rate: Annotated[
        float,
        typer.Option(
            "--max-page-error-rate",
            help="A file fails (exit 1) when its share of failed pages is above this (0-1); at or below it, "
            "the file counts as converted.",
            min=0.0,
            max=1.0,
            rich_help_panel=PANEL_BATCH,
        ),
    ] = 0.0,
    min_layer_coverage: Annotated[
        float | None,
        typer.Option(
            "--min-layer-coverage",
            help="A page whose PDF text layer is held by the model's blocks below this share (0-1) counts as "
            "failed (exit 1, --max-page-error-rate); pages without a usable text layer are not judged.",
            min=0.0,
            max=1.0,
            show_default="off",
            rich_help_panel=PANEL_LAYER,
        ),
    ] = None,
    fallback: Annotated[
        Fallback,
        typer.Option(
            "--fallback",
            help="text-layer: a page the model failed on (failed, or cut off or looping after every retry) "
            "takes its blocks from the PDF's text layer (status fallback-text-layer).",
            rich_help_panel=PANEL_LAYER,
        ),
    ] = "none",
    snap_boxes: Annotated[
        bool,
        typer.Option(
            "--snap-boxes",
            help="Tighten each text block's box to the PDF text-layer words it holds.",
            rich_help_panel=PANEL_LAYER,
        ),
    ] = False,
    engine: Annotated[
        EngineKind,
        typer.Option(
            "--engine",
            envvar="DOCPARSE_ENGINE",
            help="Where the model runs: auto (llamacpp for a GGUF model; vllm with a CUDA GPU and vLLM installed; "
            "else transformers), transformers (here), vllm (vLLM embedded here), llamacpp (a GGUF model in "
            "llama.cpp, here) or openai (an OpenAI-compatible server: vLLM, SGLang).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = "auto",
    api_base: Annotated[
        str | None,
        typer.Option(
            "--api-base",
            envvar="DOCPARSE_API_BASE",
            help="--engine openai: the server's API address, e.g. http://host:8000/v1.",
            rich_help_panel=PANEL_ENGINE,
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            help="--engine openai: name of the environment variable holding the API key (default: no key).",
            metavar="VAR",
            rich_help_panel=PANEL_ENGINE,
        ),
    ] = None,
    served_model: Annotated[
        str | None,
        typer.Option(
            "--served-model",
            help="--engine openai: the model's name on the server (default: --model).",
            rich_help_panel=PANEL_ENGINE,
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", help="--engine openai: requests in flight at once.", min=1, rich_help_panel=PANEL_ENGINE
        ),
    ] = DEFAULT_CONCURRENCY,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="--engine openai: seconds one request may take before the page fails.",
            min=0.001,
            rich_help_panel=PANEL_ENGINE,
        ),
    ] = DEFAULT_TIMEOUT,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Run the batch on a Ray cluster: auto (RAY_ADDRESS or a running `ray start`), local (start one "
            "here), or an address such as ray://head:10001. Inputs and -o must be on a filesystem every node sees.",
            metavar="ADDRESS",
            rich_help_panel=PANEL_CLUSTER,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="--ray: engine actors (default: one per GPU, else one).",
            min=1,
            rich_help_panel=PANEL_CLUSTER,
        ),
    ] = None,
    gpus_per_worker: Annotated[
        float | None,
        typer.Option(
            "--gpus-per-worker",
            help="--ray: GPUs each engine actor holds (default: 1 if any).",
            min=0,
            rich_help_panel=PANEL_CLUSTER,
        ),
    ] = None,
    quant: Annotated[
        str,
        typer.Option(
            "--quant",
            help="--engine llamacpp: the GGUF quant picked from a hub repository, e.g. Q8_0.",
            rich_help_panel=PANEL_ENGINE,
        ),
    ] = DEFAULT_QUANT,
    mmproj: Annotated[
        str | None,
        typer.Option(
            "--mmproj",
            help="--engine llamacpp: the vision projector .gguf beside --model FILE.gguf (default: the repository's).",
            rich_help_panel=PANEL_ENGINE,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="--engine llamacpp: CPU threads (default: every core available).",
            min=1,
            rich_help_panel=PANEL_ENGINE,
        ),
    ] = None,
    quantize: Annotated[
        Quantize | None,
        typer.Option(
            "--quantize",
            help="--engine transformers on a CPU: int8 (dynamic int8 Linear layers).",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    tensor_parallel: Annotated[
        int,
        typer.Option(
            "--tensor-parallel",
            help="--engine vllm: GPUs on this host to shard the model over.",
            min=1,
            rich_help_panel=PANEL_ENGINE,
        ),
    ] = 1,
    gpu_memory_utilization: Annotated[
        float | None,
        typer.Option(
            "--gpu-memory-utilization",
            help="--engine vllm: share of each GPU's memory vLLM may take (weights, activations, KV cache).",
            min=0.0,
            max=1.0,
            show_default="vLLM's 0.92",
            rich_help_panel=PANEL_ENGINE,
        ),
    ] = None,
    quiet: QuietOption = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_version,
            is_eager=True,
            rich_help_panel=PANEL_GENERAL,
        ),
    ] = False,
) -> int:
    from docparse.inputs.plan import check_inputs, into_folder, plan

    check_inputs(inputs)
    cluster = cluster_options(ray, workers, gpus_per_worker, [*inputs, *([Path(output_text)] if output_text else [])])
    batch = len(inputs) > 1 or any(p.is_dir() for p in inputs)
    output = None if output_text is None else Path(output_text)
    if not batch:
        output = into_folder(inputs[0], output_text, to) or output
    if batch:
        if to is None and output is not None and output.suffix.lower() in SUFFIX_FORMATS and not output.is_dir():
            raise UsageError(f"-o {output} looks like a file: folders and several inputs need an output folder")
        fmt: Format = to or "md"
    else:
        fmt = output_format(output, to)
        check_output(output)
    if keep_raw is not None:
        writable_folder(keep_raw, "--keep-raw")
    options = convert_options(
        pages=pages,
        password=password,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        model=model,
        revision=revision,
        device=device,
        dtype=dtype,
        attn=attn,
        max_new_tokens=max_new_tokens,
        prompt=prompt,
        system_prompt=system_prompt,
        batch_size=parse_batch_size(batch_size),
        merge=not no_merge,
        keep_raw=keep_raw,
        max_retries=max_retries,
        page_timeout=page_timeout,
        engine=engine,
        api_base=api_base,
        api_key_env=api_key_env,
        served_model=served_model,
        concurrency=concurrency,
        timeout=timeout,
        fallback=fallback,
        snap_boxes=snap_boxes,
        quant=quant,
        mmproj=mmproj,
        threads=threads,
        quantize=quantize,
        tensor_parallel=tensor_parallel,
        gpu_memory_utilization=gpu_memory_utilization,
    )
    write_options = WriteOptions(
        format=fmt,
        keep_furniture=keep_furniture,
        page_markers=page_markers,
        page_breaks=page_breaks,
        images=images_mode(images, output),
        online_assets=online_assets,
    )
    if batch:  # --pages applies to each file: pages a shorter one lacks are skipped, with a warning
        options = replace(options, raster=replace(options.raster, skip_missing_pages=True))
    work = plan(inputs, output, fmt, globs or (), excludes or ())
    if batch and not work.jobs:
        raise UsageError(f"nothing to convert in {', '.join(map(str, inputs))} (no PDF or image files matched)")
    if batch and output is not None:
        writable_folder(output, "-o")
    if keep_raw is not None:
        stems: dict[str, Path] = {}
        for job in work.jobs:
            other = stems.setdefault(job.source.stem, job.source)
            if other != job.source:
                raise UsageError(
                    f"--keep-raw: {other} and {job.source} would save their raw answers under the same "
                    f"name ({job.source.stem}.page-N.html); convert them in separate runs"
                )
    if report is not None:
        writable_folder(report.parent, "--report")
    run = BatchRun(work.jobs, options, write_options, batch=batch, quiet=quiet, fail_fast=fail_fast,
                   max_page_error_rate=max_page_error_rate, min_layer_coverage=min_layer_coverage)  # fmt: skip
    run.root = output if batch else None
    run.cluster = cluster
    for warning in work.warnings:
        run.display.warning(warning)
    from docparse.run.cache import PageCache, default_cache_dir

    cache = None if no_cache else PageCache(cache_dir or default_cache_dir())
    return run.run(cache, report)


def cluster_options(
    address: str | None, workers: int | None, gpus_per_worker: float | None, paths: Sequence[Path]
) -> ClusterOptions | None:
    """--ray and its placement options, checked: None without --ray (where the others are an error)."""
    if address is None:
        if workers is not None or gpus_per_worker is not None:
            raise UsageError("--workers and --gpus-per-worker only apply with --ray")
        return None
    from docparse.run.cluster import check_paths

    check_paths(paths)
    return ClusterOptions(address=address, workers=workers, gpus_per_worker=gpus_per_worker)


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


def plural(count: int, noun: str) -> str:
    """ "1 page", "2 pages"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def summary_line(totals: dict[str, int]) -> str:
    """The closing line of a batch: files converted and failed, pages, and what the cache saved."""
    failed = f", {totals['failed']} failed" if totals["failed"] else ""
    return (
        f"done: {totals['converted']} of {plural(totals['files'], 'file')} converted{failed}; "
        f"{plural(totals['pages'], 'page')} "
        f"({totals['pages_failed']} failed, {totals['pages_cached']} from the cache, {totals['model_calls']} "
        "model calls)"
    )


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


@render_app.command(
    cls=PanelCommand,
    help=(
        "Turn saved raw model answers (one file per page, in order) into Markdown, HTML or JSON "
        "without loading a model. A --keep-raw sidecar (PAGE.json beside PAGE.html) supplies the "
        "image and page sizes; without them boxes stay in model pixels. Or re-render one document "
        "saved with --to json (DOC.json) to Markdown or HTML."
    ),
    epilog=EXIT_CODES_HELP,
)
def render(
    answers: Annotated[
        list[Path],
        typer.Argument(
            help="Raw answer files (.html), one per page, in page order; or one saved JSON document.",
            show_default=False,
            metavar="ANSWER...",
        ),
    ],
    image_size: Annotated[
        str | None,
        typer.Option(
            "--image-size", help="WIDTHxHEIGHT of the image the model saw, in pixels.", rich_help_panel=PANEL_OUTPUT
        ),
    ] = None,
    page_size: Annotated[
        str | None,
        typer.Option(
            "--page-size",
            help="WIDTHxHEIGHT of the page in PDF points (or e.g. 1014x1532px for an image); boxes are mapped to it.",
            rich_help_panel=PANEL_OUTPUT,
        ),
    ] = None,
    output: OutputOption = None,
    to: ToOption = None,
    keep_furniture: KeepFurnitureOption = False,
    no_merge: NoMergeOption = False,
    page_markers: PageMarkersOption = False,
    page_breaks: PageBreaksOption = False,
    images: ImagesOption = None,
    online_assets: OnlineAssetsOption = False,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="DOCPARSE_PASSWORD",
            help="Password of an encrypted source PDF (crops).",
            rich_help_panel=PANEL_INPUT,
        ),
    ] = None,
    quiet: QuietOption = False,
) -> int:
    fmt = output_format(output, to)
    check_output(output)
    write_options = WriteOptions(
        format=fmt,
        keep_furniture=keep_furniture,
        page_markers=page_markers,
        page_breaks=page_breaks,
        images=images_mode(images, output),
        online_assets=online_assets,
    )
    from docparse.run.keepraw import answer_files

    answers = answer_files(answers)  # sidecars and retries of the answers given are read with them
    documents = [a for a in answers if a.suffix.lower() == ".json"]
    if documents:
        if len(answers) != 1:
            raise UsageError("render takes one saved JSON document, or raw answers (.html), not both or several")
        if image_size or page_size or no_merge:
            raise UsageError(
                "a saved JSON document is written as it was assembled: --image-size, --page-size and "
                "--no-merge apply to raw answers only"
            )
        from docparse.pipeline import load_document

        emit(load_document(documents[0]), write_options, output, password=password)
        return EXIT_OK
    img = parse_size(image_size, "--image-size") if image_size else None
    page = parse_page_size(page_size) if page_size else None
    if page is not None and img is None:
        raise UsageError("--page-size needs --image-size (the size the model saw) to map boxes")
    from docparse.pipeline import render as run

    doc = run(
        answers,
        image_size=img,
        page_size=page[0] if page else None,
        page_unit=page[1] if page else "pt",
        progress=_reporter(quiet),
        assemble_options=AssembleOptions(merge=not no_merge),
        password=password,
    )
    emit(doc, write_options, output, password=password)
    return _exit_for(doc)


CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        envvar="DOCPARSE_CACHE_DIR",
        help="Folder of the page cache (default: the user cache folder, e.g. ~/.cache/docparse).",
        rich_help_panel=PANEL_BATCH,
    ),
]


@cache_app.command("info", help="Print where the page cache is, how many entries it holds and their size.")
def cache_info(cache_dir: CacheDirOption = None) -> int:
    from docparse.run.cache import PageCache, default_cache_dir

    stats = PageCache(cache_dir or default_cache_dir()).stats()
    print(f"cache: {stats.path}")
    print(f"answers: {stats.answers}")
    print(f"pages: {stats.pages}")
    print(f"size: {stats.bytes / 1e6:.1f} MB")
    return EXIT_OK


@cache_app.command("clear", help="Delete every entry of the page cache (only docparse's own files).")
def cache_clear(cache_dir: CacheDirOption = None) -> int:
    from docparse.run.cache import PageCache, default_cache_dir

    cache = PageCache(cache_dir or default_cache_dir())
    removed = cache.clear()
    print(f"removed {removed} entries from {cache.root}")
    return EXIT_OK


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"docparse: error: {message}", markup=False)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: dispatch `render` or the default convert command; turn every error into an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    from docparse.cli.config_cmd import config_app, default_map, schema_app

    subcommands = {"render": render_app, "cache": cache_app, "config": config_app, "schema": schema_app}
    if args[:1] and args[0] in subcommands:
        name, app, prog, args = args[0], subcommands[args[0]], f"docparse {args[0]}", args[1:]
    else:
        name, app, prog = "convert", convert_app, "docparse"
    try:
        defaults = default_map(name) if name in ("convert", "render", "cache") else {}
        result = app(args=args, prog_name=prog, standalone_mode=False, default_map=defaults)
    except DocparseError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # typer's own usage errors (unknown option, bad choice)
        _fail(f"{exc.format_message()} (see {prog} --help)", EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):  # the run has said so (typer itself may answer 130 instead)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): nothing more can be said there.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    except Exception as exc:
        if os.environ.get("DOCPARSE_DEBUG"):
            traceback.print_exc()
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (set DOCPARSE_DEBUG=1 for a traceback, and report it)",
            EXIT_FAILED,
        )
    sys.exit(result if isinstance(result, int) else EXIT_OK)
