"""Batch inputs: the folder walk (order, patterns, links, unreadable folders) and where each output goes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docparse.errors import UsageError
from docparse.inputs.plan import plan


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"%PDF-1.4\n")
    return path


def outputs(root: Path, out: Path, **kw: object) -> dict[str, str]:
    work = plan([root], out, "md", **kw)  # type: ignore[arg-type]
    return {j.source.relative_to(root).as_posix(): j.output.relative_to(out).as_posix() for j in work.jobs if j.output}


def test_a_folder_mirrors_its_tree_in_a_stable_order(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for name in ["b.pdf", "a.PDF", "sub/report.pdf", "sub/deeper/scan.tiff", "notes.txt", ".hidden/x.pdf", "c.png"]:
        touch(docs / name)
    work = plan([docs], tmp_path / "out", "md")
    assert [j.source.relative_to(docs).as_posix() for j in work.jobs] == [
        "a.PDF",
        "b.pdf",
        "c.png",
        "sub/deeper/scan.tiff",
        "sub/report.pdf",
    ]
    assert outputs(docs, tmp_path / "out")["sub/report.pdf"] == "sub/report.md"
    assert plan([docs], tmp_path / "out", "json").jobs[0].output == tmp_path / "out" / "a.json"


def test_glob_and_exclude_patterns(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for name in ["a.pdf", "b.png", "drafts/c.pdf", "sub/d.pdf", "sub/e.pdf"]:
        touch(docs / name)
    assert sorted(outputs(docs, tmp_path / "o", globs=["*.pdf"])) == ["a.pdf", "drafts/c.pdf", "sub/d.pdf", "sub/e.pdf"]
    assert sorted(outputs(docs, tmp_path / "o", globs=["sub/*.pdf"])) == ["sub/d.pdf", "sub/e.pdf"]
    assert sorted(outputs(docs, tmp_path / "o", excludes=["drafts", "e.*"])) == ["a.pdf", "b.png", "sub/d.pdf"]


def test_outputs_that_would_collide_keep_their_extension(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for name in ["a.pdf", "a.png", "b.pdf"]:
        touch(docs / name)
    got = outputs(docs, tmp_path / "out")
    assert got == {"a.pdf": "a.pdf.md", "a.png": "a.png.md", "b.pdf": "b.md"}
    # Two inputs of the same name from different places on one command line.
    other = touch(tmp_path / "elsewhere" / "b.pdf")
    work = plan([docs, other], tmp_path / "out", "md")
    names = [j.output.name for j in work.jobs if j.output]
    assert len(names) == len(set(names)) == 4
    assert sorted(names) == ["a.pdf.md", "a.png.md", "b.pdf.2.md", "b.pdf.md"]


def test_symlink_loops_end_and_every_output_stays_inside_the_output_folder(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    touch(docs / "a.pdf")
    touch(docs / "sub" / "b.pdf")
    (docs / "sub" / "up").symlink_to("..")
    (docs / "sub" / "self").symlink_to(".")
    (docs / "dangling.pdf").symlink_to(tmp_path / "nowhere.pdf")
    out = tmp_path / "out"
    work = plan([docs], out, "md")
    assert [j.source.relative_to(docs).as_posix() for j in work.jobs] == ["a.pdf", "sub/b.pdf"]
    assert any("loop" in w for w in work.warnings)
    assert any("broken symbolic link" in w for w in work.warnings)
    for job in work.jobs:
        assert job.output is not None
        assert os.path.commonpath([os.path.abspath(job.output), out]) == str(out)


def test_an_unreadable_folder_is_reported_and_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = tmp_path / "docs"
    touch(docs / "a.pdf")
    touch(docs / "locked" / "secret.pdf")
    real_scandir = os.scandir

    def scandir(path: str | Path) -> object:
        if Path(path).name == "locked":  # as the walk sees a folder it may not list (tests may run as root)
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    work = plan([docs], tmp_path / "out", "md")
    assert [j.source.name for j in work.jobs] == ["a.pdf"]
    assert any("locked" in w and "Permission denied" in w for w in work.warnings)


def test_an_output_folder_inside_the_input_folder_is_not_walked(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    touch(docs / "a.pdf")
    touch(docs / "out" / "old.pdf")
    assert list(outputs(docs, docs / "out")) == ["a.pdf"]


@pytest.mark.parametrize(
    ("inputs", "output", "needle"),
    [
        (["docs"], None, "-o OUTPUT_FOLDER"),
        (["docs", "x.pdf"], "-", "-o OUTPUT_FOLDER"),
        (["docs"], "file.txt", "not a folder"),
        (["missing"], "out", "no such file"),
    ],
)
def test_folder_inputs_need_an_output_folder(
    tmp_path: Path, inputs: list[str], output: str | None, needle: str
) -> None:
    touch(tmp_path / "docs" / "a.pdf")
    touch(tmp_path / "x.pdf")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UsageError, match=needle):
        plan(
            [tmp_path / i for i in inputs],
            None if output is None else (tmp_path / output if output != "-" else Path("-")),
            "md",
        )


def test_one_file_keeps_its_output_file_or_stdout(tmp_path: Path) -> None:
    pdf = touch(tmp_path / "a.pdf")
    assert plan([pdf], None, "md").jobs[0].output is None
    assert plan([pdf], tmp_path / "x.html", "html").jobs[0].output == tmp_path / "x.html"
