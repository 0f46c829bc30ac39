"""Qwen2.5-VL's inputs and decoding settings in transformers, built by hand (no AutoProcessor, no torchvision)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

from docparse.engines.base import GREEDY, GenerationSettings
from docparse.engines.tokens import ENDOFTEXT, IMAGE_PAD
from docparse.errors import EngineError
from docparse.prompt import chat_text

if TYPE_CHECKING:
    import torch
    from transformers import GenerationConfig


def build_inputs(
    images: Sequence[Image.Image],
    image_processor: Any,
    tokenizer: Any,
    image_token_id: int,
    prompt: str,
    system_prompt: str,
) -> dict[str, torch.Tensor]:
    """Model inputs for these pages, exactly as Qwen2_5_VLProcessor builds them, left-padded.

    Returns input_ids, attention_mask (batch x longest prompt, padding on the left),
    pixel_values (all images' patches, concatenated in page order), image_grid_thw (one row
    per page) and mm_token_type_ids (1 on <|image_pad|> tokens, 0 elsewhere: without it the
    model silently falls back to 1-D positions). Tensors are on the CPU.

    Images must already be at a size smart_resize leaves unchanged (sides multiples of 28):
    the image processor is called with pixel bounds equal to each image's own area, so it
    does not resample, and an image it would still change raises EngineError.
    """
    import torch

    if not images:
        raise ValueError("build_inputs needs at least one image")
    patch = int(image_processor.patch_size)
    merge = int(image_processor.merge_size)
    pixel_values: list[torch.Tensor] = []
    grids: list[torch.Tensor] = []
    texts: list[str] = []
    for image in images:
        width, height = image.size
        area = width * height
        features = image_processor(
            images=[image],
            size={"shortest_edge": area, "longest_edge": area},
            return_tensors="pt",
        )
        grid = features["image_grid_thw"]
        _, grid_h, grid_w = (int(v) for v in grid[0])
        if (grid_h * patch, grid_w * patch) != (height, width):
            raise EngineError(
                f"page image {width}x{height} is not at a size the model takes as is (the image "
                f"processor made it {grid_w * patch}x{grid_h * patch}); sides must be multiples "
                f"of {patch * merge}"
            )
        pixel_values.append(features["pixel_values"])
        grids.append(grid)
        pads = int(grid[0].prod()) // (merge * merge)
        texts.append(chat_text(prompt, system_prompt, IMAGE_PAD * pads))
    text = tokenizer(
        texts,
        padding=True,
        padding_side="left",
        add_special_tokens=False,
        return_tensors="pt",
        return_attention_mask=True,
    )
    input_ids = text["input_ids"]
    return {
        "input_ids": input_ids,
        "attention_mask": text["attention_mask"],
        "pixel_values": torch.cat(pixel_values, dim=0),
        "image_grid_thw": torch.cat(grids, dim=0),
        "mm_token_type_ids": (input_ids == image_token_id).to(torch.int64),
    }


def pad_id(tokenizer: Any, generation_config: Any, eos_ids: Sequence[int]) -> int:
    """The id that pads a batch's shorter rows: the tokenizer's, the checkpoint's, <|endoftext|>, else an end id."""
    for candidate in (
        tokenizer.pad_token_id,
        generation_config.pad_token_id,
        tokenizer.convert_tokens_to_ids(ENDOFTEXT),
    ):
        if isinstance(candidate, int):
            return candidate
    return eos_ids[0]


def greedy_config(
    checkpoint_config: GenerationConfig, max_new_tokens: int, eos_ids: Sequence[int], pad: int
) -> GenerationConfig:
    """The checkpoint's generation config made greedy.

    Sampling knobs (temperature, top_p, top_k) are cleared so transformers does not warn that
    they are ignored; a repetition_penalty the checkpoint sets (1.05 in Qwen's releases, which
    the recorded real outputs were made with) is kept: it is deterministic and curbs the
    degenerate repetition QwenVL HTML is prone to. As with the official processor, a padded
    page's pad token (<|endoftext|>) then counts as seen, so its logit is penalised as well;
    that is the only way a page's batch-mates can touch its tokens.
    """
    config = copy.deepcopy(checkpoint_config)
    config.do_sample = False
    config.num_beams = 1
    config.temperature = None
    config.top_p = None
    config.top_k = None
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    config.eos_token_id = list(eos_ids)
    config.pad_token_id = pad
    config.return_dict_in_generate = False
    return config


def config_for(greedy: GenerationConfig, settings: GenerationSettings) -> GenerationConfig:
    """`greedy` with this call's settings applied (a copy; `greedy` itself is kept)."""
    if settings == GREEDY:
        return greedy
    config = copy.deepcopy(greedy)
    if settings.max_new_tokens is not None:
        config.max_new_tokens = settings.max_new_tokens
    if settings.repetition_penalty is not None:
        config.repetition_penalty = settings.repetition_penalty
    if settings.temperature is not None:
        config.do_sample = True
        config.temperature = settings.temperature
    return config
