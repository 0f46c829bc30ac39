"""Where test data lives: tests/data in the repo, and ../shared beside the checkout (skipped if absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared"
QWENVL_FIXTURES = SHARED / "fixtures" / "qwenvl"
PDF_FIXTURES = SHARED / "fixtures" / "pdfs"


def shared_file(*parts: str) -> Path:
    """A file under ../shared, or skip the test with the reason when the checkout has no ../shared."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests read ../shared/fixtures beside the checkout")
    return path
