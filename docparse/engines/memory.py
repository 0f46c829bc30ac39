"""Memory of the local engine: out-of-memory errors told apart, and the batch size `--batch-size auto` picks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from docparse.prompt import FACTOR


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the errors torch raises when an allocation fails.

    torch.OutOfMemoryError (CUDA, also a RuntimeError), MemoryError (Python), and RuntimeErrors whose
    message says so: "out of memory" (CUDA, MPS, HIP) or "can't allocate memory" (the CPU allocator).
    """
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# The most pages `--batch-size auto` puts in one generate call, by device, and the fewest it
# bothers with (fewer than that fit: one page at a time). CPU, measured on this project's 2-core
# AVX2 EPYC with torch 2.13 float32 (benchmarks/RESULTS.md, cpu-threads and engine-3b-cpu): one
# token's matmul takes a fast matrix-vector path, while 2 to 4 rows take a matrix-matrix path
# that costs about as much per row, so batches of 2 to 4 decode no faster than one page (0.8x
# the tokens/s for a 3B MLP layer); 8 rows cost about what 4 do (1.6x), 16 (2.5x). And every
# page of a batch waits for the longest, while vision and prefill gain nothing. So on a CPU
# auto batches only when at least 8 pages fit, up to 16. GPU: decode stays memory-bound far
# higher; 32 is a first cap that benchmarks/gpu.sh (batch 1 to 64 on an H100) is there to check.
AUTO_BATCH_CAP = {"cpu": 16, "cuda": 32, "mps": 8}
AUTO_BATCH_FLOOR = {"cpu": 8}
# Share of the free memory that `auto` plans to fill, and the factor by which the estimate of
# one page's memory is raised (allocator slack, temporaries the estimate leaves out).
AUTO_MEMORY_SHARE = 0.8
AUTO_SAFETY = 1.5


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """How `--batch-size auto` chose: the memory one page needs, the memory free, the size."""

    page_bytes: int
    shared_bytes: int
    free_bytes: int
    cap: int
    batch_size: int


def kv_bytes_per_token(text: Any, dtype_bytes: int) -> int:
    """KV-cache bytes one token takes in the language model: 2 x layers x KV heads x head dim x dtype bytes.

    `text` is the language model's config: a transformers config object, or a mapping (config.json's
    `text_config`, or the whole file for a flat one).
    """

    def need(key: str) -> Any:
        return text[key] if isinstance(text, Mapping) else getattr(text, key)

    def have(key: str) -> Any:
        return text.get(key) if isinstance(text, Mapping) else getattr(text, key, None)

    heads = int(need("num_attention_heads"))
    kv_heads = int(have("num_key_value_heads") or heads)
    head_dim = int(have("head_dim") or int(need("hidden_size")) // heads)
    return 2 * int(need("num_hidden_layers")) * kv_heads * head_dim * dtype_bytes


def page_memory(
    config: Any, dtype_bytes: int, max_pixels: int, max_new_tokens: int, text_tokens: int, attn: str = "sdpa"
) -> tuple[int, int]:
    """Bytes of memory one page adds to a generate call, and bytes the call needs once, whatever its size.

    Per page: the KV cache for its whole sequence (image tokens at `max_pixels`, `text_tokens` of
    prompt text, `max_new_tokens`), 2 x layers x KV heads x head dim x dtype bytes per token; the
    language model's prefill activations over its prompt (hidden states, the MLP's three
    intermediate tensors and one attention score matrix, of one layer at a time: SDPA falls back
    to materialising scores when a padded batch passes a mask); the vision encoder's activations
    over its patches (it runs on all pages' patches at once). Once per call, with eager attention
    only: the vision encoder's full-attention scores over one page's patches (SDPA and
    FlashAttention-2 do not materialise them: the measured 3B peak of one full-size page is 1.8 GiB
    over the weights, where those scores alone would be 4 GiB).
    """
    text = config.text_config if hasattr(config, "text_config") else config
    vision = config.vision_config
    heads = int(text.num_attention_heads)
    hidden = int(text.hidden_size)
    image_tokens = max_pixels // (FACTOR * FACTOR)
    patches = image_tokens * int(vision.spatial_merge_size) ** 2
    prompt = image_tokens + text_tokens
    kv = kv_bytes_per_token(text, dtype_bytes) * (prompt + max_new_tokens)
    prefill = prompt * (4 * hidden + 3 * int(text.intermediate_size) + heads * prompt) * dtype_bytes
    encoder = patches * (6 * int(vision.hidden_size) + 3 * int(vision.intermediate_size)) * dtype_bytes
    shared = int(vision.num_heads) * patches * patches * dtype_bytes if attn == "eager" else 0
    return kv + prefill + encoder, shared


def free_memory_bytes(device: str) -> int:
    """Memory free for activations on `device` now: CUDA's free plus torch's cached, else available RAM."""
    import torch

    if device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        return int(free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated())
    import psutil

    return int(psutil.virtual_memory().available)


def plan_batch_size(page_bytes: int, shared_bytes: int, free_bytes: int, cap: int, floor: int = 1) -> BatchPlan:
    """The largest batch (1 to `cap`) whose estimated memory fits in the planned share of `free_bytes`.

    A batch smaller than `floor` is not worth its padding and waiting: then 1.
    """
    usable = free_bytes * AUTO_MEMORY_SHARE - shared_bytes * AUTO_SAFETY
    fits = int(usable // (page_bytes * AUTO_SAFETY)) if page_bytes > 0 else cap
    size = max(1, min(cap, fits))
    return BatchPlan(page_bytes, shared_bytes, free_bytes, cap, size if size >= floor else 1)
