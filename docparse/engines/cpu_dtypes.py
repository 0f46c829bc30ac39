"""Weights on a CPU: dynamic int8 Linear layers (--quantize int8) and a dtype per stage (vision, language model)."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from docparse.config import DType, Quantize
from docparse.errors import UsageError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def check_quantize(quantize: Quantize | None, device: str, dtype: DType) -> None:
    """UsageError unless --quantize can run here: torch's dynamic int8 kernels are CPU ones, on float32 activations."""
    if quantize is None:
        return
    if device != "cpu":
        raise UsageError(f"--quantize {quantize} runs on a CPU (torch's dynamic int8 kernels); use --device cpu")
    if dtype not in ("auto", "float32"):
        raise UsageError(f"--quantize {quantize} computes in float32 between its int8 weights; leave --dtype out")


def vision_dtype(device: str, dtype: DType, text_dtype: torch.dtype) -> torch.dtype:
    """The vision encoder's dtype: float32 on a CPU when `--dtype auto` chose bfloat16, else the model's.

    On the issue's 2-core AMD EPYC with native bfloat16 (AVX512-BF16) bfloat16 decoded 1.3x faster than
    float32 but ran the vision encoder at 0.6x (its big matmuls are compute-bound, and oneDNN's bfloat16
    path converts around every op); on this project's machine of that kind the encoder ran as fast in
    both (benchmarks/RESULTS.md, cpu-engines). So under auto the encoder stays float32 (never slower,
    1.3 GB more for the 3B model) and the language model takes bfloat16. An explicit --dtype is one
    dtype for the whole model.
    """
    import torch

    if device == "cpu" and dtype == "auto" and text_dtype == torch.bfloat16:
        return torch.float32
    return text_dtype


def language_dtype(model: Any) -> torch.dtype:
    """The language model's dtype (its embeddings', which int8 leaves alone); `model.dtype` is the first weight's."""
    dtype: torch.dtype = model.get_input_embeddings().weight.dtype
    return dtype


def visual_module(model: Any) -> Any:
    """The vision tower of a Qwen2.5-VL model (model.model.visual in transformers 5, model.visual before)."""
    inner = getattr(model, "model", model)
    return getattr(inner, "visual", None) or model.visual


def apply_cpu_dtypes(model: Any, device: str, dtype: DType, quantize: Quantize | None) -> Any:
    """The loaded model with the vision encoder in its own dtype and, with `quantize`, int8 Linear layers.

    Dynamic int8 (torch.ao.quantization.quantize_dynamic, in place) stores each nn.Linear's weight as int8
    with a scale per output channel and quantizes activations per call (one scale per tensor): the language
    model reads a quarter of float32's bytes per token, and the vision encoder's matmuls run on int8
    kernels. Embeddings, convolutions and norms stay float32.
    """
    import torch

    visual = visual_module(model)
    wanted = vision_dtype(device, dtype, model.dtype)
    if visual.dtype != wanted:
        visual.to(wanted)
    if quantize == "int8":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():  # torch marks its eager quantization deprecated; 2.13 still ships it
            warnings.simplefilter("ignore")
            quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
        log.info("dynamic int8: every Linear layer quantized")
    return model
