"""Frozen option records, built once by the CLI (or an API caller) and handed down."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from docparse.engines.choice import EngineKind, resolve_auto
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
# "auto" is resolved by docparse.engines.choose_engine when the options are built: a record holds a concrete kind.
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


@dataclass(frozen=True, slots=True)
class VllmOptions:
    """The embedded vLLM engine (`--engine vllm`): GPUs to shard the model over, and the share of each
    GPU's memory vLLM may take (None: vLLM's default; on a CPU docparse sizes the KV cache itself).
    `in_flight` is the pages vLLM holds at once (None: 64 on a GPU, 8 on a CPU)."""

    tensor_parallel: int = 1
    gpu_memory_utilization: float | None = None
    in_flight: int | None = None


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
    # Which engine answers (docparse.engines.open_engine); `server` is read by --engine openai only.
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


def convert_options(
    *,
    pages: str | None = None,
    password: str | None = None,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    model: str | None = None,
    revision: str | None = None,
    device: Device = "auto",
    dtype: DType = "auto",
    attn: Attn = "auto",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    prompt: str = DEFAULT_PROMPT,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    batch_size: int | None = None,
    merge: bool = True,
    keep_raw: Path | None = None,
    max_retries: int = 3,
    page_timeout: float | None = None,
    engine: EngineKind = "auto",
    api_base: str | None = None,
    api_key_env: str | None = None,
    served_model: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_TIMEOUT,
    fallback: Fallback = "none",
    snap_boxes: bool = False,
    quant: str = DEFAULT_QUANT,
    mmproj: str | None = None,
    threads: int | None = None,
    quantize: Quantize | None = None,
    tensor_parallel: int = 1,
    gpu_memory_utilization: float | None = None,
) -> ConvertOptions:
    """The records for one conversion, from the CLI's options by name (the CLI and docparse.convert both
    build them here). `pages` is a range list such as "1-3,7,10-"; `model` None is the default model (or,
    on a server, the one model it serves). Raises UsageError for bad values."""
    if min_pixels > max_pixels:
        raise UsageError(f"--min-pixels {min_pixels} is above --max-pixels {max_pixels}")
    if (batch_size is not None and batch_size < 1) or max_new_tokens < 1:
        raise UsageError("--batch-size and --max-new-tokens must be at least 1")
    if fallback not in ("none", "text-layer"):
        raise UsageError(f"--fallback {fallback!r}: use none or text-layer")
    if max_retries < 0 or (page_timeout is not None and page_timeout <= 0):
        raise UsageError("--max-retries must be 0 or more and --page-timeout above 0")
    if engine == "auto":
        engine = resolve_auto(model, mmproj)
    engine_only(engine, mmproj=mmproj, threads=threads, quantize=quantize)
    vllm = vllm_options(engine, tensor_parallel, gpu_memory_utilization)
    server = server_options(
        engine,
        api_base=api_base,
        api_key_env=api_key_env,
        served_model=served_model,
        concurrency=concurrency,
        timeout=timeout,
    )
    if engine == "openai" and model is None and served_model is None:
        server = replace(server, pick_single=True)
    ranges = None
    if pages is not None:
        ranges = parse_pages(pages)
    return ConvertOptions(
        raster=RasterOptions(min_pixels=min_pixels, max_pixels=max_pixels, pages=ranges, password=password),
        model=ModelOptions(
            model=model or DEFAULT_MODEL,
            revision=revision,
            device=device,
            dtype=dtype,
            attn=attn,
            max_new_tokens=max_new_tokens,
            prompt=prompt,
            system_prompt=system_prompt,
            batch_size=batch_size,
            quant=quant,
            mmproj=mmproj,
            threads=threads,
            quantize=quantize,
        ),
        engine=engine,
        server=server,
        vllm=vllm,
        assemble=AssembleOptions(merge=merge),
        keep_raw=keep_raw,
        max_retries=max_retries,
        page_timeout=page_timeout,
        layer=LayerOptions(fallback=fallback == "text-layer", snap_boxes=snap_boxes),
    )


def server_options(
    engine: EngineKind,
    *,
    api_base: str | None,
    api_key_env: str | None,
    served_model: str | None,
    concurrency: int,
    timeout: float,
) -> ServerOptions:
    """The server record for `engine`; UsageError when server options come without --engine openai,
    --engine openai comes without --api-base, or a value is out of range."""
    if engine in ("transformers", "llamacpp", "vllm"):
        given = [
            name
            for name, value in (
                ("--api-base", api_base),
                ("--api-key-env", api_key_env),
                ("--served-model", served_model),
            )
            if value is not None
        ]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise UsageError(f"{', '.join(given)} only {verb} to --engine openai")
        return ServerOptions()
    if engine != "openai":
        raise UsageError(f"unknown engine {engine!r}: use auto, transformers, vllm, llamacpp or openai")
    if api_base is None:
        raise UsageError("--engine openai needs --api-base, e.g. http://127.0.0.1:8000/v1")
    base = api_base.strip().rstrip("/")
    if not base.lower().startswith(("http://", "https://")) or len(base.split("://", 1)[1]) == 0:
        raise UsageError(f"--api-base takes an http(s) address such as http://127.0.0.1:8000/v1 (got {api_base!r})")
    if api_key_env is not None and not os.environ.get(api_key_env, "").strip():
        # Checked now, before the input is opened: the key itself stays in the environment.
        raise UsageError(f"--api-key-env {api_key_env}: that environment variable is not set or empty")
    if concurrency < 1 or timeout <= 0:
        raise UsageError("--concurrency must be at least 1 and --timeout above 0")
    return ServerOptions(
        api_base=base,
        api_key_env=api_key_env,
        served_model=served_model,
        concurrency=concurrency,
        timeout=timeout,
    )


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


def engine_only(engine: EngineKind, *, mmproj: str | None, threads: int | None, quantize: Quantize | None) -> None:
    """UsageError for an engine's own options given to another engine, or out of range."""
    if engine != "llamacpp" and (mmproj is not None or threads is not None):
        raise UsageError("--mmproj and --threads only apply to --engine llamacpp")
    if threads is not None and threads < 1:
        raise UsageError("--threads must be at least 1")
    if quantize is not None and engine != "transformers":
        raise UsageError(f"--quantize {quantize} applies to --engine transformers (llama.cpp: pick a GGUF --quant)")


def vllm_options(engine: EngineKind, tensor_parallel: int, gpu_memory_utilization: float | None) -> VllmOptions:
    """The vLLM record; UsageError for values out of range, or vLLM options given to another engine."""
    if engine != "vllm" and (tensor_parallel != 1 or gpu_memory_utilization is not None):
        raise UsageError("--tensor-parallel and --gpu-memory-utilization only apply to --engine vllm")
    if tensor_parallel < 1:
        raise UsageError(f"--tensor-parallel {tensor_parallel}: must be at least 1")
    if gpu_memory_utilization is not None and not 0 < gpu_memory_utilization <= 1:
        raise UsageError(f"--gpu-memory-utilization {gpu_memory_utilization:g}: must be above 0 and at most 1")
    return VllmOptions(tensor_parallel=tensor_parallel, gpu_memory_utilization=gpu_memory_utilization)
