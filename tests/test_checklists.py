"""ARCHITECTURE.md's checklists are backed by the type checker: a new block type or engine kind makes mypy name
every place that must decide about it (run on a copy of the package with the new kind added)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

pytestmark = pytest.mark.slow  # two mypy runs over a copy of the package without a cache (about a minute)


Edit = tuple[str, str, str]  # a file under docparse/, the text there, what it becomes


def mypy_errors(tmp_path: Path, edits: list[Edit]) -> set[str]:
    """The `module.function`s mypy reports errors in, after `edits` to a copy of the package."""
    copy = tmp_path / "docparse"
    shutil.copytree(REPO / "docparse", copy, ignore=shutil.ignore_patterns("__pycache__"))
    for relative, old, new in edits:
        path = copy / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{relative} no longer holds {old!r}: update this test with the code"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "-p",
            "docparse",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    places = set()
    for line in result.stdout.splitlines():
        found = re.match(r"docparse/(\S+?)\.py:(\d+): error", line)
        if found:
            source = (copy / f"{found.group(1)}.py").read_text(encoding="utf-8").splitlines()
            above = reversed(source[: int(found.group(2))])  # the function the error is in: the nearest def above
            name = next((m.group(1) for s in above if (m := re.match(r"\s*def (\w+)", s))), "")
            places.add(f"{found.group(1)}.{name}")
    return places


def test_a_new_block_type_is_named_everywhere_it_must_be_decided(tmp_path: Path) -> None:
    # the checklist's first step: the class, the Block union, the type name
    poem = "@dataclass(frozen=True, slots=True, kw_only=True)\nclass Poem(BlockBase):\n    verse: str\n\n\n"
    places = mypy_errors(
        tmp_path,
        [
            (
                "document/blocks.py",
                "@dataclass(frozen=True, slots=True, kw_only=True)\nclass Other(",
                poem + "@dataclass(frozen=True, slots=True, kw_only=True)\nclass Other(",
            ),
            (
                "document/blocks.py",
                "| Chemistry | Music | Code | Other\n",
                "| Chemistry | Music | Code | Other | Poem\n",
            ),
            ("document/blocks.py", '"music", "code", "other"', '"music", "code", "other", "poem"'),
        ],
    )
    expected = {
        "document/blocks.block_type_name",
        "document/blocks.block_text",
        "document/json._decode",
        "writers/html_blocks.block_html",
        "writers/markdown.block_markdown",
        "reader/repetition._collapse_block",
        "layer/compare.comparison",
        "assemble/common.prose",
        "assemble/roles._takes_caption",
    }
    assert expected <= places, f"mypy did not name {sorted(expected - places)}; it named {sorted(places)}"


def test_a_new_engine_kind_is_named_where_engines_are_opened(tmp_path: Path) -> None:
    places = mypy_errors(tmp_path, [("engines/choice.py", '"vllm", "llamacpp"]', '"vllm", "llamacpp", "mlx"]')])
    assert "engines/open.open_engine" in places, sorted(places)
