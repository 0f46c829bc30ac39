"""Shared fixtures: a tiny random Qwen2.5-VL checkpoint folder, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that loads like a real Qwen2.5-VL checkpoint through `--model PATH` (random weights)."""
    from tests.tiny_model import build_tiny_model  # imports torch: only for tests that ask for it

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2_5_vl"))


@pytest.fixture(autouse=True)
def _own_page_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets an empty page cache of its own (subprocesses inherit it), never the user's."""
    monkeypatch.setenv("DOCPARSE_CACHE_DIR", str(tmp_path_factory.mktemp("page-cache")))
    # ... and no user docparse.toml (docparse.cli.settings) reaches it.
    monkeypatch.setenv("DOCPARSE_CONFIG", str(tmp_path_factory.mktemp("config") / "docparse.toml"))
