"""Engines turn page images into raw QwenVL HTML; open_engine picks and opens the one the options name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docparse.config import ConvertOptions
    from docparse.engines.base import Engine


def open_engine(options: ConvertOptions) -> Engine:
    """The engine `options.engine` names, loaded or connected and ready to generate.

    "transformers" loads the checkpoint locally; "openai" connects to the OpenAI-compatible server at
    `options.server.api_base`. Raises ModelUnavailableError (exit 3) when the model or server cannot be
    had, UsageError for settings that cannot work. Heavy imports happen here, not at module import.
    """
    if options.engine == "openai":
        from docparse.engines.openai import open_openai_engine

        return open_openai_engine(options.model, options.server, options.raster)
    from docparse.engines.transformers import load_engine

    return load_engine(options.model, options.raster.max_pixels)
