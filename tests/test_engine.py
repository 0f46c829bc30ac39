"""The transformers engine on a tiny random Qwen2.5-VL: batching, stopping, inputs, M-RoPE, hub errors."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from docparse.config import ModelOptions
from docparse.engines.cpu_dtypes import language_dtype, visual_module
from docparse.engines.device import cpu_has_native_bfloat16, resolve_attn, resolve_dtype
from docparse.engines.tokens import IMAGE_PAD
from docparse.engines.transformers import TransformersEngine, load_engine
from docparse.errors import EngineError, ModelUnavailableError, UsageError
from docparse.prompt import DEFAULT_MODEL, DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT, chat_text
from tests.paths import REPO
from tests.tiny_model import SPECIAL_TOKENS

# (width, height): three shapes smart_resize leaves as they are, so one batch mixes them.
SIZES = [(56, 84), (112, 56), (84, 84)]


def page(width: int, height: int, seed: int) -> Image.Image:
    """A noise image standing in for a rendered page (noise makes each page's answer different)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="module")
def pages() -> list[Image.Image]:
    return [page(w, h, seed) for seed, (w, h) in enumerate(SIZES)]


def options(model_dir: Path, **kw: Any) -> ModelOptions:
    base: dict[str, Any] = {"model": str(model_dir), "device": "cpu", "dtype": "float32", "max_new_tokens": 8}
    base.update(kw)
    return ModelOptions(**base)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[TransformersEngine]:
    eng = load_engine(options(tiny_model_dir, batch_size=3))
    yield eng
    eng.close()


def prompt_length(eng: TransformersEngine, image: Image.Image) -> int:
    """Tokens of the page's chat prompt, counted independently of the engine's padding."""
    w, h = image.size
    pads = IMAGE_PAD * ((w // 14) * (h // 14) // 4)
    text = chat_text(DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT, pads)
    return len(eng.tokenizer(text, add_special_tokens=False)["input_ids"])


# --- generation -------------------------------------------------------------------------------


def test_one_page_is_answered_with_its_generation_record(
    engine: TransformersEngine, pages: list[Image.Image], tiny_model_dir: Path
) -> None:
    [answer] = engine.generate(pages[:1])
    gen = answer.generation
    assert isinstance(answer.text, str) and answer.text
    assert gen.model == str(tiny_model_dir) == engine.model_id
    assert gen.prompt == DEFAULT_PROMPT
    assert gen.tokens_in == prompt_length(engine, pages[0])
    # The random model emits no end-of-sequence id in its first 8 tokens on this page.
    assert (gen.tokens_out, gen.finish_reason) == (8, "length")
    assert gen.seconds > 0


def test_three_pages_of_different_sizes_come_back_in_order(
    engine: TransformersEngine, pages: list[Image.Image]
) -> None:
    batch = engine.generate(pages)
    alone = [engine.generate([p])[0] for p in pages]
    assert [a.text for a in batch] == [a.text for a in alone]
    assert len({a.text for a in batch}) == 3  # the pages' answers differ, so order is checked
    assert [a.generation.tokens_in for a in batch] == [prompt_length(engine, p) for p in pages]
    assert [a.generation.tokens_out for a in batch] == [8, 8, 8]
    assert [a.generation.finish_reason for a in batch] == ["length"] * 3
    # One batch: its wall time is shared equally by its pages.
    assert len({a.generation.seconds for a in batch}) == 1


def test_left_padded_batches_give_each_page_the_tokens_it_gets_alone(
    tiny_model_dir: Path, engine: TransformersEngine, pages: list[Image.Image]
) -> None:
    inputs = engine.build_inputs(pages)
    lengths = [prompt_length(engine, p) for p in pages]
    assert len(set(lengths)) == 3  # the batch really is padded
    longest = max(lengths)
    for row, n in enumerate(lengths):
        mask = inputs["attention_mask"][row].tolist()
        assert mask == [0] * (longest - n) + [1] * n  # padding on the left

    alone = [engine.generate_tokens([p])[0] for p in pages]
    assert [t.token_ids for t in engine.generate_tokens(pages)] == [t.token_ids for t in alone]
    # batch_size 2 over 3 pages: a padded batch of two, then one page alone.
    pairs = load_engine(options(tiny_model_dir, batch_size=2))
    assert [t.token_ids for t in pairs.generate_tokens(pages)] == [t.token_ids for t in alone]


def test_a_tiny_max_new_tokens_ends_pages_with_finish_reason_length(
    tiny_model_dir: Path, pages: list[Image.Image]
) -> None:
    short = load_engine(options(tiny_model_dir, max_new_tokens=2, batch_size=3))
    answers = short.generate(pages)
    assert [(a.generation.tokens_out, a.generation.finish_reason) for a in answers] == [(2, "length")] * 3


def test_a_page_stops_at_the_checkpoints_end_of_sequence_token(
    tiny_model_dir: Path, engine: TransformersEngine, pages: list[Image.Image], tmp_path: Path
) -> None:
    # A random model never says <|im_end|> on purpose, so take a checkpoint whose generation config
    # lists, besides <|im_end|> and <|endoftext|>, a token that page 0 emits greedily and page 1 never
    # does: page 0 must stop there, page 1 (same batch) must run on to the limit.
    free = [t.token_ids for t in engine.generate_tokens(pages[:2])]
    target = next(t for t in free[0][1:] if t not in free[1] and t >= len(SPECIAL_TOKENS))
    stop_at = free[0].index(target)

    stopping = tmp_path / "stopping"
    shutil.copytree(tiny_model_dir, stopping)
    gen_path = stopping / "generation_config.json"
    gen_config = json.loads(gen_path.read_text())
    gen_config["eos_token_id"] = [*gen_config["eos_token_id"], target]
    gen_path.write_text(json.dumps(gen_config))

    stopper = load_engine(options(stopping, batch_size=2))
    first, second = stopper.generate(pages[:2])
    assert first.generation.finish_reason == "stop"
    assert first.generation.tokens_out == stop_at + 1  # up to and including the stop token, no padding
    assert first.text == engine.tokenizer.decode(list(free[0][: stop_at + 1]), skip_special_tokens=True)
    assert (second.generation.finish_reason, second.generation.tokens_out) == ("length", 8)


def test_generation_writes_nothing_to_stdout_or_stderr(
    engine: TransformersEngine, pages: list[Image.Image], capfd: pytest.CaptureFixture[str]
) -> None:
    # The tiny checkpoint carries Qwen's released sampling settings (do_sample, temperature 0.1,
    # top_p, top_k); greedy decoding must not make transformers complain about them.
    capfd.readouterr()
    engine.generate(pages)
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_default_dtype_on_cpu_follows_native_bfloat16_and_generates(
    tiny_model_dir: Path, pages: list[Image.Image]
) -> None:
    eng = load_engine(options(tiny_model_dir, dtype="auto", attn="auto", max_new_tokens=2))
    # bfloat16 only where the CPU computes it natively; emulated bfloat16 is hundreds of times slower. The
    # vision encoder stays float32 on a CPU (faster there: docparse.engines.cpu_dtypes).
    assert language_dtype(eng.model) == (torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32)
    assert visual_module(eng.model).dtype == torch.float32
    assert eng.model.config._attn_implementation == "sdpa"
    assert [a.generation.tokens_out for a in eng.generate(pages[:1])] == [2]


def test_a_page_not_at_the_models_size_is_refused(engine: TransformersEngine) -> None:
    with pytest.raises(EngineError, match="multiples of 28"):
        engine.build_inputs([page(60, 90, 0)])


def test_a_closed_engine_refuses_to_generate(tiny_model_dir: Path, pages: list[Image.Image]) -> None:
    eng = load_engine(options(tiny_model_dir))
    eng.close()
    with pytest.raises(EngineError, match="closed"):
        eng.generate(pages[:1])


# --- inputs and M-RoPE -------------------------------------------------------------------------


def official_processor(model_dir: Path) -> Any:
    """transformers' own Qwen2_5_VLProcessor, loaded from the folder, without its video processor.

    The video processor needs torchvision; the only change is that the processor's class check
    accepts its absence. Everything that builds image inputs is the official code.
    """
    from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLProcessor

    class ImageOnlyProcessor(Qwen2_5_VLProcessor):
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    return ImageOnlyProcessor(
        image_processor=AutoImageProcessor.from_pretrained(model_dir),
        tokenizer=AutoTokenizer.from_pretrained(model_dir),
        video_processor=None,
    )


def processor_inputs(model_dir: Path, images: list[Image.Image]) -> dict[str, torch.Tensor]:
    text = chat_text(DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT, IMAGE_PAD)  # one pad: the processor expands it
    out = official_processor(model_dir)(
        text=[text] * len(images), images=images, padding=True, padding_side="left", return_tensors="pt"
    )
    return dict(out)


KEYS = ["input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"]


@pytest.mark.parametrize("count", [1, 3])
def test_inputs_equal_what_the_official_processor_builds(
    tiny_model_dir: Path, engine: TransformersEngine, pages: list[Image.Image], count: int
) -> None:
    ours = engine.build_inputs(pages[:count])
    theirs = processor_inputs(tiny_model_dir, pages[:count])
    assert sorted(ours) == sorted(KEYS)
    for key in KEYS:
        assert ours[key].dtype == theirs[key].dtype, key
        assert torch.equal(ours[key], theirs[key]), key
    grid = ours["image_grid_thw"].tolist()
    assert [(w * 14, h * 14) for _, h, w in grid] == [p.size for p in pages[:count]]


def test_image_tokens_get_3d_positions_only_through_mm_token_type_ids(
    tiny_model_dir: Path, engine: TransformersEngine, pages: list[Image.Image]
) -> None:
    ours = engine.build_inputs(pages)
    ids, types = ours["input_ids"], ours["mm_token_type_ids"]
    image_id = engine.model.config.image_token_id
    assert torch.equal(types.bool(), ids == image_id)  # exactly the image pad tokens are marked
    assert types.sum(dim=1).tolist() == [int(g.prod()) // 4 for g in ours["image_grid_thw"]]

    # The positions the model derives from these inputs are 3-D on the image: its height and
    # width rows differ there, while text tokens keep one position on all three rows.
    positions, deltas = engine.model.model.get_rope_index(
        ids, types, image_grid_thw=ours["image_grid_thw"], attention_mask=ours["attention_mask"]
    )
    image = types.bool()
    assert not torch.equal(positions[1][image], positions[2][image])
    text = ~image & ours["attention_mask"].bool()
    assert torch.equal(positions[0][text], positions[1][text])
    assert torch.equal(positions[1][text], positions[2][text])

    def logits(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return engine.model(**inputs, use_cache=False).logits

    theirs = processor_inputs(tiny_model_dir, pages)
    reference = logits(theirs)
    assert torch.allclose(logits(ours), reference, atol=1e-5)
    # An engine that forgot mm_token_type_ids would run on 1-D positions: other logits.
    without = {k: v for k, v in ours.items() if k != "mm_token_type_ids"}
    real = ours["attention_mask"].bool()
    assert (logits(without) - reference)[real].abs().max() > 1e-3

    # And generate() hands them to the model: it keeps the 3-D positions' offsets for decoding
    # (all zeros had it fallen back to 1-D positions).
    assert (deltas != 0).all()
    engine.generate(pages)
    assert torch.equal(engine.model.model.rope_deltas, deltas)


# --- choosing device, dtype, attention ----------------------------------------------------------


def test_device_dtype_and_attention_choices() -> None:
    assert resolve_dtype("auto", "cpu") == (torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32)
    assert resolve_dtype("float16", "cpu") == torch.float16
    assert resolve_attn("auto", "cpu", torch.float32) == "sdpa"
    assert resolve_attn("eager", "cpu", torch.float32) == "eager"
    with pytest.raises(UsageError, match="flash_attn"):
        resolve_attn("flash_attention_2", "cpu", torch.bfloat16)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_a_usage_error(tiny_model_dir: Path) -> None:
    with pytest.raises(UsageError, match="--device cuda"):
        load_engine(options(tiny_model_dir, device="cuda"))


# --- finding the model -------------------------------------------------------------------------


def test_a_folder_that_is_not_a_qwen2_5_vl_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"config\.json"):
        load_engine(options(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelUnavailableError, match=r"not Qwen2\.5-VL"):
        load_engine(options(tmp_path))
    with pytest.raises(ModelUnavailableError, match="no such checkpoint folder"):
        load_engine(options(tmp_path / "missing" / "model"))


_LOAD_DEFAULT_MODEL = """
import json, time
from docparse.config import ModelOptions
from docparse.engines.transformers import load_engine
from docparse.errors import ModelUnavailableError
start = time.monotonic()
try:
    load_engine(ModelOptions(device="cpu"))
    error = None
except ModelUnavailableError as exc:
    error = str(exc)
print(json.dumps({"error": error, "seconds": time.monotonic() - start}))
"""


def load_default_model_in_subprocess(hf_home: Path, **env: str) -> tuple[str, float]:
    """Load the default hub id in a fresh interpreter (huggingface_hub reads its env at import).

    Returns the ModelUnavailableError's message and how long the failure took.
    """
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_")) and "proxy" not in k.lower()
    }
    clean.update(HF_HOME=str(hf_home), NO_PROXY="127.0.0.1,localhost", **env)
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_DEFAULT_MODEL],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["error"] is not None, "the default model loaded, with no hub to load it from"
    return result["error"], result["seconds"]


def assert_ways_out(message: str) -> None:
    assert "\n" not in message
    assert DEFAULT_MODEL in message and "could not be had" not in message
    assert "--model PATH" in message
    if "HF_HUB_OFFLINE is set" in message:  # no advice to set what is set: unset it to download
        assert "cannot be loaded" in message and "unset HF_HUB_OFFLINE" in message and "=1" not in message
    else:
        assert "could not be downloaded" in message and "HF_HUB_OFFLINE=1" in message
    assert "--engine openai --api-base URL" in message


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A hub that accepts connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"error": "Repository Not Found"}'
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def not_found_server() -> Iterator[str]:
    """A hub that answers 404 repository-not-found to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_offline_without_a_cached_model_fails_at_once(tmp_path: Path) -> None:
    message, seconds = load_default_model_in_subprocess(tmp_path, HF_HUB_OFFLINE="1")
    assert_ways_out(message)
    assert "HF_HUB_OFFLINE is set" in message
    assert seconds < 5


def test_an_unreachable_hub_fails_within_seconds(tmp_path: Path) -> None:
    message, seconds = load_default_model_in_subprocess(tmp_path, HF_ENDPOINT="http://127.0.0.1:9")
    assert_ways_out(message)
    assert "127.0.0.1:9" in message
    assert seconds < 5


def test_a_hub_that_never_answers_fails_after_the_metadata_timeout(tmp_path: Path, silent_server: str) -> None:
    message, seconds = load_default_model_in_subprocess(tmp_path, HF_ENDPOINT=silent_server, HF_HUB_ETAG_TIMEOUT="1")
    assert_ways_out(message)
    assert "Timeout" in message
    # 1 s for the metadata request, plus up to 3 s huggingface_hub gives its own telemetry request.
    assert seconds < 8


def test_a_model_the_hub_does_not_have_fails_with_the_ways_out(tmp_path: Path, not_found_server: str) -> None:
    message, seconds = load_default_model_in_subprocess(tmp_path, HF_ENDPOINT=not_found_server)
    assert_ways_out(message)
    assert "RepositoryNotFoundError" in message
    assert seconds < 5


def test_offline_with_a_prefilled_cache_loads_the_hub_id(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    # The layout huggingface_hub gives a downloaded model: refs/main names a snapshot folder.
    cache = tmp_path / "hub"
    repo = cache / ("models--" + DEFAULT_MODEL.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    # What HF_HOME and HF_HUB_OFFLINE=1 set when huggingface_hub is imported (it is, in this process).
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    eng = load_engine(options(tiny_model_dir, model=DEFAULT_MODEL, max_new_tokens=2))
    assert eng.checkpoint == repo / "snapshots" / commit
    [answer] = eng.generate([page(56, 56, 0)])
    assert answer.generation.model == DEFAULT_MODEL

    (repo / "snapshots" / commit / "model.safetensors").unlink()  # an interrupted download
    with pytest.raises(ModelUnavailableError) as caught:
        load_engine(options(tiny_model_dir, model=DEFAULT_MODEL))
    assert_ways_out(str(caught.value))
    assert "only partly in the Hugging Face cache" in str(caught.value)
