"""Shared benchmark helpers: the machine line, RESULTS.md sections, the random-weight 3B model."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SMALL_PAGE_PIXELS = 128 * 28 * 28  # 128 visual tokens: the CPU runs' page size (see RESULTS.md)

_HEADER = (
    "# Benchmark results\n\n"
    "Each section is written by one script (`python -m benchmarks.NAME ...` from the repo root) and\n"
    "replaced whole when that script runs again. Numbers of one section come from one run.\n"
)


def command_line() -> str:
    """How this benchmark was started, for the record."""
    return "python -m " + " ".join(shlex.quote(a) for a in [_module_name(), *sys.argv[1:]])


def _module_name() -> str:
    main = Path(sys.argv[0]).resolve()
    try:
        return ".".join(main.relative_to(ROOT).with_suffix("").parts)
    except ValueError:
        return sys.argv[0]


def load_average() -> str:
    """`uptime`'s load averages (1, 5, 15 min): other users of the cores show here."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    """CPU (and GPU) model, cores, RAM, torch and transformers versions."""
    import psutil
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [
        f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads)",
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM",
    ]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        parts.append(f"{props.name} ({props.total_memory / 2**30:.0f} GiB)")
    parts.append(f"torch {torch.__version__}, transformers {transformers.__version__}")
    return ", ".join(parts)


def write_section(name: str, body: str, results: Path = RESULTS) -> None:
    """Replace (or add) the section `name` of benchmarks/RESULTS.md (or `results`) with `body`, atomically."""
    from docparse.files import write_atomic

    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = results.read_text(encoding="utf-8") if results.exists() else _HEADER
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    write_atomic(results, text.encode("utf-8"))
    print(f"wrote section {name!r} of {results}")


def stamp() -> str:
    """Date (UTC), machine, load and command: the lines every section starts with."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"- date: {now}\n- machine: {machine()}\n- load average at start: {load_average()}\n"
        f"- command: `{command_line()}`\n"
    )


def tiny_engine(device: str, dtype: str, max_new_tokens: int, batch_size: int | None = None) -> Any:
    """The tests' tiny random checkpoint, built in a temporary folder and loaded by docparse."""
    from docparse.config import Device, DType, ModelOptions
    from docparse.engines.transformers import load_engine
    from tests.tiny_model import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_model(Path(tmp) / "tiny")
        options = ModelOptions(
            model=str(folder),
            device=cast(Device, device),
            dtype=cast(DType, dtype),
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        return load_engine(options)


def real_shape_engine(
    device: str, dtype: str, max_new_tokens: int, batch_size: int | None = None, config: Path | None = None
) -> Any:
    """An engine around a random-weight model of the published Qwen2.5-VL-3B shape.

    The model is built from benchmarks/configs/qwen2_5_vl_3b.json directly on `device` (no
    download, no checkpoint on disk); the tiny checkpoint supplies tokenizer and image processor
    (their token ids replace the config's). Same compute per token as the released model.
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from docparse.engines.device import resolve_attn, resolve_dtype
    from docparse.engines.transformers import TransformersEngine

    tiny = tiny_engine("cpu", "float32", max_new_tokens)
    torch_dtype = resolve_dtype(cast(Any, dtype), device)
    raw = json.loads((config or ROOT / "benchmarks" / "configs" / "qwen2_5_vl_3b.json").read_text())
    raw.pop("_source", None)
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        raw[key] = getattr(tiny.model.config, key)
    config = Qwen2_5_VLConfig(**raw)
    config._attn_implementation = resolve_attn("auto", device, torch_dtype)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch_dtype).eval()
    model.generation_config = tiny.model.generation_config
    options = tiny.options.__class__(
        model="qwen2.5-vl-3b-random", device=device, dtype=dtype, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    name = Path("qwen2.5-vl-3b-random")
    return TransformersEngine(options, name, model, tiny.tokenizer, tiny.image_processor, device)


def page_images(count: int, max_pixels: int) -> list[Any]:
    """`count` page images rasterised at `max_pixels` from the samples and shared fixture PDFs, cycled."""
    from docparse.config import RasterOptions
    from docparse.errors import DocparseError
    from docparse.inputs.rasterize import open_input

    sources = [ROOT / "samples" / "report.pdf"]
    shared = ROOT.parent / "shared" / "fixtures" / "pdfs"
    sources += sorted(p for p in shared.glob("*.pdf") if p.stat().st_size > 0)[:8] if shared.is_dir() else []
    raster = RasterOptions(min_pixels=min(RasterOptions().min_pixels, max_pixels), max_pixels=max_pixels)
    images: list[Any] = []
    for path in sources:
        try:
            for page in open_input(path, raster).pages():
                images.append(page.image)
                break
        except DocparseError:  # the broken and encrypted fixtures
            continue
        if len(images) >= count:
            break
    return [images[i % len(images)] for i in range(count)]
