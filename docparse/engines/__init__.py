"""Engines turn page images into raw QwenVL HTML; choose_engine resolves `auto`, open_engine opens the one named."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from docparse.config import ConvertOptions, EngineKind
    from docparse.engines.base import Engine

Concrete = Literal["transformers", "openai", "vllm"]


def choose_engine(requested: EngineKind, *, vllm_installed: bool, cuda: bool) -> Concrete:
    """The engine `requested` stands for, from what this machine has (pure: the caller probes).

    An explicit kind is kept. `auto`: vLLM when it is installed and a CUDA GPU is present (continuous
    batching, paged KV cache), else transformers. The server engine is only ever asked for by name.
    """
    if requested != "auto":
        return requested
    if vllm_installed and cuda:
        return "vllm"
    return "transformers"


def cuda_present() -> bool:
    """Whether torch sees a CUDA GPU (imports torch, about 3 s)."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_auto() -> Concrete:
    """`--engine auto` on this machine: probes vLLM (cheaply) and, only where it is installed, CUDA."""
    from docparse.engines.vllm_setup import vllm_installed

    installed = vllm_installed()
    return choose_engine("auto", vllm_installed=installed, cuda=installed and cuda_present())


def open_engine(options: ConvertOptions) -> Engine:
    """The engine `options.engine` names, loaded or connected and ready to generate.

    "transformers" loads the checkpoint locally; "vllm" starts vLLM on it in this process (its
    EngineCore in a child process); "openai" connects to the OpenAI-compatible server at
    `options.server.api_base`. Raises ModelUnavailableError (exit 3) when the model or server cannot be
    had, UsageError for settings that cannot work. Heavy imports happen here, not at module import.
    """
    if options.engine == "openai":
        from docparse.engines.openai import open_openai_engine

        return open_openai_engine(options.model, options.server, options.raster)
    if options.engine == "vllm":
        from docparse.engines.vllm import open_vllm_engine

        return open_vllm_engine(options.model, options.vllm, options.raster)
    from docparse.engines.transformers import load_engine

    return load_engine(options.model, options.raster.max_pixels)
