"""`docparse render` (saved raw answers or a saved JSON document, without a model) and `docparse cache`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from docparse.cli.destination import check_output, emit, output_format, output_options
from docparse.cli.display import reporter
from docparse.cli.help import PANEL_BATCH, PANEL_INPUT, PANEL_OUTPUT, PanelCommand
from docparse.cli.options import (
    EXIT_CODES_HELP,
    ImagesOption,
    KeepFurnitureOption,
    NoMergeOption,
    OnlineAssetsOption,
    OutputOption,
    PageBreaksOption,
    PageMarkersOption,
    QuietOption,
    ToOption,
    command_app,
)
from docparse.config import AssembleOptions
from docparse.document import Document, Unit
from docparse.errors import EXIT_FAILED, EXIT_OK, UsageError

render_app = command_app()
cache_app = command_app(
    help="The page cache of raw model answers: where it is, how big, and clearing it.", no_args_is_help=True
)


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


def exit_for(doc: Document) -> int:
    return EXIT_FAILED if any(p.failed for p in doc.pages) else EXIT_OK


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
    given = dict(locals())  # the parameters by name, as WriteOptions names its fields
    fmt = output_format(output, to)
    check_output(output)
    write_options = output_options(given, fmt, output)
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
        progress=reporter(quiet),
        assemble_options=AssembleOptions(merge=not no_merge),
        password=password,
    )
    emit(doc, write_options, output, password=password)
    return exit_for(doc)


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
