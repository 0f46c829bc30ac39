"""The local engine: Qwen2.5-VL in transformers, pages generated in batches that halve when memory runs out."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from docparse.config import ModelOptions
from docparse.document import FinishReason, Generation
from docparse.engines import tf_inputs
from docparse.engines.base import GREEDY, Answer, Engine, GenerationSettings
from docparse.engines.checkpoint import check_hub, download_checkpoint, find_checkpoint
from docparse.engines.cpu_dtypes import apply_cpu_dtypes, check_quantize, language_dtype, visual_module
from docparse.engines.device import resolve_attn, resolve_device, resolve_dtype
from docparse.engines.local_batches import LocalBatches
from docparse.engines.memory import (
    AUTO_BATCH_CAP,
    AUTO_BATCH_FLOOR,
    BatchPlan,
    free_memory_bytes,
    is_out_of_memory,
    page_memory,
    plan_batch_size,
)
from docparse.engines.oneline import one_line
from docparse.engines.tokens import IMAGE_PAD, end_ids
from docparse.errors import EngineError, ModelUnavailableError
from docparse.prompt import DEFAULT_MAX_PIXELS, chat_text

if TYPE_CHECKING:
    import torch
    from transformers import GenerationConfig

# torch (about 3 s to import) and transformers are imported where they are first needed, so that
# a model that cannot be had is reported before either is loaded.

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PageTokens:
    """What generation produced for one page, before decoding.

    `token_ids` are the generated ids up to and including the first end-of-sequence id (no padding
    after it); `tokens_in` is the page's unpadded prompt length; `seconds` is its share of its
    batch's wall time.
    """

    token_ids: tuple[int, ...]
    tokens_in: int
    finish_reason: FinishReason
    seconds: float


class _OutOfMemory(Exception):
    """A generate call ran out of memory (its memory already freed); the message is the error's line."""


class TransformersEngine(LocalBatches):
    """Qwen2.5-VL run in this process by transformers; implements docparse.engines.base.Engine.

    Build it with `load_engine`. `model`, `tokenizer` and `image_processor` are the loaded
    transformers objects (read them, do not replace them).
    """

    def __init__(
        self,
        options: ModelOptions,
        checkpoint: Path,
        model: Any,
        tokenizer: Any,
        image_processor: Any,
        device: str,
    ) -> None:
        self.options = options
        self.checkpoint = checkpoint
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.device = device
        image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        if image_token_id is None or image_token_id != model.config.image_token_id:
            raise ModelUnavailableError(
                f"model {options.model}: the tokenizer's {IMAGE_PAD} id ({image_token_id}) is not the "
                f"config's image_token_id ({model.config.image_token_id})"
            )
        self.image_token_id: int = image_token_id
        self.eos_token_ids: tuple[int, ...] = self._eos_ids()
        self.pad_token_id: int = self._pad_id()
        self.generation_config = self._generation_config()
        # generate() fills every unset field of a passed config from model.generation_config, which
        # would bring the checkpoint's sampling knobs back (and a warning that they are ignored).
        model.generation_config = self.generation_config
        # Pages per generate call: --batch-size, or what `load_engine` worked out from free memory
        # for `auto`; halved for good when a chunk runs out of memory.
        self._batch_size = max(1, options.batch_size or 1)
        # Build the next chunk's inputs (tokenise + image processor, about 0.15 s a page) in a
        # thread while this chunk generates. Off on CPU: there both compete for the same cores,
        # and a real-size page's model time is minutes (benchmarks/RESULTS.md, overhead).
        self.prefetch = device != "cpu"

    @property
    def model_id(self) -> str:
        """The model as the user named it (hub id or folder)."""
        return self.options.model

    def _eos_ids(self) -> tuple[int, ...]:
        """End-of-sequence ids: the checkpoint's generation_config ones, plus <|im_end|> (end of turn)."""
        ids = end_ids(self.model.generation_config.eos_token_id, self.tokenizer)
        if not ids:
            raise ModelUnavailableError(f"model {self.options.model}: no end-of-sequence token is defined")
        return tuple(ids)

    def _pad_id(self) -> int:
        return tf_inputs.pad_id(self.tokenizer, self.model.generation_config, self.eos_token_ids)

    def _generation_config(self) -> GenerationConfig:
        """The checkpoint's generation config made greedy (tf_inputs.greedy_config)."""
        return tf_inputs.greedy_config(
            self.model.generation_config, self.options.max_new_tokens, self.eos_token_ids, self.pad_token_id
        )

    def build_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """Model inputs for these pages, as Qwen2_5_VLProcessor builds them, left-padded (tf_inputs.build_inputs)."""
        return tf_inputs.build_inputs(
            images,
            self.image_processor,
            self.tokenizer,
            self.image_token_id,
            self.options.prompt,
            self.options.system_prompt,
        )

    def config_for(self, settings: GenerationSettings) -> GenerationConfig:
        """The engine's greedy config with this call's settings applied (a copy; the engine's is kept)."""
        return tf_inputs.config_for(self.generation_config, settings)

    def _generate_chunk(
        self, images: Sequence[Image.Image], settings: GenerationSettings, inputs: dict[str, torch.Tensor] | None = None
    ) -> list[PageTokens]:
        import torch
        from transformers import StoppingCriteriaList

        from docparse.engines.stopping import RepetitionStop, TimeBudget

        if self.model is None:
            raise EngineError("the engine was closed")
        start = time.perf_counter()
        if inputs is None:
            inputs = self.build_inputs(images)
        prompt_len = inputs["input_ids"].shape[1]
        tokens_in = [int(n) for n in inputs["attention_mask"].sum(dim=1)]
        dtype = visual_module(self.model).dtype  # pixel values go in at the vision encoder's dtype
        loops = RepetitionStop(prompt_len)
        budget = TimeBudget(settings.time_limit, start) if settings.time_limit is not None else None
        criteria = StoppingCriteriaList([c for c in (loops if settings.stop_on_repetition else None, budget) if c])
        if settings.temperature is not None:
            torch.manual_seed(settings.seed)
        failure: str | None = None
        on_device: dict[str, torch.Tensor] = {}
        try:
            on_device = {
                k: (v.to(self.device, dtype) if k == "pixel_values" else v.to(self.device)) for k, v in inputs.items()
            }
            with torch.inference_mode():
                output = self.model.generate(
                    **on_device, generation_config=self.config_for(settings), stopping_criteria=criteria
                )
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                self._free_memory()
                raise EngineError(f"generation failed on {len(images)} page(s): {one_line(exc)}") from exc
            failure = one_line(exc)
        if failure is not None:
            # Outside the except block: the traceback (and the tensors its frames hold) is gone.
            on_device.clear()
            self._free_memory()
            raise _OutOfMemory(failure)
        new_tokens = output[:, prompt_len:].tolist()
        seconds = (time.perf_counter() - start) / len(images)
        eos = set(self.eos_token_ids)
        pages: list[PageTokens] = []
        for index, (row, n_in) in enumerate(zip(new_tokens, tokens_in, strict=True)):
            # A row stopped for looping is padded afterwards (with a pad id that may count as an
            # end of sequence): cut it where it was stopped before looking for its end.
            looped_at = loops.stopped.get(index)
            if looped_at is not None:
                row = row[:looped_at]
            stop = next((i for i, token in enumerate(row) if token in eos), None)
            reason: FinishReason
            if stop is not None:
                row, reason = row[: stop + 1], "stop"
            elif looped_at is not None:
                reason = "repetition"
            elif budget is not None and budget.fired:
                reason = "time"
            else:
                reason = "length"
            pages.append(PageTokens(tuple(row), n_in, reason, seconds))
        return pages

    def generate_tokens(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[PageTokens]:
        """Generation for each page, in chunks of `batch_size` pages of similar size; results in page order.

        Pages are sorted by size (area, then shape) before they are cut into chunks, so a chunk's
        prompts need little padding; with `prefetch` the next chunk's inputs are built while this
        one generates. A chunk that runs out of memory is retried in halves, and the
        halved size is kept for later calls; EngineError only when one page alone does not fit.
        Greedy unless `settings` say otherwise. Each page stops at its own end (end-of-sequence
        token, or caught looping: finish reason "repetition"); `settings.time_limit` bounds each
        chunk (finish reason "time"). A page that has ended still rides in its chunk until the
        last page ends: transformers' generate feeds it padding, which costs its row of each
        later step's arithmetic and keeps its KV cache, but no extra weight reads (the part of a
        decode step that dominates at small batches). Dropping finished rows would need a
        decode loop of our own that shrinks the cache; grouping pages by size does not help,
        since answer lengths do not follow image sizes. Raises EngineError (one line) when
        generation fails.
        """
        order = sorted(range(len(images)), key=lambda i: (images[i].width * images[i].height, images[i].size))
        results: dict[int, PageTokens] = {}
        pool = ThreadPoolExecutor(1, "docparse-prepare") if self.prefetch and len(order) > self._batch_size else None
        ahead: tuple[list[int], Future[dict[str, torch.Tensor]]] | None = None
        done = 0
        try:
            while done < len(order):
                chunk = order[done : done + self._batch_size]
                inputs = None
                if ahead is not None and ahead[0] == chunk:  # else the chunks were halved: build anew
                    inputs = ahead[1].result()
                ahead = None
                following = order[done + len(chunk) : done + len(chunk) + self._batch_size]
                if pool is not None and following:
                    ahead = (following, pool.submit(self.build_inputs, [images[i] for i in following]))
                try:
                    pages = self._generate_chunk([images[i] for i in chunk], settings, inputs)
                except _OutOfMemory as exc:
                    if len(chunk) == 1:
                        raise EngineError(
                            f"out of memory on one page alone ({exc}); use a smaller --max-pixels or "
                            f"--max-new-tokens, or a device with more memory"
                        ) from None
                    self._halve(len(chunk), log, "out of memory on %d pages at once")
                    continue
                results.update(zip(chunk, pages, strict=True))
                done += len(chunk)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return [results[i] for i in range(len(images))]

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        """The model's answer for each page, in page order, special tokens removed from the text."""
        answers: list[Answer] = []
        for page in self.generate_tokens(images, settings):
            text = self.tokenizer.decode(
                list(page.token_ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            generation = Generation(
                model=self.model_id,
                prompt=self.options.prompt,
                tokens_in=page.tokens_in,
                tokens_out=len(page.token_ids),
                seconds=page.seconds,
                finish_reason=page.finish_reason,
            )
            answers.append(Answer(text=text, generation=generation))
        return answers

    def plan_batch_size(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> BatchPlan:
        """What `--batch-size auto` picks now: pages at `max_pixels` that fit the free memory, capped by device.

        Reads the model's shapes (layers, KV heads, head dim, MLP and vision widths, dtype), the
        prompt's text length, `max_new_tokens` and the memory free on the device (CUDA:
        torch.cuda.mem_get_info; else available RAM). Call it after the model is loaded.
        """
        text_tokens = len(
            self.tokenizer(chat_text(self.options.prompt, self.options.system_prompt, ""), add_special_tokens=False)[
                "input_ids"
            ]
        )
        page_bytes, shared_bytes = page_memory(
            self.model.config,
            language_dtype(self.model).itemsize,
            max_pixels,
            self.options.max_new_tokens,
            text_tokens,
            str(getattr(self.model.config, "_attn_implementation", "sdpa")),
        )
        cap = AUTO_BATCH_CAP.get(self.device, 1)
        floor = AUTO_BATCH_FLOOR.get(self.device, 1)
        return plan_batch_size(page_bytes, shared_bytes, free_memory_bytes(self.device), cap, floor)

    def _free_memory(self) -> None:
        import torch

        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()

    def close(self) -> None:
        """Drop the model and free its memory; the engine cannot generate afterwards."""
        self.model = None
        self._free_memory()


def load_engine(options: ModelOptions, max_pixels: int = DEFAULT_MAX_PIXELS) -> TransformersEngine:
    """Load the checkpoint `options.model` names onto the chosen device, ready to generate.

    With `options.batch_size` None (`--batch-size auto`) the batch size is chosen once here from
    the memory left free after loading, for pages of up to `max_pixels` (`plan_batch_size`).
    Raises ModelUnavailableError when the checkpoint cannot be found, fetched or loaded, and
    UsageError when the device or attention asked for cannot be used here.
    """
    # Cheap failures first: a missing model is reported before torch is imported, and a device
    # that cannot be used before gigabytes are downloaded.
    folder = find_checkpoint(options.model, options.revision)
    if folder is None:
        check_hub(options.model, options.revision)
    device = resolve_device(options.device)
    check_quantize(options.quantize, device, options.dtype)
    dtype = resolve_dtype("float32" if options.quantize else options.dtype, device)
    attn = resolve_attn(options.attn, device, dtype)
    if folder is None:
        folder = download_checkpoint(options.model, options.revision)

    from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    load_kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn}
    if device != "cpu":
        load_kwargs["device_map"] = device
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        image_processor = AutoImageProcessor.from_pretrained(folder)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, **load_kwargs)
    except (OSError, ValueError, ImportError, KeyError) as exc:
        raise ModelUnavailableError(f"model {options.model}: cannot load {folder}: {one_line(exc)}") from exc
    model.eval()
    if device == "cpu":
        apply_cpu_dtypes(model, device, options.dtype, options.quantize)
    engine = TransformersEngine(options, folder, model, tokenizer, image_processor, device)
    if options.batch_size is None:
        plan = engine.plan_batch_size(max_pixels)
        engine._batch_size = plan.batch_size
        log.info(
            "batch size auto: %d (%.2f GiB per page, %.2f GiB free, cap %d on %s)",
            plan.batch_size,
            plan.page_bytes / 2**30,
            plan.free_bytes / 2**30,
            plan.cap,
            device,
        )
    return engine


if TYPE_CHECKING:

    def _implements_engine(engine: TransformersEngine) -> Engine:
        """Lets mypy check that TransformersEngine satisfies the Engine protocol."""
        return engine
