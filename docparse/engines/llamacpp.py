"""The llama.cpp engine: a GGUF Qwen2.5-VL run in this process through llama-cpp-python (libllama + libmtmd).

One llama.cpp context holds one sequence per page of a generate call: each page's image is encoded and its
prompt prefilled into its own sequence, then every unfinished page decodes one token per step in one shared
batch (a decode step reads the weights once for all of them). Pages stop on their own: end of turn, a loop
caught in their tokens (docparse.engines.looping), their token budget; the call stops at its time limit.
llama.cpp contexts are not thread-safe, so the engine takes one call at a time (concurrency 1).
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from docparse.config import ModelOptions, RasterOptions
from docparse.document import FinishReason, Generation
from docparse.engines.base import GREEDY, Answer, GenerationSettings
from docparse.engines.gguf import GGUFFiles, hub_name, resolve_gguf
from docparse.engines.llamacpp_lib import default_threads, library, quiet_logs
from docparse.engines.local_batches import LocalBatches
from docparse.engines.looping import loops_after
from docparse.engines.prompting import render_prompt
from docparse.errors import EngineError, ModelUnavailableError
from docparse.prompt import FACTOR

if TYPE_CHECKING:
    from docparse.engines.base import Engine

log = logging.getLogger(__name__)

# Qwen2.5-VL's released generation_config.json sets repetition_penalty 1.05 (the transformers engine keeps
# it); a GGUF file carries no generation config, so the engine applies the same by default.
DEFAULT_REPETITION_PENALTY = 1.05
# Pages decoded together by `--batch-size auto`: on a 2-core CPU, 4 sequences in one batch gave 6x the
# tokens/s of transformers float32 (benchmarks/RESULTS.md, llamacpp); more mostly adds KV-cache memory.
AUTO_BATCH = 4
# Prompt tokens besides the image (system prompt, request, chat layout), rounded up: room in each sequence.
TEXT_ROOM = 256
# Tokens per llama_decode call while prefilling (llama.cpp's default n_batch).
N_BATCH = 512


class _NoContext(EngineError):
    """llama.cpp could not allocate a context (KV cache) this big."""


@dataclass(slots=True)
class _Page:
    """One page of a call while it generates: its sequence, position, sampler and tokens so far."""

    seq: int
    tokens_in: int
    n_past: int
    sampler: Any
    max_new: int
    ids: list[int]
    reason: FinishReason | None = None


class LlamaCppEngine(LocalBatches):
    """A GGUF Qwen2.5-VL in llama.cpp; implements docparse.engines.base.Engine. Build it with `load_llamacpp_engine`.

    One call at a time (LocalBatches): a llama.cpp context is not thread-safe, and one call already batches
    its pages; `batch_size` is --batch-size, or 4 for auto, halved when their context does not fit.
    """

    def __init__(self, options: ModelOptions, files: GGUFFiles, raster: RasterOptions, threads: int) -> None:
        self.options = options
        self.files = files
        self.raster = raster
        self.threads = threads
        self.lib, self.mtmd = library()
        lib, mtmd = self.lib, self.mtmd
        quiet_logs(lib, mtmd)
        lib.llama_backend_init()
        params = lib.llama_model_default_params()
        self.model = lib.llama_model_load_from_file(str(files.model).encode(), params)
        if not self.model:
            raise ModelUnavailableError(f"model {files.model}: llama.cpp cannot load it (not a supported GGUF model)")
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        mparams = mtmd.mtmd_context_params_default()
        mparams.use_gpu = params.n_gpu_layers != 0
        mparams.n_threads = threads
        mparams.print_timings = False
        mparams.warmup = False
        # llama.cpp resizes a Qwen2.5-VL image into [min, max] tokens with smart_resize's arithmetic; docparse's
        # pages are already inside its own bounds, and a band of a page (the retry ladder) may be smaller.
        mparams.image_min_tokens = 1
        mparams.image_max_tokens = max(1, raster.max_pixels // (FACTOR * FACTOR))
        self.mctx = mtmd.mtmd_init_from_file(str(files.mmproj).encode(), self.model, mparams)
        if not self.mctx or not mtmd.mtmd_support_vision(self.mctx):
            self.close()
            raise ModelUnavailableError(f"--mmproj {files.mmproj}: llama.cpp cannot load it as a vision projector")
        self.marker = mtmd.mtmd_default_marker().decode()
        template = lib.llama_model_chat_template(self.model, None)
        self.prompt_text = render_prompt(
            template.decode("utf-8", "replace") if template else None,
            options.prompt,
            options.system_prompt,
            self.marker,
        )
        self.ctx: Any = None
        self._capacity = (0, 0)  # sequences and cells per sequence of the current context
        self._batch_size = max(1, options.batch_size or AUTO_BATCH)
        # Counters a caller may read (tests, benchmarks): image tokens checked, decode steps run.
        self.images_checked = 0
        self.decode_steps = 0

    @property
    def model_id(self) -> str:
        """The GGUF repository or file the model came from."""
        return hub_name(self.options.model)

    # --- the context ---------------------------------------------------------------------------

    def _ensure_context(self, sequences: int, cells: int) -> None:
        """A context with room for `sequences` sequences of `cells` tokens each (the current one if it has it)."""
        lib = self.lib
        have_seqs, have_cells = self._capacity
        if self.ctx is not None and have_seqs >= sequences and have_cells >= cells:
            lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
            return
        if self.ctx is not None:
            lib.llama_free(self.ctx)
            self.ctx = None
        sequences, cells = max(sequences, have_seqs), max(cells, have_cells)
        params = lib.llama_context_default_params()
        params.n_ctx = sequences * cells
        params.n_batch = N_BATCH
        params.n_ubatch = N_BATCH
        params.n_seq_max = sequences
        params.n_threads = self.threads
        params.n_threads_batch = self.threads
        params.kv_unified = False
        params.no_perf = True
        self.ctx = lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            self._capacity = (0, 0)
            raise _NoContext(
                f"llama.cpp could not make a context for {sequences} page(s) of {cells} tokens (out of memory?); "
                f"use a smaller --batch-size, --max-pixels or --max-new-tokens"
            )
        self._capacity = (sequences, cells)

    # --- one call --------------------------------------------------------------------------------

    def _tokenize(self, image: Image.Image) -> tuple[Any, int]:
        """The page's prompt chunks (text, image, text) and its prompt length in tokens.

        Raises EngineError unless the image chunk is exactly the rendered image: (height/28) x (width/28)
        tokens, as llama.cpp reports them, so that the boxes the model writes are in this image's pixels.
        """
        mtmd = self.mtmd
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        width, height = rgb.size
        data = rgb.tobytes()
        bitmap = mtmd.mtmd_bitmap_init(width, height, (ctypes.c_uint8 * len(data)).from_buffer_copy(data))
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            text = mtmd.mtmd_input_text()
            encoded = self.prompt_text.encode("utf-8")
            text.text, text.text_len, text.add_special, text.parse_special = encoded, len(encoded), False, True
            bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            status = mtmd.mtmd_tokenize(self.mctx, chunks, ctypes.byref(text), bitmaps, 1)
            if status != 0:
                raise EngineError(f"llama.cpp could not read the {width}x{height} page image (mtmd_tokenize {status})")
            seen = []
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    tokens = mtmd.mtmd_input_chunk_get_tokens_image(chunk)
                    nx, ny = mtmd.mtmd_image_tokens_get_nx(tokens), mtmd.mtmd_image_tokens_get_ny(tokens)
                    seen.append((nx, ny, mtmd.mtmd_image_tokens_get_n_tokens(tokens)))
            want = (width // FACTOR, height // FACTOR)
            if len(seen) != 1 or seen[0] != (*want, want[0] * want[1]) or width % FACTOR or height % FACTOR:
                got = ", ".join(f"{nx}x{ny} ({n} tokens)" for nx, ny, n in seen) or "no image"
                raise EngineError(
                    f"llama.cpp did not take the {width}x{height} page image as is: it made {got} where "
                    f"{want[0]}x{want[1]} tokens of 28x28 px were due; boxes would not map back"
                )
            self.images_checked += 1
            n_tokens = mtmd.mtmd_helper_get_n_tokens(chunks)
        except BaseException:
            mtmd.mtmd_input_chunks_free(chunks)
            raise
        finally:
            mtmd.mtmd_bitmap_free(bitmap)
        return chunks, int(n_tokens)

    def _sampler(self, settings: GenerationSettings, cells: int) -> Any:
        """The sampler chain for one page: repetition penalty over its context, then greedy or seeded sampling."""
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        penalty = settings.repetition_penalty if settings.repetition_penalty is not None else DEFAULT_REPETITION_PENALTY
        if penalty != 1.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_penalties(self.n_vocab, cells, penalty, 0.0, 0.0))
        if settings.temperature is None:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        else:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(settings.temperature))
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(settings.seed & 0xFFFFFFFF))
        return chain

    def _prefill(self, seq: int, chunks: Any, sampler: Any) -> tuple[int, int]:
        """Encode the image and decode the prompt into sequence `seq`; the position after it and the first token."""
        lib, mtmd = self.lib, self.mtmd
        size = ctypes.c_size_t(0)
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):  # the penalty sees the prompt's text, as in transformers
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                ids = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(size))
                for k in range(size.value):
                    lib.llama_sampler_accept(sampler, ids[k])
        n_past = lib.llama_pos(0)
        status = mtmd.mtmd_helper_eval_chunks(self.mctx, self.ctx, chunks, 0, seq, N_BATCH, True, ctypes.byref(n_past))
        if status != 0:
            raise EngineError(f"llama.cpp failed to read a page's prompt (mtmd_helper_eval_chunks {status})")
        return int(n_past.value), int(lib.llama_sampler_sample(sampler, self.ctx, -1))

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        """The model's answer for each page, in page order, `batch_size` pages decoded together at a time."""
        answers: list[Answer] = []
        while len(answers) < len(images):
            chunk = images[len(answers) : len(answers) + self._batch_size]
            try:
                answers.extend(self._generate_chunk(chunk, settings))
            except _NoContext:
                if len(chunk) == 1:
                    raise
                self._halve(len(chunk), log, "no llama.cpp context for %d pages at once")
        return answers

    def _generate_chunk(self, images: Sequence[Image.Image], settings: GenerationSettings) -> list[Answer]:
        if self.model is None:
            raise EngineError("the engine was closed")
        lib = self.lib
        start = time.perf_counter()
        max_new = settings.max_new_tokens or self.options.max_new_tokens
        prompts: list[tuple[Any, int]] = []
        pages: list[_Page] = []
        batch = None
        try:
            for image in images:
                prompts.append(self._tokenize(image))
            cells = max(n for _, n in prompts) + max_new + 1
            self._ensure_context(len(images), cells)
            for seq, (chunks, n_in) in enumerate(prompts):
                sampler = self._sampler(settings, cells)
                pages.append(_Page(seq, n_in, 0, sampler, max_new, []))
                pages[-1].n_past, first = self._prefill(seq, chunks, sampler)
                self._take(pages[-1], first, settings.stop_on_repetition)
            batch = lib.llama_batch_init(len(images), 0, 1)
            self._decode(pages, batch, settings, start)
        finally:
            if batch is not None:
                lib.llama_batch_free(batch)
            for chunks, _ in prompts:
                self.mtmd.mtmd_input_chunks_free(chunks)
            for page in pages:
                lib.llama_sampler_free(page.sampler)
        seconds = (time.perf_counter() - start) / len(images)
        return [self._answer(page, seconds) for page in pages]

    def _take(self, page: _Page, token: int, loops: bool) -> None:
        """Add a sampled token to a page, and end the page when it ends its turn, loops or runs out of tokens."""
        if self.lib.llama_vocab_is_eog(self.vocab, token):
            page.ids.append(token)
            page.reason = "stop"
            return
        page.ids.append(token)
        n = len(page.ids)
        if loops and loops_after(page.ids, n):
            page.reason = "repetition"
        elif n >= page.max_new:
            page.reason = "length"

    def _decode(self, pages: list[_Page], batch: Any, settings: GenerationSettings, start: float) -> None:
        """Decode one token for every unfinished page per step, in one batch, until all have ended."""
        lib = self.lib
        while True:
            active = [p for p in pages if p.reason is None]
            if not active:
                return
            if settings.time_limit is not None and time.perf_counter() - start > settings.time_limit:
                for page in active:
                    page.reason = "time"
                return
            batch.n_tokens = len(active)
            for j, page in enumerate(active):
                batch.token[j] = page.ids[-1]
                batch.pos[j] = page.n_past
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = page.seq
                batch.logits[j] = 1
            status = lib.llama_decode(self.ctx, batch)
            if status != 0:
                raise EngineError(f"llama.cpp failed to decode (llama_decode {status}: no room in the KV cache?)")
            self.decode_steps += 1
            for j, page in enumerate(active):
                page.n_past += 1
                self._take(page, int(lib.llama_sampler_sample(page.sampler, self.ctx, j)), settings.stop_on_repetition)

    def _answer(self, page: _Page, seconds: float) -> Answer:
        ids = page.ids
        if page.reason == "stop":
            ids = ids[:-1]  # the end-of-turn token is not text
        array = (self.lib.llama_token * max(1, len(ids)))(*ids)
        size = 8 * len(ids) + 16
        buffer = ctypes.create_string_buffer(size)
        n = self.lib.llama_detokenize(self.vocab, array, len(ids), buffer, size, True, False)
        if n < 0:  # the buffer was too small: -n is what it needs
            size = -n + 1
            buffer = ctypes.create_string_buffer(size)
            n = self.lib.llama_detokenize(self.vocab, array, len(ids), buffer, size, True, False)
        text = buffer.raw[: max(0, n)].decode("utf-8", "replace")
        generation = Generation(
            model=self.model_id,
            prompt=self.options.prompt,
            tokens_in=page.tokens_in,
            tokens_out=len(page.ids),
            seconds=seconds,
            finish_reason=page.reason or "length",
        )
        return Answer(text=text, generation=generation)

    def close(self) -> None:
        """Free the context, the vision projector and the model; the engine cannot generate afterwards."""
        if getattr(self, "ctx", None):
            self.lib.llama_free(self.ctx)
        self.ctx = None
        if getattr(self, "mctx", None):
            self.mtmd.mtmd_free(self.mctx)
        self.mctx = None
        if getattr(self, "model", None):
            self.lib.llama_model_free(self.model)
        self.model = None


def load_llamacpp_engine(options: ModelOptions, raster: RasterOptions) -> LlamaCppEngine:
    """Find (or download) the GGUF files `options` name and load them; ModelUnavailableError when they cannot be had."""
    library()  # a missing library is reported before anything is downloaded
    files = resolve_gguf(options.model, options.mmproj, options.quant, options.revision)
    return LlamaCppEngine(options, files, raster, options.threads or default_threads())


if TYPE_CHECKING:

    def _implements_engine(engine: LlamaCppEngine) -> Engine:
        """Lets mypy check that LlamaCppEngine satisfies the Engine protocol."""
        return engine
