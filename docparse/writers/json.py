"""Document -> JSON: the model's own versioned serialisation, described by the shipped JSON Schema."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from docparse.config import WriteOptions
from docparse.document import Document

SCHEMA_RESOURCE = "schema/document.schema.json"


def write_json(doc: Document, options: WriteOptions) -> str:
    """`Document.to_json`: the whole document, furniture included, whatever the other options say."""
    return doc.to_json()


def document_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every `write_json` output validates against."""
    schema: dict[str, Any] = json.loads(files("docparse").joinpath(SCHEMA_RESOURCE).read_text("utf-8"))
    return schema
