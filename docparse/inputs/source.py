"""The source file a saved document came from, found again (crops and the text-layer check re-read it)."""

from __future__ import annotations

from pathlib import Path

from docparse.document import Document
from docparse.files import sha256_file


def find_source(doc: Document) -> tuple[Path | None, str | None]:
    """The source file the document came from, if it is still there and unchanged; else a reason.

    A relative source is looked for from the working folder, then beside the first raw answer it
    was rendered from. When the document records the source's SHA-256, a file that differs is not used.
    """
    if not doc.source:
        return None, "the document names no source file"
    source = Path(doc.source)
    candidates = [source]
    rendered = doc.metadata.get("rendered_from")
    if isinstance(rendered, list) and doc.source in rendered:
        return None, "the answers were rendered without a --keep-raw sidecar naming their source file"
    if not source.is_absolute() and isinstance(rendered, list) and rendered and isinstance(rendered[0], str):
        candidates.append(Path(rendered[0]).parent / source)
        candidates.append(Path(rendered[0]).parent / source.name)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        return None, f"the source {doc.source} is not there"
    digest = doc.metadata.get("source_sha256")
    if isinstance(digest, str) and sha256_file(found) != digest:
        return None, f"{found} is not the file the document was made from (its SHA-256 differs)"
    return found, None
