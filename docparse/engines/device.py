"""Where the local engine runs: the torch device, the dtype and the attention implementation `auto` stands for."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from docparse.config import Attn, Device, DType
from docparse.errors import UsageError

if TYPE_CHECKING:
    import torch


def resolve_device(device: Device) -> str:
    """The torch device to run on: `auto` is cuda if available, else mps if available, else cpu.

    Raises UsageError when cuda or mps is asked for and torch cannot use it.
    """
    import torch

    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cuda" and not cuda:
        raise UsageError(f"--device cuda: torch {torch.__version__} sees no CUDA device")
    if device == "mps" and not mps:
        raise UsageError(f"--device mps: torch {torch.__version__} cannot use Apple MPS here")
    return device


def _mps_supports_bfloat16() -> bool:
    import torch

    try:
        torch.zeros(1, dtype=torch.bfloat16, device="mps")
    except (RuntimeError, TypeError):
        return False
    return True


def resolve_dtype(dtype: DType, device: str) -> torch.dtype:
    """The weight and activation dtype for `device`.

    `auto` picks:
    - cuda: bfloat16 where the GPU supports it (the released weights are bfloat16, and Qwen2.5's
      activations can overflow float16), else float16 (older GPUs; half the memory of float32).
    - mps: bfloat16 where this macOS/torch supports it, else float32 (float16 risks the same
      overflow; float32 doubles memory but is correct).
    - cpu: bfloat16 only where the CPU computes it natively (AVX512-BF16 or AMX), else float32.
      Without native support PyTorch emulates bfloat16 matmuls: measured on this project's 2-core
      AMD EPYC (AVX2), a 1024x2048 @ 2048x5504 matmul took 72 s in bfloat16 against 0.30 s in
      float32 (240x), and the 3B vision encoder took 19 minutes for one page. float32 needs twice
      the memory (15.6 GiB peak for the 3B model, against 8.6 GiB): `--dtype bfloat16` trades
      speed for memory where RAM is short.
    """
    import torch

    if dtype != "auto":
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.bfloat16 if _mps_supports_bfloat16() else torch.float32
    return torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 matmuls in hardware (oneDNN's check: AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_attn(attn: Attn, device: str, dtype: torch.dtype) -> str:
    """The attention implementation: `auto` is flash_attention_2 where it can run, else sdpa.

    FlashAttention-2 runs only on CUDA, in float16/bfloat16, with the `flash_attn` package
    installed; asking for it explicitly elsewhere raises UsageError.
    """
    import torch

    flash_ok = (
        device == "cuda"
        and dtype in (torch.float16, torch.bfloat16)
        and importlib.util.find_spec("flash_attn") is not None
    )
    if attn == "auto":
        return "flash_attention_2" if flash_ok else "sdpa"
    if attn == "flash_attention_2" and not flash_ok:
        raise UsageError(
            "--attn flash_attention_2 needs a CUDA device, --dtype float16 or bfloat16, and the "
            "flash_attn package installed; use --attn sdpa"
        )
    return attn
