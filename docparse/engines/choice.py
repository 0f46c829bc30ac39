"""Which engine `--engine auto` stands for on this machine: pure rules, and the cheap probes they take."""

from __future__ import annotations

import importlib.util
from typing import Literal

# What --engine accepts; `auto` is resolved to one of the others (Concrete) before anything runs.
EngineKind = Literal["auto", "transformers", "openai", "vllm", "llamacpp"]
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
    installed = vllm_installed()
    return choose_engine("auto", vllm_installed=installed, cuda=installed and cuda_present())


def is_gguf_model(model: str, mmproj: str | None = None) -> bool:
    """True when `model` (with `mmproj`) names a GGUF model, for llama.cpp: what `--engine auto` asks."""
    from docparse.engines.gguf import is_gguf_model as check

    return check(model, mmproj)


def vllm_installed() -> bool:
    """Whether the vllm package can be imported here (found, not imported: importing it takes seconds)."""
    return importlib.util.find_spec("vllm") is not None
