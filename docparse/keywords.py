"""Options by keyword (the CLI's, in Python form) handed to the frozen records by field name, and the
checks that span records: an engine's own options given to another engine."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict, Unpack

from docparse.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    AssembleOptions,
    Attn,
    ConvertOptions,
    Device,
    DType,
    Fallback,
    LayerOptions,
    ModelOptions,
    Quantize,
    RasterOptions,
    ServerOptions,
    VllmOptions,
    WriteOptions,
    parse_pages,
)
from docparse.engines.choice import EngineKind, resolve_auto
from docparse.errors import UsageError
from docparse.prompt import DEFAULT_MODEL


class ConvertKeywords(TypedDict, total=False):
    """The options of a conversion by keyword, each named as the record field it sets: the CLI's long
    options in Python form (`--max-new-tokens` is max_new_tokens, `--no-merge` is merge=False). Three are
    given in their command-line form: `pages` as a range list such as "1-3,7,10-", `model` None for the
    default model (or, on a server, the one model it serves), `fallback` as --fallback takes it."""

    pages: str | None
    password: str | None
    min_pixels: int
    max_pixels: int
    model: str | None
    revision: str | None
    device: Device
    dtype: DType
    attn: Attn
    max_new_tokens: int
    prompt: str
    system_prompt: str
    batch_size: int | None
    merge: bool
    keep_raw: Path | None
    max_retries: int
    page_timeout: float | None
    api_base: str | None
    api_key_env: str | None
    served_model: str | None
    concurrency: int
    timeout: float
    fallback: Fallback
    snap_boxes: bool
    quant: str
    mmproj: str | None
    threads: int | None
    quantize: Quantize | None
    tensor_parallel: int
    gpu_memory_utilization: float | None


def fields_of(record: type[Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `values` that name a field of the dataclass `record` (a command's parameters, an API
    call's keywords): how keywords are handed to the records, by name."""
    names = {f.name for f in dataclasses.fields(record)}
    return {k: v for k, v in values.items() if k in names}


# The records a keyword may set, and their fields that docparse sets itself (or that hold a record).
_RECORDS = (RasterOptions, ModelOptions, ServerOptions, VllmOptions, AssembleOptions, LayerOptions, ConvertOptions)
_NOT_KEYWORDS = {"skip_missing_pages", "retries", "pick_single", "in_flight", "engine", "raster", "server", "vllm",
                 "assemble", "layer"}  # fmt: skip


def option_names() -> list[str]:
    """The keywords a conversion takes: every record field a caller may set, in ConvertKeywords' order."""
    fields = {f.name for record in _RECORDS for f in dataclasses.fields(record)} - _NOT_KEYWORDS
    typed = [name for name in ConvertKeywords.__annotations__ if name in fields]
    return typed + sorted(fields - set(typed))


def convert_options(engine: EngineKind = "auto", **keywords: Unpack[ConvertKeywords]) -> ConvertOptions:
    """The records for one conversion, from options by keyword (ConvertKeywords; the CLI and docparse.convert
    both build them here), each handed to the record whose field it names. The records check their own
    values; what depends on the engine is checked here. Raises UsageError for bad values."""
    given: dict[str, Any] = dict(keywords)
    # The order of the checks is the order of their messages: each record's own values first, then the
    # engine's options, then --pages (so the raster record is made before its pages are parsed).
    raster = RasterOptions(**fields_of(RasterOptions, given) | {"pages": None})
    model = ModelOptions(**fields_of(ModelOptions, given) | {"model": given.get("model") or DEFAULT_MODEL})
    fallback = given.get("fallback", "none")
    if fallback not in ("none", "text-layer"):
        raise UsageError(f"--fallback {fallback!r}: use none or text-layer")
    if engine == "auto":
        engine = resolve_auto(given.get("model"), model.mmproj)
    engine_only(engine, mmproj=model.mmproj, threads=model.threads, quantize=model.quantize)
    vllm = vllm_options(engine, **fields_of(VllmOptions, given))
    server = server_options(engine, **fields_of(ServerOptions, given))
    if engine == "openai" and given.get("model") is None and given.get("served_model") is None:
        server = replace(server, pick_single=True)
    pages = given.get("pages")
    ranges = None if pages is None else parse_pages(pages)
    records = {
        "raster": replace(raster, pages=ranges),
        "model": model,
        "engine": engine,
        "server": server,
        "vllm": vllm,
        "assemble": AssembleOptions(**fields_of(AssembleOptions, given)),
        "layer": LayerOptions(**fields_of(LayerOptions, given) | {"fallback": fallback == "text-layer"}),
    }
    return ConvertOptions(**fields_of(ConvertOptions, given) | records)


def write_options(values: Mapping[str, Any], **fixed: Any) -> WriteOptions:
    """The write record from `values` by field name (a command's parameters, an API call's keywords);
    `fixed` (e.g. the format worked out from -o) wins over them."""
    return WriteOptions(**fields_of(WriteOptions, values) | fixed)


def server_options(
    engine: EngineKind,
    *,
    api_base: str | None = None,
    api_key_env: str | None = None,
    served_model: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_TIMEOUT,
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
    return ServerOptions(
        api_base=base,
        api_key_env=api_key_env,
        served_model=served_model,
        concurrency=concurrency,
        timeout=timeout,
    )


def engine_only(engine: EngineKind, *, mmproj: str | None, threads: int | None, quantize: Quantize | None) -> None:
    """UsageError for an engine's own options given to another engine, or out of range."""
    if engine != "llamacpp" and (mmproj is not None or threads is not None):
        raise UsageError("--mmproj and --threads only apply to --engine llamacpp")
    if threads is not None and threads < 1:
        raise UsageError("--threads must be at least 1")
    if quantize is not None and engine != "transformers":
        raise UsageError(f"--quantize {quantize} applies to --engine transformers (llama.cpp: pick a GGUF --quant)")


def vllm_options(
    engine: EngineKind, *, tensor_parallel: int = 1, gpu_memory_utilization: float | None = None
) -> VllmOptions:
    """The vLLM record; UsageError for vLLM options given to another engine (or, from the record, out of range)."""
    if engine != "vllm" and (tensor_parallel != 1 or gpu_memory_utilization is not None):
        raise UsageError("--tensor-parallel and --gpu-memory-utilization only apply to --engine vllm")
    return VllmOptions(tensor_parallel=tensor_parallel, gpu_memory_utilization=gpu_memory_utilization)
