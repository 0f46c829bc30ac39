"""The options of docparse's commands, each declared once (typer Annotated aliases), and the apps' settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from docparse.cli.help import PANEL_BATCH, PANEL_GENERAL, PANEL_INPUT, PANEL_LAYER, PANEL_OUTPUT, PANEL_RETRIES
from docparse.config import Fallback, Images
from docparse.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_MODEL, EXIT_OK, EXIT_USAGE
from docparse.formats import Format
from docparse.version import __version__

EXIT_CODES_HELP = (
    f"Exit codes: {EXIT_OK} everything converted; {EXIT_FAILED} some files or pages failed (the rest are "
    f"written; see --max-page-error-rate); {EXIT_USAGE} usage error; {EXIT_MODEL} the model could not be "
    f"loaded (or the server reached); {EXIT_INTERRUPTED} interrupted (what was complete is written; run "
    f"again to resume)."
)


def command_app(**settings: Any) -> typer.Typer:
    """A typer app as each docparse command has one: errors left to main, plain help, -h as --help."""
    return typer.Typer(
        **{"add_completion": False, **settings},
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _version(value: bool) -> None:
    if value:
        print(f"docparse {__version__}")
        raise typer.Exit(0)


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

# The convert command's own options, in the order --help lists them within each panel.
InputsArgument = Annotated[
    list[Path],
    typer.Argument(help="PDF or image files, or folders to convert.", show_default=False, metavar="INPUT"),
]
OutputPathOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file (format from its extension; '-' or none: stdout); a folder (DIR/, or one that "
        "exists) takes INPUT's name; with folders or several inputs, the output folder.",
        metavar="PATH",
        rich_help_panel=PANEL_OUTPUT,
    ),
]
GlobOption = Annotated[
    list[str] | None,
    typer.Option(
        "--glob",
        help="In folders, convert only files matching this pattern (name, or path with '/'); repeatable "
        "(default: every PDF and image).",
        rich_help_panel=PANEL_INPUT,
    ),
]
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        help="In folders, leave out files and folders matching this pattern; repeatable.",
        rich_help_panel=PANEL_INPUT,
    ),
]
PagesOption = Annotated[
    str | None,
    typer.Option(
        "--pages", help="Pages to convert, 1-based: e.g. 1-3,7,10- (default: all).", rich_help_panel=PANEL_INPUT
    ),
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password", envvar="DOCPARSE_PASSWORD", help="Password of an encrypted PDF.", rich_help_panel=PANEL_INPUT
    ),
]
KeepRawOption = Annotated[
    Path | None,
    typer.Option(
        "--keep-raw",
        help="Folder to save each page's raw answer with a JSON sidecar.",
        rich_help_panel=PANEL_OUTPUT,
    ),
]
MaxRetriesOption = Annotated[
    int,
    typer.Option(
        "--max-retries",
        help="Retries of a page whose answer loops or is cut off (penalty, sampling, then bands); 0: none.",
        min=0,
        rich_help_panel=PANEL_RETRIES,
    ),
]
PageTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--page-timeout",
        help="Seconds of model time one page may take, retries included; past it the page keeps what it has.",
        min=0.001,
        show_default="no limit",
        rich_help_panel=PANEL_RETRIES,
    ),
]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        envvar="DOCPARSE_CACHE_DIR",
        help="Folder of the page cache (raw model answers by file, page, model, prompt and settings).",
        show_default="the user cache folder, e.g. ~/.cache/docparse",
        rich_help_panel=PANEL_BATCH,
    ),
]
NoCacheOption = Annotated[
    bool,
    typer.Option(
        "--no-cache", help="Neither read nor store model answers in the page cache.", rich_help_panel=PANEL_BATCH
    ),
]
ReportOption = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Write a JSON report: each file and page, status, seconds, tokens, errors.",
        rich_help_panel=PANEL_BATCH,
    ),
]
FailFastOption = Annotated[
    bool,
    typer.Option(
        "--fail-fast",
        help="Stop at the first file that fails (pages in flight finish; exit 1).",
        rich_help_panel=PANEL_BATCH,
    ),
]
MaxPageErrorRateOption = Annotated[
    float,
    typer.Option(
        "--max-page-error-rate",
        help="A file fails (exit 1) when its share of failed pages is above this (0-1); at or below it, "
        "the file counts as converted.",
        min=0.0,
        max=1.0,
        rich_help_panel=PANEL_BATCH,
    ),
]
MinLayerCoverageOption = Annotated[
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
]
FallbackOption = Annotated[
    Fallback,
    typer.Option(
        "--fallback",
        help="text-layer: a page the model failed on (failed, or cut off or looping after every retry) "
        "takes its blocks from the PDF's text layer (status fallback-text-layer).",
        rich_help_panel=PANEL_LAYER,
    ),
]
SnapBoxesOption = Annotated[
    bool,
    typer.Option(
        "--snap-boxes",
        help="Tighten each text block's box to the PDF text-layer words it holds.",
        rich_help_panel=PANEL_LAYER,
    ),
]
VersionOption = Annotated[
    bool,
    typer.Option(
        "--version",
        help="Print the version and exit.",
        callback=_version,
        is_eager=True,
        rich_help_panel=PANEL_GENERAL,
    ),
]
