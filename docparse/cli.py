"""The command line: the only code that prints to the user, exits, or picks exit codes."""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from docparse import __version__
from docparse.config import (
    AssembleOptions,
    Attn,
    Device,
    DType,
    Format,
    WriteOptions,
    convert_options,
    parse_batch_size,
)
from docparse.document import Document, Unit
from docparse.engines.base import Engine
from docparse.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_USAGE,
    DocparseError,
    UsageError,
)
from docparse.files import write_atomic
from docparse.pipeline import PageDone
from docparse.prompt import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    DEFAULT_MODEL,
    DEFAULT_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
    FACTOR,
)

EXIT_CODES_HELP = (
    f"Exit codes: {EXIT_OK} converted; {EXIT_FAILED} the input (or some of its pages) could not be converted "
    f"(what converted is still written); {EXIT_USAGE} usage error; {EXIT_MODEL} the model could not be "
    f"loaded; {EXIT_INTERRUPTED} interrupted."
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
    typer.Option("--output", "-o", help="Output file (format from its extension); '-' or none: stdout."),
]
KeepFurnitureOption = Annotated[
    bool,
    typer.Option(
        "--keep-furniture",
        help="Keep running headers, footers and page numbers in Markdown and HTML (JSON always has them).",
    ),
]
NoMergeOption = Annotated[
    bool,
    typer.Option("--no-merge", help="Do not join paragraphs and tables that a page break cut in two."),
]
PageMarkersOption = Annotated[
    bool, typer.Option("--page-markers", help="Mark where each page starts in Markdown: <!-- page N -->.")
]
PageBreaksOption = Annotated[
    bool, typer.Option("--page-breaks", help="Show a visible break between pages in HTML (a new page in print).")
]
ToOption = Annotated[Format | None, typer.Option("--to", help="Output format (default: from -o, else md).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only warnings and errors.")]

convert_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
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
        raise UsageError(f"cannot tell the format from -o {output}: use .md, .html or .json, or give --to")
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


def emit(doc: Document, options: WriteOptions, output: Path | None) -> None:
    """Write the document to -o (atomically) or to stdout."""
    from docparse.writers import write

    text = write(doc, options)
    if output is None or str(output) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        write_atomic(output, text)
    except OSError as exc:
        raise UsageError(f"-o {output}: cannot write ({exc.strerror or exc})") from None


def _reporter(quiet: bool) -> Callable[[PageDone], None]:
    def report(done: PageDone) -> None:
        page = done.page
        for warning in page.warnings:
            err.print(f"docparse: warning: page {page.number}: {warning}", markup=False)
        if quiet:
            return
        g = page.generation
        cost = f"{g.tokens_out} tokens in {g.seconds:.1f} s ({g.finish_reason})" if g else page.status
        err.print(
            f"docparse: {Path(done.source).name} page {page.number} ({done.index}/{done.total}): "
            f"{len(page.blocks)} blocks, {cost}",
            markup=False,
        )

    return report


def _exit_for(doc: Document) -> int:
    return EXIT_FAILED if any(p.status == "failed" for p in doc.pages) else EXIT_OK


@convert_app.command(
    help=(
        "Convert a PDF or image (PNG, JPEG, TIFF, WebP) to Markdown, HTML or JSON with Qwen2.5-VL. "
        "Markdown goes to stdout unless -o is given; progress and warnings go to stderr. "
        "To re-render saved raw model answers without a model: docparse render --help."
    ),
    epilog=EXIT_CODES_HELP,
)
def convert(
    input: Annotated[Path, typer.Argument(help="PDF or image file to convert.", show_default=False, metavar="INPUT")],
    output: OutputOption = None,
    to: ToOption = None,
    pages: Annotated[
        str | None, typer.Option("--pages", help="Pages to convert, 1-based: e.g. 1-3,7,10- (default: all).")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option("--password", envvar="DOCPARSE_PASSWORD", help="Password of an encrypted PDF."),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="Hugging Face model id, or a local checkpoint folder.")
    ] = DEFAULT_MODEL,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Model revision (branch, tag or commit) on the hub.")
    ] = None,
    device: Annotated[Device, typer.Option("--device", help="Where the model runs.")] = "auto",
    dtype: Annotated[
        DType,
        typer.Option(
            "--dtype",
            help="Weight dtype (auto: bfloat16 where the hardware runs it natively, else float32 or float16).",
        ),
    ] = "auto",
    attn: Annotated[
        Attn,
        typer.Option("--attn", help="Attention kernel (auto: flash_attention_2 if installed, else sdpa)."),
    ] = "auto",
    min_pixels: Annotated[
        int,
        typer.Option("--min-pixels", help="Smallest image the model sees, in pixels.", min=FACTOR * FACTOR),
    ] = DEFAULT_MIN_PIXELS,
    max_pixels: Annotated[
        int,
        typer.Option("--max-pixels", help="Largest image the model sees, in pixels.", min=FACTOR * FACTOR),
    ] = DEFAULT_MAX_PIXELS,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Most tokens the model may write per page.", min=1)
    ] = DEFAULT_MAX_NEW_TOKENS,
    prompt: Annotated[str, typer.Option("--prompt", help="The request sent with each page image.")] = DEFAULT_PROMPT,
    system_prompt: Annotated[str, typer.Option("--system-prompt", help="The system message.")] = DEFAULT_SYSTEM_PROMPT,
    batch_size: Annotated[
        str,
        typer.Option(
            "--batch-size",
            help="Pages per generate call, or auto: what free memory holds (CPU: 8 to 16, else 1; CUDA: up to 32).",
        ),
    ] = "auto",
    keep_raw: Annotated[
        Path | None,
        typer.Option("--keep-raw", help="Folder to save each page's raw answer with a JSON sidecar."),
    ] = None,
    keep_furniture: KeepFurnitureOption = False,
    no_merge: NoMergeOption = False,
    page_markers: PageMarkersOption = False,
    page_breaks: PageBreaksOption = False,
    max_retries: Annotated[
        int,
        typer.Option(
            "--max-retries",
            help="Retries of a page whose answer loops or is cut off (penalty, sampling, then bands); 0: none.",
            min=0,
        ),
    ] = 3,
    page_timeout: Annotated[
        float | None,
        typer.Option(
            "--page-timeout",
            help="Seconds of model time one page may take, retries included; past it the page keeps what it has.",
            min=0.001,
            show_default="no limit",
        ),
    ] = None,
    quiet: QuietOption = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True),
    ] = False,
) -> int:
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
    )
    write_options = WriteOptions(
        format=fmt, keep_furniture=keep_furniture, page_markers=page_markers, page_breaks=page_breaks
    )
    from docparse.pipeline import convert as run

    engine_holder: list[Engine] = []

    def get_engine() -> Engine:
        if not engine_holder:
            from docparse.engines.transformers import load_engine

            if quiet or not sys.stderr.isatty():
                # Download and weight-loading bars are for a person at a terminal, not for logs.
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            if not quiet:
                err.print(f"docparse: loading {model} ...", markup=False)
            started = time.monotonic()
            engine_holder.append(load_engine(options.model, options.raster.max_pixels))
            if not quiet:
                ready = f"model ready in {time.monotonic() - started:.1f} s, batch size {engine_holder[0].batch_size}"
                err.print(f"docparse: {ready}", markup=False)
        return engine_holder[0]

    try:
        doc = run(input, options, get_engine, progress=_reporter(quiet))
    finally:
        for engine in engine_holder:
            engine.close()
    emit(doc, write_options, output)
    return _exit_for(doc)


@render_app.command(
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
        typer.Option("--image-size", help="WIDTHxHEIGHT of the image the model saw, in pixels."),
    ] = None,
    page_size: Annotated[
        str | None,
        typer.Option(
            "--page-size",
            help="WIDTHxHEIGHT of the page in PDF points (or e.g. 1014x1532px for an image); boxes are mapped to it.",
        ),
    ] = None,
    output: OutputOption = None,
    to: ToOption = None,
    keep_furniture: KeepFurnitureOption = False,
    no_merge: NoMergeOption = False,
    page_markers: PageMarkersOption = False,
    page_breaks: PageBreaksOption = False,
    quiet: QuietOption = False,
) -> int:
    fmt = output_format(output, to)
    check_output(output)
    write_options = WriteOptions(
        format=fmt, keep_furniture=keep_furniture, page_markers=page_markers, page_breaks=page_breaks
    )
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

        emit(load_document(documents[0]), write_options, output)
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
    )
    emit(doc, write_options, output)
    return _exit_for(doc)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"docparse: error: {message}", markup=False)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: dispatch `render` or the default convert command; turn every error into an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    app, prog = (render_app, "docparse render") if args[:1] == ["render"] else (convert_app, "docparse")
    if app is render_app:
        args = args[1:]
    try:
        result = app(args=args, prog_name=prog, standalone_mode=False)
    except DocparseError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # typer's own usage errors (unknown option, bad choice)
        _fail(f"{exc.format_message()} (see {prog} --help)", EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted", EXIT_INTERRUPTED)
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
