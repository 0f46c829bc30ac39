"""Frozen option records that check their own values, built once from keywords by the CLI or an API caller."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from docparse.engines.choice import EngineKind
from docparse.engines.gguf import DEFAULT_QUANT
from docparse.errors import UsageError
from docparse.formats import Format
from docparse.prompt import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    DEFAULT_MODEL,
    DEFAULT_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
)

Device = Literal["auto", "cuda", "mps", "cpu"]
DType = Literal["auto", "bfloat16", "float16", "float32"]
Attn = Literal["auto", "sdpa", "flash_attention_2", "eager"]
# Picture crops: saved beside the output, embedded as data URIs, or not made (docparse.output).
Images = Literal["files", "embed", "none"]
# --fallback: what a page the model failed on falls back to (docparse.layer.agreement.fallback_page).
Fallback = Literal["none", "text-layer"]
# "auto" is resolved by docparse.engines.choice when the options are built: a record holds a concrete kind.
# --quantize for the transformers engine on a CPU: dynamic int8 of the Linear layers (None: off).
Quantize = Literal["int8"]

# --engine openai: requests in flight (a vLLM server batches them continuously; see README "Serving
# with vLLM or SGLang"), and seconds one request may take (a dense page is thousands of tokens).
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class RasterOptions:
    """How pages become images: pixel bounds, page selection, PDF password.

    `pages` holds 1-based inclusive ranges, an end of None meaning "to the last page"; None selects all.
    """

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    pages: tuple[tuple[int, int | None], ...] | None = None
    password: str | None = None
    # In a batch, `pages` applies to each file: pages a file lacks are skipped with a warning, not an error.
    skip_missing_pages: bool = False

    def __post_init__(self) -> None:
        if self.min_pixels > self.max_pixels:
            raise UsageError(f"--min-pixels {self.min_pixels} is above --max-pixels {self.max_pixels}")


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """Which model, where it runs, and how it generates."""

    model: str = DEFAULT_MODEL
    revision: str | None = None
    device: Device = "auto"
    dtype: DType = "auto"
    attn: Attn = "auto"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    prompt: str = DEFAULT_PROMPT
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # Pages per generate call; None ("auto"): the engine picks from free memory when it loads.
    batch_size: int | None = None
    # --engine llamacpp: the GGUF quant picked from a hub repository, the vision projector file (None: the
    # repository's), llama.cpp threads (None: every core this process may use).
    quant: str = DEFAULT_QUANT
    mmproj: str | None = None
    threads: int | None = None
    # --engine transformers: dynamic int8 of the Linear layers (CPU only).
    quantize: Quantize | None = None

    def __post_init__(self) -> None:
        if (self.batch_size is not None and self.batch_size < 1) or self.max_new_tokens < 1:
            raise UsageError("--batch-size and --max-new-tokens must be at least 1")


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Where an OpenAI-compatible server (vLLM, SGLang, `transformers serve`) runs, for `--engine openai`.

    `api_key_env` names the environment variable holding the API key (None: no key is sent); the key
    itself never passes through options. `served_model` is the name the server knows the model by
    (None: the --model name). `concurrency` bounds the requests in flight, `timeout` is the seconds one
    request may take, `retries` how often a request is repeated after a connection error, 429 or 5xx.
    """

    api_base: str = "http://127.0.0.1:8000/v1"
    api_key_env: str | None = None
    served_model: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 5
    # No --model and no --served-model: a server that serves exactly one model answers with that one.
    pick_single: bool = False

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.timeout <= 0:
            raise UsageError("--concurrency must be at least 1 and --timeout above 0")


@dataclass(frozen=True, slots=True)
class VllmOptions:
    """The embedded vLLM engine (`--engine vllm`): GPUs to shard the model over, and the share of each
    GPU's memory vLLM may take (None: vLLM's default; on a CPU docparse sizes the KV cache itself).
    `in_flight` is the pages vLLM holds at once (None: 64 on a GPU, 8 on a CPU)."""

    tensor_parallel: int = 1
    gpu_memory_utilization: float | None = None
    in_flight: int | None = None

    def __post_init__(self) -> None:
        if self.tensor_parallel < 1:
            raise UsageError(f"--tensor-parallel {self.tensor_parallel}: must be at least 1")
        share = self.gpu_memory_utilization
        if share is not None and not 0 < share <= 1:
            raise UsageError(f"--gpu-memory-utilization {share:g}: must be above 0 and at most 1")


@dataclass(frozen=True, slots=True)
class AssembleOptions:
    """How pages become one document (docparse.assemble).

    `merge`: join paragraphs and tables cut by a page break. Furniture, footnotes, heading levels and
    the title are always worked out: they only label blocks, and the writers decide what to show.
    """

    merge: bool = True


@dataclass(frozen=True, slots=True)
class LayerOptions:
    """What the PDF's text layer may do beyond the check, which always runs (docparse.layer.agreement).

    `fallback`: a page the model failed on takes its blocks from the layer (--fallback text-layer).
    `snap_boxes`: each text block's box is tightened to the layer words it holds (--snap-boxes).
    """

    fallback: bool = False
    snap_boxes: bool = False


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    """Everything `pipeline.convert` needs for one input."""

    raster: RasterOptions = RasterOptions()
    model: ModelOptions = ModelOptions()
    # Which engine answers (docparse.engines.open.open_engine); `server` is read by --engine openai only.
    engine: EngineKind = "transformers"
    server: ServerOptions = ServerOptions()
    vllm: VllmOptions = VllmOptions()
    assemble: AssembleOptions = AssembleOptions()
    keep_raw: Path | None = None
    # Retries of a page whose answer looped or was cut off (docparse.run.recover), and the seconds of
    # model time one page may take in all (None: no limit).
    max_retries: int = 3
    page_timeout: float | None = None
    layer: LayerOptions = LayerOptions()

    def __post_init__(self) -> None:
        if self.max_retries < 0 or (self.page_timeout is not None and self.page_timeout <= 0):
            raise UsageError("--max-retries must be 0 or more and --page-timeout above 0")


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """How a Document is written out.

    `keep_furniture`: show running headers, footers and page numbers in Markdown and HTML (JSON
    always has them). `page_markers`: a `<!-- page N -->` comment before each page in Markdown.
    `page_breaks`: a visible rule between pages in HTML (and a page break when printed).
    `images`: crops of figures, charts, chemical structures and music sheets (docparse.output).
    `online_assets`: HTML may load an ABC music renderer from a CDN (else it loads nothing).
    """

    format: Format = "md"
    keep_furniture: bool = False
    page_markers: bool = False
    page_breaks: bool = False
    images: Images = "none"
    online_assets: bool = False


_RANGE = re.compile(r"^\s*(\d+)\s*(?:(-)\s*(\d+)?)?\s*$")


def parse_pages(spec: str) -> tuple[tuple[int, int | None], ...]:
    """Parse "1-3,7,10-" into 1-based inclusive ranges; raises UsageError on anything else."""
    ranges: list[tuple[int, int | None]] = []
    for part in spec.split(","):
        m = _RANGE.match(part)
        if not m:
            raise UsageError(f"bad page range {part.strip()!r} in --pages {spec!r} (use e.g. 1-3,7,10-)")
        start = int(m.group(1))
        end: int | None = start if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
        if start < 1 or (end is not None and end < start):
            raise UsageError(f"bad page range {part.strip()!r} in --pages (pages count from 1, start <= end)")
        ranges.append((start, end))
    return tuple(ranges)


def parse_batch_size(text: str) -> int | None:
    """`--batch-size`: "auto" is None (the engine decides), else a whole number of at least 1."""
    if text.strip().lower() == "auto":
        return None
    try:
        size = int(text)
    except ValueError:
        raise UsageError(f"--batch-size {text!r}: give a whole number of pages or auto") from None
    if size < 1:
        raise UsageError(f"--batch-size {size}: must be at least 1 (or auto)")
    return size


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """`--ray`: the cluster a batch runs on (docparse.run.cluster), and how its engine actors are placed.

    `address`: "auto" (the cluster RAY_ADDRESS or a running `ray start` names), "local" (start one on
    this machine) or a Ray address (ray://host:10001, host:6379). `workers`: engine actors (None: one
    per `gpus_per_worker` GPUs of the cluster, else one). `gpus_per_worker` (None: 1 when the cluster
    has GPUs, else 0).
    """

    address: str = "auto"
    workers: int | None = None
    gpus_per_worker: float | None = None
