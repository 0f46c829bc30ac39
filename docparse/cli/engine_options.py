"""The convert command's options for the model, the engines and the cluster (Annotated aliases, declared once)."""

from __future__ import annotations

from typing import Annotated

import typer

from docparse.cli.help import PANEL_CLUSTER, PANEL_ENGINE, PANEL_MODEL
from docparse.config import Attn, Device, DType, Quantize
from docparse.engines.choice import EngineKind
from docparse.prompt import DEFAULT_MODEL, FACTOR

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        envvar="DOCPARSE_MODEL",
        help="Hugging Face model id, or a local checkpoint folder (--engine openai: the server's model; "
        "default there: the one it serves).",
        show_default=DEFAULT_MODEL,
        rich_help_panel=PANEL_MODEL,
    ),
]
RevisionOption = Annotated[
    str | None,
    typer.Option("--revision", help="Model revision (branch, tag or commit) on the hub.", rich_help_panel=PANEL_MODEL),
]
DeviceOption = Annotated[Device, typer.Option("--device", help="Where the model runs.", rich_help_panel=PANEL_MODEL)]
DtypeOption = Annotated[
    DType,
    typer.Option(
        "--dtype",
        help="Weight dtype (auto: bfloat16 where the hardware runs it natively, else float32 or float16).",
        rich_help_panel=PANEL_MODEL,
    ),
]
AttnOption = Annotated[
    Attn,
    typer.Option(
        "--attn",
        help="Attention kernel (auto: flash_attention_2 if installed, else sdpa).",
        rich_help_panel=PANEL_MODEL,
    ),
]
MinPixelsOption = Annotated[
    int,
    typer.Option(
        "--min-pixels",
        help="Smallest image the model sees, in pixels.",
        min=FACTOR * FACTOR,
        rich_help_panel=PANEL_MODEL,
    ),
]
MaxPixelsOption = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        help="Largest image the model sees, in pixels.",
        min=FACTOR * FACTOR,
        rich_help_panel=PANEL_MODEL,
    ),
]
MaxNewTokensOption = Annotated[
    int,
    typer.Option(
        "--max-new-tokens", help="Most tokens the model may write per page.", min=1, rich_help_panel=PANEL_MODEL
    ),
]
PromptOption = Annotated[
    str, typer.Option("--prompt", help="The request sent with each page image.", rich_help_panel=PANEL_MODEL)
]
SystemPromptOption = Annotated[
    str, typer.Option("--system-prompt", help="The system message.", rich_help_panel=PANEL_MODEL)
]
BatchSizeOption = Annotated[
    str,
    typer.Option(
        "--batch-size",
        help="Pages per generate call, or auto: what free memory holds (CPU: 8 to 16, else 1; CUDA: up to 32).",
        rich_help_panel=PANEL_MODEL,
    ),
]
EngineOption = Annotated[
    EngineKind,
    typer.Option(
        "--engine",
        envvar="DOCPARSE_ENGINE",
        help="Where the model runs: auto (llamacpp for a GGUF model; vllm with a CUDA GPU and vLLM installed; "
        "else transformers), transformers (here), vllm (vLLM embedded here), llamacpp (a GGUF model in "
        "llama.cpp, here) or openai (an OpenAI-compatible server: vLLM, SGLang).",
        rich_help_panel=PANEL_MODEL,
    ),
]
ApiBaseOption = Annotated[
    str | None,
    typer.Option(
        "--api-base",
        envvar="DOCPARSE_API_BASE",
        help="--engine openai: the server's API address, e.g. http://host:8000/v1.",
        rich_help_panel=PANEL_ENGINE,
    ),
]
ApiKeyEnvOption = Annotated[
    str | None,
    typer.Option(
        "--api-key-env",
        help="--engine openai: name of the environment variable holding the API key (default: no key).",
        metavar="VAR",
        rich_help_panel=PANEL_ENGINE,
    ),
]
ServedModelOption = Annotated[
    str | None,
    typer.Option(
        "--served-model",
        help="--engine openai: the model's name on the server (default: --model).",
        rich_help_panel=PANEL_ENGINE,
    ),
]
ConcurrencyOption = Annotated[
    int,
    typer.Option(
        "--concurrency", help="--engine openai: requests in flight at once.", min=1, rich_help_panel=PANEL_ENGINE
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="--engine openai: seconds one request may take before the page fails.",
        min=0.001,
        rich_help_panel=PANEL_ENGINE,
    ),
]
RayOption = Annotated[
    str | None,
    typer.Option(
        "--ray",
        help="Run the batch on a Ray cluster: auto (RAY_ADDRESS or a running `ray start`), local (start one "
        "here), or an address such as ray://head:10001. Inputs and -o must be on a filesystem every node sees.",
        metavar="ADDRESS",
        rich_help_panel=PANEL_CLUSTER,
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="--ray: engine actors (default: one per GPU, else one).",
        min=1,
        rich_help_panel=PANEL_CLUSTER,
    ),
]
GpusPerWorkerOption = Annotated[
    float | None,
    typer.Option(
        "--gpus-per-worker",
        help="--ray: GPUs each engine actor holds (default: 1 if any).",
        min=0,
        rich_help_panel=PANEL_CLUSTER,
    ),
]
QuantOption = Annotated[
    str,
    typer.Option(
        "--quant",
        help="--engine llamacpp: the GGUF quant picked from a hub repository, e.g. Q8_0.",
        rich_help_panel=PANEL_ENGINE,
    ),
]
MmprojOption = Annotated[
    str | None,
    typer.Option(
        "--mmproj",
        help="--engine llamacpp: the vision projector .gguf beside --model FILE.gguf (default: the repository's).",
        rich_help_panel=PANEL_ENGINE,
    ),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="--engine llamacpp: CPU threads (default: every core available).",
        min=1,
        rich_help_panel=PANEL_ENGINE,
    ),
]
QuantizeOption = Annotated[
    Quantize | None,
    typer.Option(
        "--quantize",
        help="--engine transformers on a CPU: int8 (dynamic int8 Linear layers).",
        rich_help_panel=PANEL_MODEL,
    ),
]
TensorParallelOption = Annotated[
    int,
    typer.Option(
        "--tensor-parallel",
        help="--engine vllm: GPUs on this host to shard the model over.",
        min=1,
        rich_help_panel=PANEL_ENGINE,
    ),
]
GpuMemoryUtilizationOption = Annotated[
    float | None,
    typer.Option(
        "--gpu-memory-utilization",
        help="--engine vllm: share of each GPU's memory vLLM may take (weights, activations, KV cache).",
        min=0.0,
        max=1.0,
        show_default="vLLM's 0.92",
        rich_help_panel=PANEL_ENGINE,
    ),
]
