"""What an input file is, PDF or image, told from its first bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from docparse.errors import InputError, UsageError
from docparse.formats import PDF_SUFFIX

Kind = Literal["pdf", "image"]


def detect_kind(path: Path) -> Kind:
    """PDF or image, from the file's first bytes (the suffix only breaks ties); raises InputError."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory (directories come with batch conversion)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not head:
        raise InputError(f"{path} is empty (0 bytes)")
    if b"%PDF-" in head:
        return "pdf"
    if path.suffix.lower() == PDF_SUFFIX:
        raise InputError(f"{path} is not a PDF (no %PDF header)")
    return "image"
