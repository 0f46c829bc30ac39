"""Where the output goes: the format from --to or -o, checks of -o and other folders, --images, stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from docparse.cli.display import err
from docparse.config import Images, WriteOptions
from docparse.document import Document
from docparse.errors import UsageError
from docparse.formats import FORMAT_SUFFIX, SUFFIX_FORMATS, Format
from docparse.keywords import write_options

_WRITTEN = list(FORMAT_SUFFIX.values())
_SUFFIX_LIST = f"{', '.join(_WRITTEN[:-1])} or {_WRITTEN[-1]}"  # ".md, .html or .json"


def output_format(output: Path | None, to: Format | None) -> Format:
    """The format to write: --to, else the output file's extension, else Markdown."""
    by_suffix = SUFFIX_FORMATS.get(output.suffix.lower()) if output is not None and str(output) != "-" else None
    if to is not None and by_suffix is not None and to != by_suffix:
        raise UsageError(f"--to {to} disagrees with the extension of -o {output}")
    if to is not None:
        return to
    if output is not None and str(output) != "-" and by_suffix is None:
        raise UsageError(
            f"cannot tell the format from -o {output}: use {_SUFFIX_LIST}, give --to, or end it with / for a folder"
        )
    return by_suffix or "md"


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


def output_options(given: Mapping[str, Any], fmt: Format, output: Path | None) -> WriteOptions:
    """A command's write record from its parameters by name, with the format and --images worked out."""
    return write_options(given, format=fmt, images=images_mode(given["images"], output))


def emit(doc: Document, options: WriteOptions, output: Path | None, password: str | None = None) -> None:
    """Write the document, with its crops as `options.images` asks, to -o (atomically) or to stdout."""
    from docparse.output import write_with_assets

    written = write_with_assets(doc, options, None if to_stdout(output) else output, password=password)
    for warning in written.warnings:
        err.print(f"docparse: warning: {warning}", markup=False)
    if to_stdout(output):
        sys.stdout.write(written.text)
        sys.stdout.flush()
