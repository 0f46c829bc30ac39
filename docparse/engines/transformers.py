"""The local engine: Qwen2.5-VL in transformers, inputs built by hand (no AutoProcessor, no torchvision)."""

from __future__ import annotations

import copy
import gc
import importlib.util
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from docparse.config import Attn, Device, DType, ModelOptions
from docparse.document import FinishReason, Generation
from docparse.engines.base import GREEDY, Answer, Engine, GenerationSettings
from docparse.engines.cpu_dtypes import apply_cpu_dtypes, check_quantize, language_dtype, visual_module
from docparse.engines.hub import hub_errors, one_line
from docparse.errors import EngineError, ModelUnavailableError, UsageError
from docparse.prompt import DEFAULT_MAX_PIXELS, FACTOR, chat_text

if TYPE_CHECKING:
    import torch
    from transformers import GenerationConfig

# torch (about 3 s to import) and transformers are imported where they are first needed, so that
# a model that cannot be had is reported before either is loaded.

MODEL_TYPE = "qwen2_5_vl"
IMAGE_PAD = "<|image_pad|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"

log = logging.getLogger(__name__)

# Files of a checkpoint that loading needs; README, .gitattributes and the like are not fetched.
_CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model"]

_WAYS_OUT = (
    "use --model PATH (a local checkpoint folder), or set HF_HUB_OFFLINE=1 with a pre-filled "
    "Hugging Face cache, or use a server with --engine openai --api-base URL"
)
# The same, when HF_HUB_OFFLINE is what kept the download from happening.
_WAYS_OUT_OFFLINE = (
    "use --model PATH (a local checkpoint folder), unset HF_HUB_OFFLINE to let it download, or use a "
    "server with --engine openai --api-base URL"
)


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


# --- choosing device, dtype and attention ------------------------------------------------------


def resolve_device(device: Device) -> str:
    """The torch device to run on: `auto` is cuda if available, else mps if available, else cpu.

    Raises UsageError when cuda or mps is asked for and torch cannot use it.
    """
    import torch

    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if device == "cuda" and not cuda:
        raise UsageError(f"--device cuda: torch {torch.__version__} sees no CUDA device")
    if device == "mps" and not mps:
        raise UsageError(f"--device mps: torch {torch.__version__} cannot use Apple MPS here")
    return device


def _mps_supports_bfloat16() -> bool:
    import torch

    try:
        torch.zeros(1, dtype=torch.bfloat16, device="mps")
    except (RuntimeError, TypeError):
        return False
    return True


def resolve_dtype(dtype: DType, device: str) -> torch.dtype:
    """The weight and activation dtype for `device`.

    `auto` picks:
    - cuda: bfloat16 where the GPU supports it (the released weights are bfloat16, and Qwen2.5's
      activations can overflow float16), else float16 (older GPUs; half the memory of float32).
    - mps: bfloat16 where this macOS/torch supports it, else float32 (float16 risks the same
      overflow; float32 doubles memory but is correct).
    - cpu: bfloat16 only where the CPU computes it natively (AVX512-BF16 or AMX), else float32.
      Without native support PyTorch emulates bfloat16 matmuls: measured on this project's 2-core
      AMD EPYC (AVX2), a 1024x2048 @ 2048x5504 matmul took 72 s in bfloat16 against 0.30 s in
      float32 (240x), and the 3B vision encoder took 19 minutes for one page. float32 needs twice
      the memory (15.6 GiB peak for the 3B model, against 8.6 GiB): `--dtype bfloat16` trades
      speed for memory where RAM is short.
    """
    import torch

    if dtype != "auto":
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.bfloat16 if _mps_supports_bfloat16() else torch.float32
    return torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 matmuls in hardware (oneDNN's check: AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_attn(attn: Attn, device: str, dtype: torch.dtype) -> str:
    """The attention implementation: `auto` is flash_attention_2 where it can run, else sdpa.

    FlashAttention-2 runs only on CUDA, in float16/bfloat16, with the `flash_attn` package
    installed; asking for it explicitly elsewhere raises UsageError.
    """
    import torch

    flash_ok = (
        device == "cuda"
        and dtype in (torch.float16, torch.bfloat16)
        and importlib.util.find_spec("flash_attn") is not None
    )
    if attn == "auto":
        return "flash_attention_2" if flash_ok else "sdpa"
    if attn == "flash_attention_2" and not flash_ok:
        raise UsageError(
            "--attn flash_attention_2 needs a CUDA device, --dtype float16 or bfloat16, and the "
            "flash_attn package installed; use --attn sdpa"
        )
    return attn


# --- finding the checkpoint -------------------------------------------------------------------


def check_checkpoint(folder: Path, name: str) -> None:
    """Raise ModelUnavailableError unless `folder` holds a Qwen2.5-VL checkpoint's config.json."""
    config = folder / "config.json"
    if not config.is_file():
        raise ModelUnavailableError(f"model {name}: {folder} is not a model checkpoint (it has no config.json)")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelUnavailableError(f"model {name}: cannot read {config}: {exc}") from exc
    if model_type != MODEL_TYPE:
        raise ModelUnavailableError(
            f"model {name}: {folder} is a {model_type!r} checkpoint, not Qwen2.5-VL ({MODEL_TYPE!r})"
        )


def _looks_like_path(model: str) -> bool:
    """True for strings a user meant as a folder rather than a hub id `owner/name`."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model or Path(model).exists()


def _is_complete(folder: Path) -> bool:
    """True when `folder` has the configs loading reads and every safetensors weight file."""
    needed = ("config.json", "preprocessor_config.json", "tokenizer_config.json")
    if not all((folder / name).is_file() for name in needed):
        return False
    if (folder / "model.safetensors").is_file():
        return True
    try:
        index = json.loads((folder / "model.safetensors.index.json").read_text(encoding="utf-8"))
        shards = set(index["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return bool(shards) and all((folder / shard).is_file() for shard in shards)


def find_checkpoint(model: str, revision: str | None = None) -> Path | None:
    """The checkpoint folder `model` names if it is on this machine, else None (it must be fetched).

    An existing folder is used as is; a hub id is looked up in the local Hugging Face cache
    (configs and every weight file must be there). Touches no network. Raises
    ModelUnavailableError for a folder that is not a Qwen2.5-VL checkpoint, a path that does not
    exist, or a hub id that is not cached while HF_HUB_OFFLINE is set.
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        check_checkpoint(folder, model)
        return folder
    if _looks_like_path(model):
        raise ModelUnavailableError(f"model {model}: no such checkpoint folder")

    from huggingface_hub import constants, snapshot_download

    try:
        cached = Path(
            snapshot_download(model, revision=revision, allow_patterns=_CHECKPOINT_PATTERNS, local_files_only=True)
        )
    except hub_errors():
        cached = None
    if cached is not None and _is_complete(cached):
        check_checkpoint(cached, model)
        return cached
    if constants.HF_HUB_OFFLINE:
        state = "only partly" if cached is not None else "not"
        raise ModelUnavailableError(
            f"model {_named(model, revision)} cannot be loaded: it is {state} in the Hugging Face "
            f"cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set; {_WAYS_OUT_OFFLINE}"
        )
    return None


def _named(model: str, revision: str | None) -> str:
    return model + (f" (revision {revision})" if revision else "")


def _unavailable(model: str, revision: str | None, exc: BaseException) -> ModelUnavailableError:
    from huggingface_hub import constants

    return ModelUnavailableError(
        f"model {_named(model, revision)} could not be downloaded from {constants.ENDPOINT} ({one_line(exc)}); "
        f"{_WAYS_OUT}"
    )


def check_hub(model: str, revision: str | None = None) -> None:
    """Raise ModelUnavailableError unless the hub answers for `model` (at `revision`).

    One metadata request, without retries, bounded by HF_HUB_ETAG_TIMEOUT seconds (default 10):
    a refused connection fails at once, a hub that never answers fails after that timeout (plus
    up to 3 s that huggingface_hub spends on its own telemetry request unless
    HF_HUB_DISABLE_TELEMETRY is set). Also fails for a repository or revision the hub lacks, or
    one it refuses (gated, private without a token).
    """
    from huggingface_hub import HfApi, constants

    try:
        HfApi().model_info(model, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except hub_errors() as exc:
        raise _unavailable(model, revision, exc) from exc


def download_checkpoint(model: str, revision: str | None = None) -> Path:
    """Download the checkpoint's files into the Hugging Face cache and return its snapshot folder.

    Call `check_hub` first: the download itself retries on network errors. Raises
    ModelUnavailableError (one line) when it fails or what it got is not a Qwen2.5-VL checkpoint.
    """
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(model, revision=revision, allow_patterns=_CHECKPOINT_PATTERNS))
    except hub_errors() as exc:
        raise _unavailable(model, revision, exc) from exc
    check_checkpoint(path, model)
    return path


def resolve_checkpoint(model: str, revision: str | None = None) -> Path:
    """The local folder of the checkpoint `model` names, downloading it if it must and may.

    `find_checkpoint`, then (when the model is not on this machine) `check_hub` and
    `download_checkpoint`. Every failure is a ModelUnavailableError with one line naming the
    model and the ways out: --model PATH, HF_HUB_OFFLINE=1 with a pre-filled cache, or a server.
    """
    folder = find_checkpoint(model, revision)
    if folder is None:
        check_hub(model, revision)
        folder = download_checkpoint(model, revision)
    return folder


# --- memory: out-of-memory errors and the automatic batch size ---------------------------------


class _OutOfMemory(Exception):
    """A generate call ran out of memory (its memory already freed); the message is the error's line."""


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
    layers = int(text.num_hidden_layers)
    heads = int(text.num_attention_heads)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    hidden = int(text.hidden_size)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    image_tokens = max_pixels // (FACTOR * FACTOR)
    patches = image_tokens * int(vision.spatial_merge_size) ** 2
    prompt = image_tokens + text_tokens
    kv = 2 * layers * kv_heads * head_dim * dtype_bytes * (prompt + max_new_tokens)
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


# --- the engine -------------------------------------------------------------------------------


class TransformersEngine:
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

    @property
    def batch_size(self) -> int:
        """Pages per generate call: --batch-size, or the size `auto` chose; smaller after an out-of-memory."""
        return self._batch_size

    @property
    def concurrency(self) -> int:
        """One generate call at a time: a local model is busiest with one big batch."""
        return 1

    def _eos_ids(self) -> tuple[int, ...]:
        """End-of-sequence ids: the checkpoint's generation_config ones, plus <|im_end|> (end of turn)."""
        ids: list[int] = []
        configured = self.model.generation_config.eos_token_id
        if isinstance(configured, int):
            ids.append(configured)
        elif configured is not None:
            ids.extend(int(i) for i in configured)
        for token in (IM_END, self.tokenizer.eos_token):
            if token is None:
                continue
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id not in ids:
                ids.append(token_id)
        if not ids:
            raise ModelUnavailableError(f"model {self.options.model}: no end-of-sequence token is defined")
        return tuple(ids)

    def _pad_id(self) -> int:
        for candidate in (
            self.tokenizer.pad_token_id,
            self.model.generation_config.pad_token_id,
            self.tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        ):
            if isinstance(candidate, int):
                return candidate
        return self.eos_token_ids[0]

    def _generation_config(self) -> GenerationConfig:
        """The checkpoint's generation config made greedy.

        Sampling knobs (temperature, top_p, top_k) are cleared so transformers does not warn that
        they are ignored; a repetition_penalty the checkpoint sets (1.05 in Qwen's releases, which
        the recorded real outputs were made with) is kept: it is deterministic and curbs the
        degenerate repetition QwenVL HTML is prone to. As with the official processor, a padded
        page's pad token (<|endoftext|>) then counts as seen, so its logit is penalised as well;
        that is the only way a page's batch-mates can touch its tokens.
        """
        config = copy.deepcopy(self.model.generation_config)
        config.do_sample = False
        config.num_beams = 1
        config.temperature = None
        config.top_p = None
        config.top_k = None
        config.max_new_tokens = self.options.max_new_tokens
        config.max_length = None
        config.eos_token_id = list(self.eos_token_ids)
        config.pad_token_id = self.pad_token_id
        config.return_dict_in_generate = False
        return config

    def build_inputs(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
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
        patch = int(self.image_processor.patch_size)
        merge = int(self.image_processor.merge_size)
        pixel_values: list[torch.Tensor] = []
        grids: list[torch.Tensor] = []
        texts: list[str] = []
        for image in images:
            width, height = image.size
            area = width * height
            features = self.image_processor(
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
            texts.append(chat_text(self.options.prompt, self.options.system_prompt, IMAGE_PAD * pads))
        text = self.tokenizer(
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
            "mm_token_type_ids": (input_ids == self.image_token_id).to(torch.int64),
        }

    def config_for(self, settings: GenerationSettings) -> GenerationConfig:
        """The engine's greedy config with this call's settings applied (a copy; the engine's is kept)."""
        if settings == GREEDY:
            return self.generation_config
        config = copy.deepcopy(self.generation_config)
        if settings.max_new_tokens is not None:
            config.max_new_tokens = settings.max_new_tokens
        if settings.repetition_penalty is not None:
            config.repetition_penalty = settings.repetition_penalty
        if settings.temperature is not None:
            config.do_sample = True
            config.temperature = settings.temperature
        return config

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
                    self._batch_size = max(1, len(chunk) // 2)
                    log.info("out of memory on %d pages at once: batch size now %d", len(chunk), self._batch_size)
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
