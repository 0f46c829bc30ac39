"""Opening the engine the options name: loaded or connected, ready to generate (heavy imports happen here)."""

from __future__ import annotations

from typing import assert_never

from docparse.config import ConvertOptions
from docparse.engines.base import Engine


def open_engine(options: ConvertOptions) -> Engine:
    """The engine `options.engine` names, loaded or connected and ready to generate.

    "transformers" loads the checkpoint locally; "vllm" starts vLLM on it in this process (its
    EngineCore in a child process); "llamacpp" loads a GGUF model in llama.cpp; "openai" connects to the
    OpenAI-compatible server at `options.server.api_base`. Raises ModelUnavailableError (exit 3) when the
    model or server cannot be had, UsageError for settings that cannot work. Heavy imports happen here,
    not at module import.
    """
    match options.engine:
        case "llamacpp":
            from docparse.engines.llamacpp import load_llamacpp_engine

            return load_llamacpp_engine(options.model, options.raster)
        case "openai":
            from docparse.engines.openai import open_openai_engine

            return open_openai_engine(options.model, options.server, options.raster)
        case "vllm":
            from docparse.engines.vllm import open_vllm_engine

            return open_vllm_engine(options.model, options.vllm, options.raster)
        case "transformers" | "auto":  # `auto` is resolved when the options are made; transformers, as ever
            from docparse.engines.transformers import load_engine

            return load_engine(options.model, options.raster.max_pixels)
        case _:
            assert_never(options.engine)
