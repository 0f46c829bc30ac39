"""Batch inputs: files and folders on the command line -> (input file, output file) pairs, in a stable order.

Folders are walked recursively (symbolic links followed, each real folder entered once, so a
link loop ends; an unreadable folder is reported and passed over), hidden entries skipped. Each
output sits under the output folder at the input's path relative to the folder it was found in;
it can never land outside that folder. Two inputs that would write the same output (a.pdf and
a.png side by side) both keep their extension in the name (a.pdf.md, a.png.md).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from docparse.errors import UsageError
from docparse.formats import FORMAT_SUFFIX, INPUT_SUFFIXES


@dataclass(frozen=True, slots=True)
class Job:
    """One input to convert and where its output goes (None: stdout). `name` is how messages call it."""

    source: Path
    output: Path | None
    name: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What a batch will do: its jobs in order, and warnings about what the walk passed over."""

    jobs: tuple[Job, ...]
    warnings: tuple[str, ...]


def _matches(rel: PurePosixPath, patterns: Sequence[str]) -> bool:
    """A pattern with a '/' matches the path relative to its folder; one without, the name alone."""
    text = rel.as_posix()
    return any(fnmatch.fnmatchcase(text if "/" in p else rel.name, p) for p in patterns)


def walk(
    root: Path, globs: Sequence[str], excludes: Sequence[str], skip: Path | None = None
) -> tuple[list[PurePosixPath], list[str]]:
    """Files under `root` (relative paths, sorted), selected by `globs` (default: supported types), less `excludes`.

    `skip` (the output folder, when it lies inside) is not entered.
    """
    found: list[PurePosixPath] = []
    warnings: list[str] = []
    seen: set[tuple[int, int]] = set()
    skip_real = os.path.realpath(skip) if skip is not None else None

    def visit(folder: Path, rel: PurePosixPath) -> None:
        try:
            st = folder.stat()
        except OSError as exc:
            warnings.append(f"{folder}: cannot read folder ({exc.strerror or exc}); skipped")
            return
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            warnings.append(f"{folder}: already visited (a symbolic link loop?); skipped")
            return
        seen.add(ident)
        if skip_real is not None and os.path.realpath(folder) == skip_real:
            return
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            warnings.append(f"{folder}: cannot read folder ({exc.strerror or exc}); skipped")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child = rel / entry.name
            if excludes and _matches(child, excludes):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = not is_dir and entry.is_file(follow_symlinks=True)
            except OSError:
                continue
            if is_dir:
                visit(Path(entry.path), child)
            elif is_file:
                wanted = _matches(child, globs) if globs else Path(entry.name).suffix.lower() in INPUT_SUFFIXES
                if wanted:
                    found.append(child)
            elif entry.is_symlink():
                warnings.append(f"{entry.path}: broken symbolic link; skipped")

    visit(root, PurePosixPath())
    return found, warnings


def check_inputs(inputs: Sequence[Path]) -> None:
    """UsageError for the first input that does not exist (said before anything about -o)."""
    for path in inputs:
        if not path.exists() and not path.is_symlink():
            raise UsageError(f"{path}: no such file or folder")


def into_folder(source: Path, output: str | None, format: str | None) -> Path | None:
    """For one input file: the output file inside `output` when that names a folder (an existing one, or
    any path ending in a slash), named after the input (`-o out/` -> out/report.md); else None."""
    if output is None or output == "-" or not (output.endswith(("/", os.sep)) or Path(output).is_dir()):
        return None
    return Path(output) / (source.stem + FORMAT_SUFFIX[format or "md"])


def plan(
    inputs: Sequence[Path],
    output: Path | None,
    format: str,
    globs: Sequence[str] = (),
    excludes: Sequence[str] = (),
) -> Plan:
    """The jobs for `docparse INPUT... -o OUT`. One file and no folder: `output` is the output file (or
    None for stdout), as before batches. Otherwise `output` is a folder (required); a folder input's
    files mirror its tree there, a file input lands at the top. Raises UsageError for a missing input
    or an output that cannot be a folder. Order: inputs as given, each folder's files sorted.
    """
    check_inputs(inputs)
    batch = len(inputs) > 1 or any(p.is_dir() for p in inputs)
    if not batch:
        if globs or excludes:
            raise UsageError("--glob and --exclude select files inside folder inputs")
        return Plan((Job(inputs[0], output, str(inputs[0])),), ())
    if output is None or str(output) == "-":
        raise UsageError("several inputs or a folder need -o OUTPUT_FOLDER (one output file is written per input)")
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output}: exists and is not a folder (several inputs or a folder need an output folder)")
    suffix = FORMAT_SUFFIX[format]
    pairs: list[tuple[Path, PurePosixPath]] = []  # (input file, its path relative to the output folder)
    warnings: list[str] = []
    for path in inputs:
        if path.is_dir():
            files, notes = walk(path, globs, excludes, skip=output)
            warnings.extend(notes)
            pairs.extend((path / rel, rel) for rel in files)
        else:
            pairs.append((path, PurePosixPath(path.name)))
    return Plan(tuple(_jobs(pairs, output, suffix)), tuple(warnings))


def _jobs(pairs: list[tuple[Path, PurePosixPath]], output: Path, suffix: str) -> list[Job]:
    """Output names: the input's with the format's suffix; where two collide, each keeps its own extension,
    and a number after that where they still collide. Duplicate inputs (the same file twice) run once."""
    unique: list[tuple[Path, PurePosixPath]] = []
    real_seen: set[str] = set()
    for source, rel in pairs:
        real = os.path.realpath(source)
        if real not in real_seen:
            real_seen.add(real)
            unique.append((source, rel))
    plain = [rel.with_suffix(suffix) for _, rel in unique]
    counts: dict[str, int] = {}
    for rel in plain:
        counts[rel.as_posix().casefold()] = counts.get(rel.as_posix().casefold(), 0) + 1
    taken: set[str] = set()
    jobs: list[Job] = []
    for (source, rel), target in zip(unique, plain, strict=True):
        if counts[target.as_posix().casefold()] > 1:
            target = rel.with_name(rel.name + suffix)
        candidate, n = target, 2
        while candidate.as_posix().casefold() in taken:
            candidate = target.with_name(f"{target.stem}.{n}{suffix}")
            n += 1
        taken.add(candidate.as_posix().casefold())
        out = output.joinpath(*candidate.parts)
        if ".." in candidate.parts or not _inside(out, output):
            raise UsageError(f"{source}: its output {out} would fall outside -o {output}")
        jobs.append(Job(source, out, str(source)))
    return jobs


def _inside(path: Path, folder: Path) -> bool:
    a, b = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([a, b]) == b
