"""Throughput on the tiny model: pages grouped by size, out-of-memory halving, and `--batch-size auto`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from docparse.config import ModelOptions, parse_batch_size
from docparse.engines import memory
from docparse.engines import transformers as tf
from docparse.engines.memory import page_memory, plan_batch_size
from docparse.engines.transformers import TransformersEngine, load_engine
from docparse.errors import EngineError, UsageError
from docparse.keywords import convert_options
from tests.paths import REPO

# Two shapes, interleaved: a size-blind chunking would pad every chunk.
SHAPES = [(56, 84), (112, 112), (56, 84), (112, 112), (56, 84)]


def noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [noise(w, h, seed) for seed, (w, h) in enumerate(SHAPES)]


def load(model_dir: Path, **kw: Any) -> TransformersEngine:
    base: dict[str, Any] = {"model": str(model_dir), "device": "cpu", "dtype": "float32", "max_new_tokens": 8}
    base.update(kw)
    return load_engine(ModelOptions(**base))


@pytest.fixture(scope="module")
def alone(tiny_model_dir: Path, images: list[Image.Image]) -> list[str]:
    """Each page's answer generated on its own: what every batching must reproduce."""
    engine = load(tiny_model_dir, batch_size=1)
    texts = [engine.generate([image])[0].text for image in images]
    engine.close()
    assert len(set(texts)) == len(texts)  # distinct answers, so a mix-up would show
    return texts


class GenerateSpy:
    """Wraps the model's generate: records each call's batch and raises out-of-memory above `limit` rows."""

    def __init__(self, engine: TransformersEngine, limit: int | None = None, error: BaseException | None = None):
        self.inner = engine.model.generate
        self.limit = limit
        self.error = error or torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.calls: list[tuple[int, int]] = []  # (rows, padded prompt length)
        self.failed: list[int] = []
        engine.model.generate = self

    def __call__(self, **kwargs: Any) -> Any:
        rows, length = kwargs["input_ids"].shape
        if self.limit is not None and rows > self.limit:
            self.failed.append(rows)
            raise self.error
        self.calls.append((rows, length))
        return self.inner(**kwargs)


@pytest.fixture
def engine4(tiny_model_dir: Path) -> Iterator[TransformersEngine]:
    engine = load(tiny_model_dir, batch_size=4)
    yield engine
    engine.close()


def test_pages_are_grouped_by_size_and_answered_in_input_order(
    engine4: TransformersEngine, images: list[Image.Image], alone: list[str]
) -> None:
    spy = GenerateSpy(engine4)
    answers = engine4.generate(images)
    assert [a.text for a in answers] == alone
    # Three small pages and two large ones: chunks of 4 then 1, the small ones together first.
    assert [rows for rows, _ in spy.calls] == [4, 1]
    small_prompt = answers[0].generation.tokens_in
    assert [a.generation.tokens_in for a in answers[::2]] == [small_prompt] * 3
    # The first chunk holds the three small pages and one large one: padded to the large one only.
    assert spy.calls[0][1] == answers[1].generation.tokens_in


def test_inputs_built_ahead_in_a_thread_give_the_same_answers(
    engine4: TransformersEngine, images: list[Image.Image], alone: list[str]
) -> None:
    engine4.prefetch = True  # on by default off the CPU only
    engine4._batch_size = 2
    built: list[int] = []
    inner = engine4.build_inputs

    def build_inputs(pages: Any) -> Any:
        built.append(len(pages))
        return inner(pages)

    engine4.build_inputs = build_inputs  # type: ignore[method-assign]
    assert [a.text for a in engine4.generate(images)] == alone
    assert built == [2, 2, 1]  # each chunk built once: the second and third ahead of their turn
    # A halving discards the chunk built ahead at the old size and still answers every page.
    spy = GenerateSpy(engine4, limit=1)
    built.clear()
    assert [a.text for a in engine4.generate(images)] == alone
    assert spy.failed == [2]
    assert sorted(built) == [1, 1, 1, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: 8 GB"),
        MemoryError(),
    ],
    ids=["cuda", "cpu-allocator", "python"],
)
def test_out_of_memory_halves_the_batch_and_keeps_the_answers(
    engine4: TransformersEngine, images: list[Image.Image], alone: list[str], error: BaseException
) -> None:
    spy = GenerateSpy(engine4, limit=1, error=error)
    answers = engine4.generate(images)
    assert [a.text for a in answers] == alone
    assert all(a.generation.finish_reason == "length" for a in answers)
    assert spy.failed == [4, 2]  # 4 fails, 2 fails, then 1 page at a time
    assert engine4.batch_size == 1
    # The smaller size is remembered: the next call does not try 4 or 2 again.
    spy.failed.clear()
    again = engine4.generate(images[:3])
    assert [a.text for a in again] == alone[:3]
    assert spy.failed == []


def test_out_of_memory_stops_halving_at_the_size_that_fits(
    engine4: TransformersEngine, images: list[Image.Image], alone: list[str]
) -> None:
    spy = GenerateSpy(engine4, limit=2)
    assert [a.text for a in engine4.generate(images)] == alone
    assert spy.failed == [4]
    assert engine4.batch_size == 2
    assert [rows for rows, _ in spy.calls] == [2, 2, 1]


def test_one_page_that_does_not_fit_alone_is_an_engine_error(
    engine4: TransformersEngine, images: list[Image.Image]
) -> None:
    GenerateSpy(engine4, limit=0)
    with pytest.raises(EngineError, match="out of memory on one page alone") as info:
        engine4.generate(images[:2])
    assert "--max-pixels" in str(info.value)
    assert "\n" not in str(info.value)


def test_other_runtime_errors_fail_at_once_without_halving(
    engine4: TransformersEngine, images: list[Image.Image]
) -> None:
    spy = GenerateSpy(engine4, limit=0, error=RuntimeError("shape mismatch in attention"))
    with pytest.raises(EngineError, match="shape mismatch"):
        engine4.generate(images)
    assert spy.failed == [4]
    assert engine4.batch_size == 4


# --- --batch-size auto --------------------------------------------------------------------------


def qwen_3b_config() -> Any:
    from transformers import Qwen2_5_VLConfig

    raw = json.loads((REPO / "benchmarks" / "configs" / "qwen2_5_vl_3b.json").read_text())
    raw.pop("_source")
    return Qwen2_5_VLConfig(**raw)


def test_page_memory_counts_the_kv_cache_of_the_published_3b_shape() -> None:
    config = qwen_3b_config()
    short, _ = page_memory(config, 2, 2048 * 28 * 28, 0, 40)
    long, _ = page_memory(config, 2, 2048 * 28 * 28, 1000, 40)
    # K and V, 36 layers, 2 KV heads of 128 dims, bfloat16: 36 KiB per token.
    assert long - short == 1000 * 2 * 36 * 2 * 128 * 2
    # float32 doubles everything; a bigger page costs more.
    assert page_memory(config, 4, 2048 * 28 * 28, 1000, 40)[0] == 2 * long
    assert page_memory(config, 2, 4096 * 28 * 28, 1000, 40)[0] > long
    # Only eager attention materialises the vision encoder's full-attention scores.
    assert page_memory(config, 2, 2048 * 28 * 28, 1000, 40, "sdpa")[1] == 0
    assert page_memory(config, 2, 2048 * 28 * 28, 1000, 40, "eager")[1] == 16 * 8192 * 8192 * 2


def test_plan_takes_what_fits_within_the_cap() -> None:
    gib = 2**30
    page = gib // 4
    # 80% of 10 GiB is 8 GiB; at 1.5x a page costs 0.375 GiB: 21 pages fit.
    assert plan_batch_size(page, 0, 10 * gib, cap=64).batch_size == 21
    assert plan_batch_size(page, 0, 10 * gib, cap=4).batch_size == 4
    assert plan_batch_size(page, 6 * gib, 10 * gib, cap=64).batch_size == 1  # shared 9 GiB at 1.5x: none fit
    assert plan_batch_size(page, 0, 0, cap=4).batch_size == 1  # at least one page: halving handles the rest
    # A floor: fewer pages than it fit, so one at a time (on a CPU 2 to 4 rows decode no faster than 1).
    assert plan_batch_size(page, 0, 2 * gib, cap=16, floor=8).batch_size == 1  # 4 fit
    assert plan_batch_size(page, 0, 4 * gib, cap=16, floor=8).batch_size == 8  # 8 fit


def test_auto_batch_size_is_chosen_at_load_from_free_memory(
    tiny_model_dir: Path, images: list[Image.Image], alone: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    roomy = load(tiny_model_dir)  # batch_size None: auto
    assert roomy.batch_size == memory.AUTO_BATCH_CAP["cpu"]  # the tiny model fits many times over
    spy = GenerateSpy(roomy)
    assert [a.text for a in roomy.generate(images)] == alone
    assert [rows for rows, _ in spy.calls] == [5]

    page_bytes = roomy.plan_batch_size().page_bytes

    def room_for(pages: float) -> None:
        free = int(pages * page_bytes * memory.AUTO_SAFETY / memory.AUTO_MEMORY_SHARE)
        monkeypatch.setattr(tf, "free_memory_bytes", lambda device: free)

    room_for(9.5)
    assert load(tiny_model_dir).batch_size == 9
    room_for(5.5)  # on a CPU fewer than 8 pages at once decode no faster than one
    assert load(tiny_model_dir).batch_size == 1
    monkeypatch.setattr(tf, "free_memory_bytes", lambda device: 0)
    assert load(tiny_model_dir).batch_size == 1
    assert load(tiny_model_dir, batch_size=3).batch_size == 3  # a number given is kept


def test_batch_size_option_takes_auto_or_a_positive_number() -> None:
    assert parse_batch_size("auto") is None
    assert parse_batch_size("8") == 8
    for bad in ("0", "-2", "many", "2.5"):
        with pytest.raises(UsageError, match="--batch-size"):
            parse_batch_size(bad)
    assert convert_options().model.batch_size is None  # auto is the default
    with pytest.raises(UsageError):
        convert_options(batch_size=0)
