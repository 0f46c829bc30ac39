"""--help as a newcomer reads it: options grouped in panels, plain metavars (PATH, TEXT, [md|html|json])."""

from __future__ import annotations

import re

from typer import _click as click  # typer's own click (the Context and formatter its commands take)
from typer.core import TyperCommand

# The panels of `docparse --help`, in this order; an option names its panel with rich_help_panel=.
PANEL_INPUT = "Input"
PANEL_OUTPUT = "Output"
PANEL_MODEL = "Model"
PANEL_ENGINE = "Engines (each option names the --engine it applies to)"
PANEL_RETRIES = "Retries and limits"
PANEL_LAYER = "Text-layer check"
PANEL_BATCH = "Batch, cache and report"
PANEL_CLUSTER = "Cluster (Ray)"
PANEL_GENERAL = "General"
PANELS = (
    PANEL_INPUT,
    PANEL_OUTPUT,
    PANEL_MODEL,
    PANEL_ENGINE,
    PANEL_RETRIES,
    PANEL_LAYER,
    PANEL_BATCH,
    PANEL_CLUSTER,
    PANEL_GENERAL,
)

# Metavars that say what to type, for the options whose type alone says little.
METAVARS = {
    "--pages": "RANGES",
    "--glob": "PATTERN",
    "--exclude": "PATTERN",
    "--password": "PASSWORD",
    "--model": "ID|PATH",
    "--revision": "REV",
    "--prompt": "TEXT",
    "--system-prompt": "TEXT",
    "--batch-size": "N|auto",
    "--image-size": "WxH",
    "--page-size": "WxH",
    "--api-base": "URL",
    "--served-model": "NAME",
}
_TYPE_NAMES = {"str": "TEXT", "path": "PATH", "int": "N", "float": "NUMBER", "file": "PATH",
               "int range": "N", "float range": "NUMBER"}  # fmt: skip
_GENERAL = ("help", "install_completion", "show_completion")  # click's and typer's own options
_TYPE = re.compile(r"<(?:list\[)?([^<>\[\]]+)\]?>")


def plain_metavar(record: str, option: str | None) -> str:
    """`--glob <list[str]>` -> `--glob PATTERN`; `--to <md|html|json>` -> `--to [md|html|json]`."""

    def plain(m: re.Match[str]) -> str:
        if option in METAVARS:
            return METAVARS[option]
        name = m.group(1)
        return f"[{name}]" if "|" in name else _TYPE_NAMES.get(name.lower(), name.upper())

    return _TYPE.sub(plain, record, count=1)


class PanelCommand(TyperCommand):
    """A command whose help lists its arguments, then its options panel by panel (PANELS order, then any
    other panel, then those with none under "Options"), in typer's plain layout."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = ["[OPTIONS]"]
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or (param.name or "").upper()
                pieces.append(name.removesuffix("...") + ("..." if param.nargs != 1 else ""))
        return pieces

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        args: list[tuple[str, str]] = []
        panels: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                name = (param.metavar or (param.name or "").upper()).removesuffix("...")
                args.append((name + ("..." if param.nargs != 1 else ""), record[1]))
                continue
            option = max(param.opts, key=len) if param.opts else None
            panel = getattr(param, "rich_help_panel", None) or (PANEL_GENERAL if param.name in _GENERAL else "Options")
            panels.setdefault(panel, []).append((plain_metavar(record[0], option), record[1]))
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        order = [p for p in PANELS if p in panels] + [p for p in panels if p not in PANELS]
        for panel in order:
            with formatter.section(panel):
                formatter.write_dl(panels[panel])
