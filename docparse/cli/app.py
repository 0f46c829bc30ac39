"""The command line's entry point: dispatch to a command, and the one boundary that turns errors into exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import typer

from docparse.cli.config_cmd import config_app, default_map, schema_app
from docparse.cli.convert import convert_app
from docparse.cli.display import err
from docparse.cli.render import cache_app, render_app
from docparse.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, DocparseError


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"docparse: error: {message}", markup=False)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: dispatch `render` or the default convert command; turn every error into an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    subcommands = {"render": render_app, "cache": cache_app, "config": config_app, "schema": schema_app}
    if args[:1] and args[0] in subcommands:
        name, app, prog, args = args[0], subcommands[args[0]], f"docparse {args[0]}", args[1:]
    else:
        name, app, prog = "convert", convert_app, "docparse"
    try:
        defaults = default_map(name) if name in ("convert", "render", "cache") else {}
        result = app(args=args, prog_name=prog, standalone_mode=False, default_map=defaults)
    except DocparseError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # typer's own usage errors (unknown option, bad choice)
        _fail(f"{exc.format_message()} (see {prog} --help)", EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):  # the run has said so (typer itself may answer 130 instead)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): nothing more can be said there.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    except Exception as exc:
        if os.environ.get("DOCPARSE_DEBUG"):
            traceback.print_exc()
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (set DOCPARSE_DEBUG=1 for a traceback, and report it)",
            EXIT_FAILED,
        )
    sys.exit(result if isinstance(result, int) else EXIT_OK)
