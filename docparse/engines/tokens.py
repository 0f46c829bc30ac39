"""Qwen2.5-VL's special tokens, and the end-of-sequence ids both local engines (transformers, vLLM) stop on."""

from __future__ import annotations

from typing import Any

IMAGE_PAD = "<|image_pad|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"


def end_ids(configured: Any, tokenizer: Any) -> list[int]:
    """End-of-sequence ids: the checkpoint's generation config ones (`configured`: an id, a list of ids or
    None), then <|im_end|> (end of turn) and the tokenizer's eos token, each once."""
    ids: list[int] = []
    if isinstance(configured, int):
        ids.append(configured)
    elif isinstance(configured, list | tuple):
        ids.extend(int(i) for i in configured)
    for token in (IM_END, getattr(tokenizer, "eos_token", None)):
        token_id = tokenizer.convert_tokens_to_ids(token) if token else None
        if isinstance(token_id, int) and token_id not in ids:
            ids.append(token_id)
    return ids
