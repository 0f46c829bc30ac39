"""`docparse config` (each option's value and where it comes from) and `docparse schema`; file defaults for main."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from docparse.cli.convert import convert_app
from docparse.cli.options import command_app
from docparse.cli.render import cache_app, render_app
from docparse.cli.settings import Setting, file_settings, option_keys, project_config_file, user_config_file
from docparse.errors import EXIT_OK

config_app = command_app()
schema_app = command_app()


def _commands() -> dict[str, Any]:
    """The click commands whose options a file may set, by the name main dispatches them under."""
    return {name: typer.main.get_command(app) for name, app in (("convert", convert_app), ("render", render_app),
                                                                 ("cache", cache_app))}  # fmt: skip


def _file_maps() -> dict[str, dict[str, Setting]]:
    commands = _commands()
    subs: list[tuple[str, Any]] = []
    for name, cmd in commands.items():
        if isinstance(cmd, TyperGroup):
            subs.extend((f"{name} {sub}", c) for sub, c in cmd.commands.items())
        else:
            subs.append((name, cmd))
    maps = file_settings([option_keys(cmd.params) for _, cmd in subs])
    return dict(zip((name for name, _ in subs), maps, strict=True))


def default_map(command: str) -> dict[str, Any]:
    """click's default_map for `command` ("convert", "render", "cache") from the docparse.toml files."""
    maps = _file_maps()
    if command == "cache":
        return {sub.split(" ", 1)[1]: {k: s.value for k, s in m.items()} for sub, m in maps.items() if " " in sub}
    return {k: s.value for k, s in maps.get(command, {}).items()}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


@config_app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help=(
        "Print each option of `docparse INPUT` with the value a run would take and where it comes from "
        "(flag > environment > docparse.toml > default), as lines for a docparse.toml. Options given "
        "after `config` count as flags."
    ),
)
def config(ctx: typer.Context) -> int:
    from typer._click.core import ParameterSource

    command = _commands()["convert"]
    files = _file_maps()["convert"]
    print(f"# project file: {project_config_file() or f'none (./{user_config_file().name})'}")
    print(f"# user file: {user_config_file()}{'' if user_config_file().is_file() else ' (none)'}")
    print("# precedence: flag > environment > file > default")
    run = command.make_context(
        "docparse", list(ctx.args), default_map={k: s.value for k, s in files.items()}, resilient_parsing=True
    )
    for param in command.params:
        if param.param_type_name != "option" or param.name in ("help", "version"):
            continue
        key = max(param.opts, key=len).lstrip("-")
        source = run.get_parameter_source(param.name)
        where = {
            ParameterSource.COMMANDLINE: "flag",
            ParameterSource.ENVIRONMENT: f"environment {param.envvar}",
            ParameterSource.DEFAULT_MAP: f"file {files[param.name].source}" if param.name in files else "",
        }.get(source, "default") if source is not None else "default"  # fmt: skip
        value = run.params.get(param.name)
        if param.name == "password" and value:
            value = "(set, not shown)"
        line = f"{key} = {_toml(value)}" if value not in (None, []) else f"# {key} = (not set)"
        print(f"{line:<48} # {where}")
    return EXIT_OK


@schema_app.command(help="Print the JSON Schema (draft 2020-12) of the documents --to json writes.")
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write it to this file instead.")] = None,
) -> int:
    text = resources.files("docparse").joinpath("schema/document.schema.json").read_text(encoding="utf-8")
    if output is None:
        sys.stdout.write(text)
    else:
        from docparse.files import write_atomic

        write_atomic(output, text)
    return EXIT_OK
