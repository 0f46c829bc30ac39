"""Engines turn page images into raw QwenVL HTML; choose_engine resolves `auto`, open_engine opens the one named."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from docparse.config import ConvertOptions, EngineKind
    from docparse.engines.base import Engine

Concrete = Literal["transformers", "openai", "vllm", "llamacpp"]


def choose_engine(requested: EngineKind, *, vllm_installed: bool, cuda: bool, gguf: bool = False) -> Concrete:
    """The engine `requested` stands for, from what this machine has (pure: the caller probes).

    An explicit kind is kept. `auto`: llama.cpp when the model given is GGUF (`gguf`: only llama.cpp
    reads it); else vLLM when it is installed and a CUDA GPU is present (continuous batching, paged KV
    cache); else transformers. The server engine is only ever asked for by name.
    """
    if requested != "auto":
        return requested
    if gguf:
        return "llamacpp"
    if vllm_installed and cuda:
        return "vllm"
    return "transformers"


def cuda_present() -> bool:
    """Whether torch sees a CUDA GPU (imports torch, about 3 s)."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_auto(model: str | None = None, mmproj: str | None = None) -> Concrete:
    """`--engine auto` on this machine for `model` (None: the default): a GGUF model goes to llama.cpp;
    otherwise probes vLLM (cheaply) and, only where it is installed, CUDA."""
    if mmproj is not None or (model is not None and is_gguf_model(model)):
        return "llamacpp"
    from docparse.engines.vllm_setup import vllm_installed

    installed = vllm_installed()
    return choose_engine("auto", vllm_installed=installed, cuda=installed and cuda_present())


def open_engine(options: ConvertOptions) -> Engine:
    """The engine `options.engine` names, loaded or connected and ready to generate.

    "transformers" loads the checkpoint locally; "vllm" starts vLLM on it in this process (its
    EngineCore in a child process); "llamacpp" loads a GGUF model in llama.cpp; "openai" connects to the
    OpenAI-compatible server at `options.server.api_base`. Raises ModelUnavailableError (exit 3) when the
    model or server cannot be had, UsageError for settings that cannot work. Heavy imports happen here,
    not at module import.
    """
    if options.engine == "llamacpp":
        from docparse.engines.llamacpp import load_llamacpp_engine

        return load_llamacpp_engine(options.model, options.raster)
    if options.engine == "openai":
        from docparse.engines.openai import open_openai_engine

        return open_openai_engine(options.model, options.server, options.raster)
    if options.engine == "vllm":
        from docparse.engines.vllm import open_vllm_engine

        return open_vllm_engine(options.model, options.vllm, options.raster)
    from docparse.engines.transformers import load_engine

    return load_engine(options.model, options.raster.max_pixels)


def is_gguf_model(model: str, mmproj: str | None = None) -> bool:
    """True when `model` (with `mmproj`) names a GGUF model, for llama.cpp: what `--engine auto` asks."""
    from docparse.engines.gguf import is_gguf_model as check

    return check(model, mmproj)
