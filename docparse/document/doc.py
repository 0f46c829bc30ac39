"""A whole document (its pages, source, metadata, title) and its versioned JSON contract."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from docparse.document.blocks import JSONValue
from docparse.document.json import SchemaError, encoded, page_from_json, page_to_json
from docparse.document.page import Page

SCHEMA_VERSION = "1.3"


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """A whole document: its pages in order, what produced it, and its title where one was found.

    `to_json`/`from_json` are the versioned JSON contract (docparse/schema/document.schema.json).
    """

    source: str
    pages: tuple[Page, ...]
    metadata: Mapping[str, JSONValue] = field(default_factory=dict)
    title: str | None = None
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> str:
        """The document as JSON text (UTF-8, indented, ending in a newline); valid against the shipped schema."""
        return json.dumps(document_to_json(self), ensure_ascii=False, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> Document:
        """A document from JSON text (or its parsed object); SchemaError when it is not a docparse document."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise SchemaError(f"not JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise SchemaError("a docparse document is a JSON object")
        return document_from_json(data)


def document_to_json(doc: Document) -> dict[str, JSONValue]:
    sizes = {p.number: (p.width, p.height) for p in doc.pages}
    return {
        "schema_version": doc.schema_version,
        "source": doc.source,
        "title": doc.title,
        "metadata": encoded(doc.metadata),
        "pages": [page_to_json(p, sizes) for p in doc.pages],
    }


def document_from_json(d: Mapping[str, Any]) -> Document:
    """Inverse of document_to_json; raises SchemaError on a document of another shape or version."""
    version = d.get("schema_version")
    if not isinstance(version, str) or version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaError(f"unsupported schema_version {version!r} (this docparse reads {SCHEMA_VERSION})")
    title = d.get("title")
    try:
        # An older minor version reads with the newer fields at their defaults, and is written back
        # in the current version.
        return Document(
            source=str(d["source"]),
            pages=tuple(page_from_json(p) for p in d["pages"]),
            metadata=dict(d.get("metadata", {})),
            title=str(title) if title is not None else None,
            schema_version=SCHEMA_VERSION,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"bad document: {exc}") from exc
