"""Engines turn page images into raw QwenVL HTML; open_engine picks and opens the one the options name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docparse.config import ConvertOptions
    from docparse.engines.base import Engine


def open_engine(options: ConvertOptions) -> Engine:
    """The engine `options.engine` names, loaded or connected and ready to generate.

    "transformers" loads the checkpoint locally; "llamacpp" a GGUF model in llama.cpp; "openai" connects to
    the OpenAI-compatible server at `options.server.api_base`. Raises ModelUnavailableError (exit 3) when
    the model or server cannot be had, UsageError for settings that cannot work. Heavy imports happen
    here, not at module import.
    """
    if options.engine == "llamacpp":
        from docparse.engines.llamacpp import load_llamacpp_engine

        return load_llamacpp_engine(options.model, options.raster)
    if options.engine == "openai":
        from docparse.engines.openai import open_openai_engine

        return open_openai_engine(options.model, options.server, options.raster)
    from docparse.engines.transformers import load_engine

    return load_engine(options.model, options.raster.max_pixels)


def is_gguf_model(model: str, mmproj: str | None = None) -> bool:
    """True when `model` (with `mmproj`) names a GGUF model, for llama.cpp: what `--engine auto` asks."""
    from docparse.engines.gguf import is_gguf_model as check

    return check(model, mmproj)
