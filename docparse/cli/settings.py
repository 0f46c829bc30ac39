"""Defaults from docparse.toml files, for any command-line option: a flag beats the environment, which beats
a file, which beats the built-in default.

Files, the first one found winning per option: `docparse.toml` in the working folder or the nearest
folder above it (the project's), then the user's (`docparse.toml` in platformdirs' user config folder,
e.g. ~/.config/docparse/docparse.toml on Linux; DOCPARSE_CONFIG names another file instead). Keys are
the long option names without their dashes (`model`, `max-new-tokens`, `no-merge`; `_` works for `-`),
at the top level; a key no command takes is an error naming the file.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docparse.errors import UsageError

FILE_NAME = "docparse.toml"


@dataclass(frozen=True, slots=True)
class Setting:
    """One option's value from a file: the command parameter it sets, and which file said so."""

    param: str
    value: Any
    source: Path


def user_config_file() -> Path:
    env = os.environ.get("DOCPARSE_CONFIG")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir("docparse", appauthor=False)) / FILE_NAME


def project_config_file(start: Path | None = None) -> Path | None:
    """docparse.toml in `start` (the working folder) or the nearest folder above it, if any."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / FILE_NAME
        if path.is_file():
            return path
    return None


def config_files() -> list[Path]:
    """The files that are read, strongest first (those that exist)."""
    found = [project_config_file(), user_config_file()]
    return [p for p in found if p is not None and p.is_file()]


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def option_keys(params: Iterable[Any]) -> dict[str, str]:
    """File key -> parameter name, for a command's options (`max-new-tokens` -> `max_new_tokens`)."""
    keys: dict[str, str] = {}
    for param in params:
        if getattr(param, "param_type_name", None) != "option" or param.name in ("help", "version"):
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                keys[opt[2:]] = param.name
    return keys


def file_settings(commands: Sequence[dict[str, str]], files: Sequence[Path] | None = None) -> list[dict[str, Setting]]:
    """For each command (its option_keys), the settings the files give it: parameter name -> Setting.

    A key that no command takes, or a table, is a UsageError naming the file and the closest key."""
    known = {key for keys in commands for key in keys}
    out: list[dict[str, Setting]] = [{} for _ in commands]
    for path in reversed(list(config_files() if files is None else files)):  # the strongest file last
        for raw_key, value in read_file(path).items():
            key = raw_key.replace("_", "-")
            if key not in known or isinstance(value, dict):
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UsageError(f"{path}: unknown option {raw_key!r}{hint}")
            for keys, settings in zip(commands, out, strict=True):
                if key in keys:
                    settings[keys[key]] = Setting(keys[key], value, path)
    return out
