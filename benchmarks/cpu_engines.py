"""CPU engines side by side on the real Qwen2.5-VL-3B shape (random weights): llama.cpp Q4_K_M and Q8_0 against
transformers float32, bfloat16 and dynamic int8.

    flock /tmp/docparse-heavy.lock .venv/bin/python -m benchmarks.cpu_engines

Builds the random 3B checkpoint (benchmarks/configs/qwen2_5_vl_3b.json, the tiny tokenizer), converts it to
GGUF with llama.cpp's converter (tests/gguf_convert.py; the source tree as the tests find it) and quantizes
it with llama.cpp, all under --work (deleted afterwards). Each engine then runs in a process of its own
(its peak RSS is that process's): vision-encoder and prefill seconds for one default-size page (2,048 image
tokens), then decode ms/token with that page's KV cache (about 2,100 tokens) at 1 page and at 4 pages in
flight. transformers decodes over a KV cache of random values of the same length (decode cost does not
depend on the values). The machine's read bandwidth (a 2 GiB sum) gives each engine's weight-read floor.
A 1,200-token page is extrapolated: vision + prefill + 1,200 decode steps at batch 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, stamp, write_section

WORK = Path("/tmp/docparse-bench-3b")
# The model shape (--config): the published 3B one; a smaller file checks the script quickly.
CONFIG = [ROOT / "benchmarks" / "configs" / "qwen2_5_vl_3b.json"]
DECODE_STEPS = 16
PAGE_TOKENS = 1200


def read_bandwidth() -> float:
    """Best bytes/s of summing a 2 GiB float32 tensor (all threads): the floor for reading weights once."""
    import torch

    x = torch.ones(2**29, dtype=torch.float32)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        x.sum()
        best = max(best, x.numel() * 4 / (time.perf_counter() - t))
    return best


def build(work: Path) -> dict[str, Any]:
    """The random 3B checkpoint, its GGUF files (f16 mmproj; Q4_K_M and Q8_0 text), and what it took."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from tests.gguf_model import llama_cpp_source
    from tests.tiny_model import build_serving_model

    hf = work / "hf"
    start = time.perf_counter()
    build_serving_model(work / "tiny")
    raw = json.loads(CONFIG[0].read_text())
    raw.pop("_source", None)
    tiny = json.loads((work / "tiny" / "config.json").read_text())
    for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
        raw[key] = tiny[key]
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(Qwen2_5_VLConfig(**raw), dtype=torch.bfloat16)
    model.save_pretrained(hf)
    del model
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "preprocessor_config.json"):
        shutil.copy(work / "tiny" / name, hf / name)
    source = llama_cpp_source()
    subprocess.run(
        [sys.executable, str(ROOT / "tests" / "gguf_convert.py"), str(source), str(hf), str(work / "gguf"), "f16"],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(hf)
    import llama_cpp

    files = {}
    for quant, ftype in (("Q4_K_M", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M), ("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0)):
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.nthread = 2
        out = work / "gguf" / f"model-{quant}.gguf"
        assert (
            llama_cpp.llama_model_quantize(str(work / "gguf" / "model.gguf").encode(), str(out).encode(), params) == 0
        )
        files[quant] = out.stat().st_size
    (work / "gguf" / "model.gguf").unlink()
    return {"build_seconds": time.perf_counter() - start, "gguf_bytes": files}


def page_image() -> Any:
    from benchmarks.common import page_images
    from docparse.prompt import DEFAULT_MAX_PIXELS

    return page_images(1, DEFAULT_MAX_PIXELS)[0]


def run_llamacpp(work: Path, quant: str) -> dict[str, Any]:
    """Vision, prefill and decode (1 and 4 pages) through docparse's llama.cpp engine and libmtmd."""
    import ctypes

    from docparse.config import ModelOptions, RasterOptions
    from docparse.engines.base import GenerationSettings
    from docparse.engines.gguf import GGUFFiles
    from docparse.engines.llamacpp import N_BATCH, LlamaCppEngine, _Page

    files = GGUFFiles(work / "gguf" / f"model-{quant}.gguf", work / "gguf" / "mmproj.gguf")
    engine = LlamaCppEngine(ModelOptions(model=str(files.model), max_new_tokens=4096), files, RasterOptions(), 2)
    lib, mtmd = engine.lib, engine.mtmd
    image = page_image()
    chunks, n_in = engine._tokenize(image)
    engine._ensure_context(4, n_in + 2 * DECODE_STEPS + 8)
    vision = prefill = 0.0
    n_past = lib.llama_pos(0)
    no_callback = mtmd.mtmd_helper_post_decode_callback()  # NULL
    for i in range(mtmd.mtmd_input_chunks_size(chunks)):
        chunk = mtmd.mtmd_input_chunks_get(chunks, i)
        last = i == mtmd.mtmd_input_chunks_size(chunks) - 1
        if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
            t = time.perf_counter()
            assert mtmd.mtmd_encode_chunk(engine.mctx, chunk) == 0
            vision += time.perf_counter() - t
            t = time.perf_counter()
            embd = mtmd.mtmd_get_output_embd(engine.mctx)
            status = mtmd.mtmd_helper_decode_image_chunk(
                engine.mctx, engine.ctx, chunk, embd, n_past.value, 0, N_BATCH, ctypes.byref(n_past), no_callback, None
            )
            assert status == 0
        else:
            t = time.perf_counter()
            status = mtmd.mtmd_helper_eval_chunk_single(
                engine.mctx, engine.ctx, chunk, n_past.value, 0, N_BATCH, last, ctypes.byref(n_past)
            )
            assert status == 0
        prefill += time.perf_counter() - t
    settings = GenerationSettings(max_new_tokens=DECODE_STEPS + 1, stop_on_repetition=False)
    cells = n_in + 2 * DECODE_STEPS + 8
    one = _Page(0, n_in, int(n_past.value), engine._sampler(settings, cells), DECODE_STEPS + 1, [])
    one.ids.append(int(lib.llama_sampler_sample(one.sampler, engine.ctx, -1)))
    batch = lib.llama_batch_init(4, 0, 1)
    t = time.perf_counter()
    engine._decode([one], batch, settings, t)
    one_ms = (time.perf_counter() - t) / (len(one.ids) - 1) * 1000
    mem = lib.llama_get_memory(engine.ctx)
    for seq in (1, 2, 3):
        lib.llama_memory_seq_cp(mem, 0, seq, -1, -1)
    four = [_Page(s, n_in, one.n_past, engine._sampler(settings, cells), DECODE_STEPS, [one.ids[-1]]) for s in range(4)]
    t = time.perf_counter()
    engine._decode(four, batch, settings, t)
    four_ms = (time.perf_counter() - t) / (len(four[0].ids) - 1) * 1000  # per step, 4 tokens a step
    lib.llama_batch_free(batch)
    mtmd.mtmd_input_chunks_free(chunks)
    engine.close()
    return {
        "engine": f"llama.cpp {quant}",
        "weights_bytes": files.model.stat().st_size,
        "vision_s": vision,
        "prefill_s": prefill,
        "tokens_in": n_in,
        "ms_per_token_1": one_ms,
        "tokens_per_s_4": 4000 / four_ms,
    }


def run_transformers(kind: str) -> dict[str, Any]:
    """Vision, prefill (generate of one token) and decode steps over a random KV cache of the page's length."""
    import torch
    from transformers import DynamicCache

    from benchmarks.common import real_shape_engine
    from docparse.engines.cpu_dtypes import apply_cpu_dtypes, visual_module

    torch.set_num_threads(2)
    engine = real_shape_engine("cpu", "float32" if kind == "int8" else kind, max_new_tokens=1, config=CONFIG[0])
    model = engine.model
    # docparse's choice per stage: bfloat16 runs the language model, the vision encoder stays float32.
    apply_cpu_dtypes(model, "cpu", "auto" if kind == "bfloat16" else "float32", "int8" if kind == "int8" else None)
    inputs = engine.build_inputs([page_image()])
    visual = visual_module(model)
    marks: list[float] = []
    visual.register_forward_pre_hook(lambda *_: marks.append(time.perf_counter()))
    visual.register_forward_hook(lambda *_: marks.append(time.perf_counter()))
    t = time.perf_counter()
    engine.generate_tokens([page_image()])
    total = time.perf_counter() - t
    vision = marks[1] - marks[0]
    result: dict[str, Any] = {"engine": f"transformers {kind}", "vision_s": vision, "prefill_s": total - vision}
    if kind == "bfloat16":  # the other choice for the encoder, for the record
        pixels = inputs["pixel_values"].to(torch.bfloat16)
        visual.to(torch.bfloat16)
        t = time.perf_counter()
        with torch.inference_mode():
            visual(pixels, grid_thw=inputs["image_grid_thw"])
        result["vision_bf16_s"] = time.perf_counter() - t
    text = model.config.text_config
    length = int(inputs["input_ids"].shape[1])
    head_dim = text.hidden_size // text.num_attention_heads
    lm = model.model.language_model
    kv_dtype = model.get_input_embeddings().weight.dtype
    result["weights_bytes"] = weight_bytes(model, lm, kind)
    for rows, key in ((1, "ms_per_token_1"), (4, "tokens_per_s_4")):
        cache = DynamicCache(config=text)
        shape = (rows, text.num_key_value_heads, length, head_dim)
        for layer in range(text.num_hidden_layers):
            cache.update(torch.randn(shape, dtype=kv_dtype), torch.randn(shape, dtype=kv_dtype), layer)
        ids = torch.full((rows, 1), 100, dtype=torch.long)
        steps = []
        with torch.inference_mode():
            for step in range(DECODE_STEPS // 2 + 1):
                pos = torch.full((3, rows, 1), length + step, dtype=torch.long)
                t = time.perf_counter()
                hidden = lm(input_ids=ids, past_key_values=cache, position_ids=pos, use_cache=True).last_hidden_state
                ids = model.lm_head(hidden[:, -1:]).argmax(-1)
                steps.append(time.perf_counter() - t)
        per_step = sum(steps[1:]) / len(steps[1:])  # the first step warms up
        result[key] = per_step * 1000 if rows == 1 else rows / per_step
    result["tokens_in"] = length
    return result


def weight_bytes(model: Any, lm: Any, kind: str) -> int:
    """Bytes one decode step reads: the language model's layers and the output projection (not the embeddings)."""
    if kind == "int8":
        modules = [*lm.modules(), model.lm_head]
        quantized = [m for m in modules if "quantized" in type(m).__module__ and hasattr(m, "in_features")]
        return sum(m.in_features * m.out_features for m in quantized)
    per = {"float32": 4, "bfloat16": 2}[kind]
    layers = sum(p.numel() for n, p in lm.named_parameters() if "embed" not in n)
    return int((layers + model.lm_head.weight.numel()) * per)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--config", type=Path, default=CONFIG[0], help="model shape (default: the 3B one)")
    parser.add_argument("--one", help="internal: run one engine (llamacpp:QUANT or transformers:KIND), print JSON")
    args = parser.parse_args()
    CONFIG[0] = args.config
    if args.one:
        kind, _, what = args.one.partition(":")
        if kind == "build":
            result = {**build(args.work), "bandwidth": read_bandwidth()}
        else:
            result = run_llamacpp(args.work, what) if kind == "llamacpp" else run_transformers(what)
        result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print("RESULT " + json.dumps(result))
        return
    header = stamp()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = [line for line in lscpu.splitlines() if line.startswith(("Model name", "Flags"))]
    args.work.mkdir(parents=True, exist_ok=True)
    # Every step in a process of its own: a child inherits its parent's peak RSS, so this one stays small.
    rows: list[dict[str, Any]] = []
    try:
        engines = ("llamacpp:Q4_K_M", "llamacpp:Q8_0", "transformers:float32", "transformers:bfloat16")
        for one in ("build", *engines, "transformers:int8"):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.cpu_engines",
                    "--work",
                    str(args.work),
                    "--config",
                    str(args.config),
                    "--one",
                    one,
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            # llama.cpp's own stdout may share the line (C and Python buffer separately).
            line = next((x[x.index("RESULT {") :] for x in done.stdout.splitlines() if "RESULT {" in x), None)
            if line is None:
                print(done.stderr[-3000:], file=sys.stderr)
                if one == "build":
                    raise SystemExit("building the checkpoint failed")
                rows.append({"engine": one, "error": (done.stderr.strip().splitlines() or ["?"])[-1]})
                continue
            rows.append(json.loads(line[7:]))
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
    built = rows.pop(0)
    bandwidth = built["bandwidth"]
    write_section("cpu-engines", report(header, cpu, bandwidth, built, rows))


def report(header: str, cpu: list[str], bandwidth: float, built: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    base = next((r for r in rows if r["engine"] == "transformers float32" and "error" not in r), None)
    lines = [
        "## CPU engines on the Qwen2.5-VL-3B shape (random weights): llama.cpp against transformers\n",
        header.rstrip(),
        *[f"- lscpu: {c}" for c in cpu],
        f"- read bandwidth (best 2 GiB sum): {bandwidth / 1e9:.1f} GB/s; building and converting the random "
        f"checkpoint took {built['build_seconds']:.0f} s",
        f"- one default-size page: {rows[0].get('tokens_in', '?')} prompt tokens; decode over its KV cache; "
        f"the 1,200-token page is extrapolated (vision + prefill + {PAGE_TOKENS} x ms/token)\n",
        "| engine | vision s | prefill s | ms/token, 1 page | floor ms | x floor | tokens/s, 4 pages "
        "| vs float32 (1 / 4 pages) | 1,200-token page | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['engine']} | failed: {r['error']} |  |  |  |  |  |  |  |  |")
            continue
        floor = r["weights_bytes"] / bandwidth * 1000
        vs = (
            f"{base['ms_per_token_1'] / r['ms_per_token_1']:.1f}x / {r['tokens_per_s_4'] / base['tokens_per_s_4']:.1f}x"
            if base
            else "?"
        )
        page = r["vision_s"] + r["prefill_s"] + PAGE_TOKENS * r["ms_per_token_1"] / 1000
        vision = f"{r['vision_s']:.1f}" + (f" (bf16: {r['vision_bf16_s']:.1f})" if "vision_bf16_s" in r else "")
        lines.append(
            f"| {r['engine']} | {vision} | {r['prefill_s']:.1f} | {r['ms_per_token_1']:.0f} | {floor:.0f} | "
            f"{r['ms_per_token_1'] / floor:.1f} | {r['tokens_per_s_4']:.1f} | {vs} | {page / 60:.1f} min | "
            f"{r['peak_rss_bytes'] / 2**30:.1f} GiB |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
