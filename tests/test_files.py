"""Outputs written atomically: complete or absent, and readable like any file the user's umask allows."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from docparse.files import sha256_file, write_atomic


def test_an_output_gets_the_permissions_of_a_plain_file_not_the_temporary_files_private_ones(tmp_path: Path) -> None:
    plain = tmp_path / "plain.md"
    plain.write_text("x")  # what open() gives under this process's umask
    out = tmp_path / "out.md"
    write_atomic(out, "# Title\n")
    assert out.read_text() == "# Title\n"
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(b"one")
    first = sha256_file(path)
    path.write_bytes(b"two, longer")
    os.utime(path, ns=(1, 1))  # even with an old time: the size differs
    assert sha256_file(path) != first
    assert sha256_file(path) == sha256_file(path)
