"""Builds a tiny random-weight Qwen2.5-VL checkpoint folder that loads like a real one via `--model PATH`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
)

# Qwen's special tokens, in Qwen's order; in the tiny tokenizer they get the ids 0..6.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
VOCAB_SIZE = 384  # the tokenizer is trained up to this size; the model's vocab is this too
SEED = 0
# Wider than Qwen's 0.02 so that the random model's greedy tokens vary with the page and the step
# (at 0.02 every page decodes to one repeated token, which would hide ordering and batching bugs).
INIT_STD = 0.2

# Text the byte-level BPE is trained on: enough of the prompt and of QwenVL HTML to give merges.
_CORPUS = [
    "system\nYou are a helpful assistant.",
    "user\nQwenVL HTML ",
    "assistant\n",
    '<html><body><h1 data-bbox="10 20 300 40">Title</h1>',
    '<p data-bbox="12 50 580 90">The quick brown fox jumps over the lazy dog.</p>',
    '<table class="table1" data-bbox="5 5 400 200"><tr><td>cell</td><th>head</th></tr></table>',
    '<div class="formula" data-bbox="1 2 3 4"><img data-bbox="1 2 3 4"/><div>E = mc^2</div></div>',
    '<div class="image caption"><p>Figure 1: a chart of numbers 0123456789.</p></div></body></html>',
]


def _tokenizer() -> Tokenizer:
    """A byte-level BPE of VOCAB_SIZE tokens whose first ids are Qwen's special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok


def build_tiny_model(path: Path, init_std: float = INIT_STD, vision_depth: int = 2, head_dim: int = 16) -> Path:
    """Write a Qwen2.5-VL checkpoint folder with random weights (seed 0, float32) at `path`; return `path`.

    The folder has what a released checkpoint has: config.json (model_type qwen2_5_vl, text_config and
    vision_config with the real structure at tiny sizes), model.safetensors, generation_config.json,
    tokenizer.json + tokenizer_config.json (a fast tokenizer carrying Qwen's special tokens), and
    preprocessor_config.json for the Qwen2-VL image processor (loads with or without torchvision).
    Token ids are the tiny tokenizer's, not Qwen's 151xxx. Same bytes of weights on every call.
    At Qwen's own `init_std` of 0.02 the model loops greedily on one token (the looping fixture).
    `vision_depth` vision blocks, every second one full attention (llama.cpp's converter maps the merger's
    layer 2 by block number, so GGUF needs at least 3: tests/gguf_model.py builds 4).
    `head_dim` is the language model's attention head size: 16 by default (4 heads), 32 for vLLM's CPU
    attention, which takes head sizes 32, 64, 80, ... only (2 heads; the same number of weights).
    """
    heads = 64 // head_dim
    if heads * head_dim != 64 or head_dim % 16:
        raise ValueError(f"head_dim {head_dim}: 16, 32 or 64 (it must divide the hidden size 64)")
    unit = head_dim // 16  # mrope_section splits head_dim / 2 into temporal, height and width parts
    path.mkdir(parents=True, exist_ok=True)
    backend = _tokenizer()
    ids: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        token_id = backend.token_to_id(token)
        assert token_id is not None, token
        ids[token] = token_id
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=32768,
    )
    tokenizer.save_pretrained(path)

    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": min(2, heads),
            "hidden_act": "silu",
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "initializer_range": init_std,
            # Sums to head_dim / 2: [2, 3, 3] at 16, [4, 6, 6] at 32.
            "rope_scaling": {"type": "mrope", "mrope_section": [unit * 2, unit * 3, unit * 3]},
            "rope_theta": 1000000.0,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": vision_depth,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "in_channels": 3,
            "hidden_act": "silu",
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "out_hidden_size": 64,
            # block 0 windowed, block 1 full, ..., like the real 7/15/23/31
            "fullatt_block_indexes": list(range(1, vision_depth, 2)),
            "tokens_per_second": 2,
            "initializer_range": init_std,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(SEED)
    model = Qwen2_5_VLForConditionalGeneration(config)
    assert model.dtype == torch.float32
    # Qwen2.5-VL's released generation_config.json, token ids replaced by the tiny tokenizer's.
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=True,
        repetition_penalty=1.05,
        temperature=0.1,
        top_p=0.001,
        top_k=1,
    )
    model.save_pretrained(path)

    # The released preprocessor_config.json of Qwen2.5-VL, values as published.
    preprocessor = {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
        "min_pixels": 3136,
        "max_pixels": 12845056,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    }
    (path / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    return path


# A ChatML chat template for the tiny checkpoint, laying a turn out as docparse.prompt.chat_text does
# (text and image parts in the order given), so that a server that formats chat messages itself
# (`transformers serve`, vLLM) builds the same prompt as the local engine. Written for these tests.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- elif part['type'] in ('image', 'image_url') -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def build_serving_model(path: Path, vision_depth: int = 2, init_std: float = INIT_STD) -> Path:
    """The tiny checkpoint plus what a server needs to format chat requests: a chat template for the
    tokenizer and the processor (Qwen2_5_VLProcessor, whose video processor needs torchvision)."""
    build_tiny_model(path, init_std=init_std, vision_depth=vision_depth)
    (path / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    config_path = path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = CHAT_TEMPLATE
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return path


if __name__ == "__main__":
    import sys

    print(build_tiny_model(Path(sys.argv[1])))
