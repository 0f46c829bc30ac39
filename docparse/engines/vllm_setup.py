"""What the embedded vLLM engine is started with: engine arguments, KV-cache size, end ids, penalty, logs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docparse.config import ModelOptions, RasterOptions, VllmOptions
from docparse.engines.device import resolve_dtype
from docparse.engines.memory import kv_bytes_per_token
from docparse.engines.tokens import end_ids
from docparse.prompt import FACTOR

# Pages in flight at once: vLLM batches them continuously; a GPU keeps far more busy than a CPU.
IN_FLIGHT = {"cuda": 64, "cpu": 8}
# Room in each sequence beyond the image and the answer: the prompt's text tokens.
TEXT_ROOM = 256
# On a CPU vLLM reserves --gpu-memory-utilization of all RAM; docparse sizes the KV cache itself instead,
# for the pages in flight at full length, within this share of the RAM available at startup.
CPU_KV_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class Sizing:
    """What the engine was started with: its dtype, the longest sequence, and the KV cache vLLM made."""

    dtype: str
    max_model_len: int
    kv_tokens: int
    kv_bytes: int | None


def checkpoint_config(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "config.json").read_text(encoding="utf-8")))


def generation_field(folder: Path, key: str) -> Any:
    """One field of the checkpoint's generation_config.json; None when the file or the field is missing or bad."""
    try:
        return json.loads((folder / "generation_config.json").read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def repetition_penalty(folder: Path) -> float:
    """The checkpoint's own repetition penalty (1.05 in Qwen's releases), kept as the transformers engine keeps it."""
    value = generation_field(folder, "repetition_penalty")
    return float(value) if isinstance(value, int | float) else 1.0


def eos_ids(folder: Path, tokenizer: Any) -> list[int]:
    """End-of-sequence ids: generation_config.json's, plus <|im_end|> and the tokenizer's eos (as the local engine)."""
    return end_ids(generation_field(folder, "eos_token_id"), tokenizer)


def engine_args(
    folder: Path, options: ModelOptions, vllm: VllmOptions, raster: RasterOptions, device: str, in_flight: int
) -> dict[str, Any]:
    """vLLM's AsyncEngineArgs, by name, for this checkpoint and these options.

    The longest sequence holds the largest image, twice --max-new-tokens (the truncation rung) and the
    prompt's text. The multimodal processor's bounds let every image docparse sends through unchanged.
    On a CPU (vLLM's CPU build) the model runs eagerly and, unless --gpu-memory-utilization is given,
    the KV cache is sized for the pages in flight at full length, within CPU_KV_SHARE of free RAM.
    """
    config = checkpoint_config(folder)
    text = config.get("text_config") or config
    max_len = raster.max_pixels // (FACTOR * FACTOR) + 2 * options.max_new_tokens + TEXT_ROOM
    max_len = min(max_len, int(text.get("max_position_embeddings") or max_len))
    dtype = vllm_dtype(options, device)
    kwargs: dict[str, Any] = {
        "model": str(folder),
        "tokenizer": str(folder),
        "dtype": dtype,
        "max_model_len": max_len,
        "max_num_seqs": in_flight,
        "tensor_parallel_size": vllm.tensor_parallel,
        "limit_mm_per_prompt": {"image": 1, "video": 0},
        # Every image docparse sends has sides that are multiples of 28 within the pixel bounds, so
        # smart_resize keeps it as is from 28x28 up to --max-pixels (band strips are smaller pages).
        "mm_processor_kwargs": {"size": {"shortest_edge": FACTOR * FACTOR, "longest_edge": raster.max_pixels}},
        "seed": 0,
        "disable_log_stats": True,
        "generation_config": "vllm",  # sampling comes from docparse's settings, not the checkpoint's
    }
    if vllm.gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = vllm.gpu_memory_utilization
    if device == "cpu":
        kwargs["enforce_eager"] = True  # no torch.compile warm-up of minutes on a CPU
        if vllm.gpu_memory_utilization is None:
            import psutil

            itemsize = {"float32": 4, "float16": 2, "bfloat16": 2}.get(dtype, 4)
            want = kv_bytes_per_token(text, itemsize) * max_len * in_flight
            cap = int(psutil.virtual_memory().available * CPU_KV_SHARE)
            kwargs["kv_cache_memory_bytes"] = max(min(want, cap), 16 * 2**20)
    return kwargs


def vllm_dtype(options: ModelOptions, device: str) -> str:
    """vLLM's dtype: --dtype, or for auto what the transformers engine picks on this device."""
    if options.dtype != "auto":
        return options.dtype
    return str(resolve_dtype("auto", device)).removeprefix("torch.")


def device_kind() -> str:
    """ "cuda" where torch sees a CUDA GPU, else "cpu" (vLLM's CPU build)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def quiet_vllm_logs() -> None:
    """vLLM logs to stdout at INFO by default: to stderr, warnings only (stdout may carry the document)."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
