"""The server engine's own cost per page (PNG, base64, JSON, HTTP, parsing) and how throughput grows with --concurrency.

Run from the repo root (the second part needs .venv-serve, which .ci/run makes):
  python -m benchmarks.openai_client                      # both parts
  python -m benchmarks.openai_client --skip-serve         # client overhead only

Part 0 compares PNG compression levels. Part 1 times each client step on real pages rendered at
docparse's default pixel bounds: PNG encoding, base64, the JSON body, one HTTP round trip to a null
server in another process (it answers at once with a recorded 72B answer as its text), and reading
that answer. Part 2 starts `transformers serve` with the tests' tiny model on 127.0.0.1 and sends the
same pages at several concurrency levels: pages per second, the mean request time, and (at
concurrency 1, where nothing queues) the server's own time per page and the client's share of it.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
from PIL import Image

from docparse.config import ModelOptions, RasterOptions, ServerOptions
from docparse.engines.base import GREEDY
from docparse.engines.openai import data_url, encode_png, open_openai_engine, read_completion
from docparse.inputs.rasterize import open_input
from docparse.prompt import image_token_count
from tests.serving import SERVE_PYTHON, free_port, serve_command

ROOT = Path(__file__).resolve().parents[1]
ANSWER = ROOT / "tests" / "data" / "qwenvl" / "01-cookbook-qwen25-techreport-72b.html"
PDFS = [
    ROOT.parent / "shared" / "fixtures" / "pdfs" / name
    for name in (
        "cjk-korean-nars-report-4pp.pdf",
        "col-multicolumn-lipsum-table.pdf",
        "tab-longtable-doc-continued.pdf",
    )
]


def pages(limit: int) -> list[Image.Image]:
    """Up to `limit` non-blank pages at docparse's default bounds (fixtures, else the sample report)."""
    sources = [p for p in PDFS if p.exists()] or [ROOT / "samples" / "report.pdf"]
    out: list[Image.Image] = []
    for path in sources:
        with open_input(path, RasterOptions()) as doc:
            for page in doc.pages():
                if not page.blank:
                    out.append(page.image.copy())
                if len(out) >= limit:
                    return out
    return out


def best_ms(fn: Callable[[], Any], repeat: int, clock: Callable[[], float] = time.perf_counter) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = clock()
        fn()
        best = min(best, clock() - started)
    return best * 1000


def png_levels(images: list[Image.Image], repeat: int) -> list[dict[str, Any]]:
    """PNG encoding CPU time (this process's, so other load on the machine counts less) and size at zlib
    levels 0, 1 (the engine's) and 6 (Pillow's default)."""
    import io

    rows = []
    for level in (0, 1, 6):

        def encode(image: Image.Image, level: int = level) -> int:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=level)
            return len(buffer.getvalue())

        ms = statistics.mean(best_ms(functools.partial(encode, im), repeat, time.process_time) for im in images)
        kb = statistics.mean(encode(im) for im in images) / 1024
        rows.append({"compress_level": level, "png_cpu_ms": round(ms, 1), "png_kb": round(kb)})
    return rows


# ---- part 1: a null server in another process ---------------------------------------------------


def _null_server(port: int, answer: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": "null", "object": "model"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            url = body["messages"][1]["content"][1]["image_url"]["url"]
            size = Image.open(__import__("io").BytesIO(__import__("base64").b64decode(url.split(",", 1)[1]))).size
            text = answer if body["max_tokens"] > 1 else "<"
            self._send(
                {
                    "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 20 + image_token_count(*size), "completion_tokens": 4000},
                }
            )

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def wait_up(base: str, seconds: float, process: Any = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx2.get(f"{base}/models", timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{base} did not come up in {seconds:.0f} s")


def parse(raw: str) -> None:
    read_completion(json.loads(raw))


def client_overhead(images: list[Image.Image], repeat: int) -> dict[str, Any]:
    answer = ANSWER.read_text()
    port = free_port()
    server = multiprocessing.Process(target=_null_server, args=(port, answer), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_up(base, 30)
        engine = open_openai_engine(ModelOptions(model="null"), ServerOptions(api_base=base), RasterOptions())
        rows: list[dict[str, Any]] = []
        for image in images:
            png = encode_png(image)
            url = data_url(png)
            body = engine.body(url, GREEDY)
            response = engine.post(body)
            raw = json.dumps(response)
            rows.append(
                {
                    "size": f"{image.width}x{image.height}",
                    "png_kb": round(len(png) / 1024),
                    "png_ms": best_ms(functools.partial(encode_png, image), repeat),
                    "base64_ms": best_ms(functools.partial(data_url, png), repeat),
                    "json_ms": best_ms(functools.partial(json.dumps, body), repeat),
                    "http_ms": best_ms(functools.partial(engine.post, body), repeat),
                    "parse_ms": best_ms(functools.partial(parse, raw), repeat),
                }
            )
        engine.close()
    finally:
        server.terminate()
        server.join()
    for row in rows:
        # http_ms includes serialising the body (httpx2 encodes the JSON) and decoding the answer.
        row["client_ms"] = row["png_ms"] + row["base64_ms"] + row["http_ms"] + row["parse_ms"]
    return {"answer_chars": len(answer), "pages": rows}


# ---- part 2: transformers serve with the tiny model ----------------------------------------------


def sweep(
    images: list[Image.Image], levels: list[int], new_tokens: int, client_ms: float, serve_args: list[str]
) -> list[dict[str, Any]]:
    from tests.tiny_model import build_serving_model

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_serving_model(Path(tmp) / "tiny")
        port = free_port()
        log = (Path(tmp) / "serve.log").open("wb")
        command = serve_command(model_dir, port, *serve_args)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}/v1"
        try:
            wait_up(base, 300, process)
            for level in levels:
                engine = open_openai_engine(
                    ModelOptions(model=str(model_dir), max_new_tokens=new_tokens),
                    ServerOptions(api_base=base, concurrency=level),
                    RasterOptions(),
                )
                engine.generate(images[:1])  # warm-up
                work = images * max(2, (2 * level) // len(images) + 1)
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=level) as pool:
                    answers = list(pool.map(lambda im, e=engine: e.generate([im])[0], work))
                wall = time.perf_counter() - started
                engine.close()
                # A request's time is the client's steps plus the server's work plus its wait in the
                # server's queue; at concurrency 1 there is no queue, so request - client = server work.
                request_ms = statistics.mean(a.generation.seconds for a in answers) * 1000
                results.append(
                    {
                        "concurrency": level,
                        "pages": len(work),
                        "pages_per_s": round(len(work) / wall, 3),
                        "mean_request_ms": round(request_ms, 1),
                        "request_minus_client_ms": round(request_ms - client_ms, 1),
                        "tokens_out_mean": round(statistics.mean(a.generation.tokens_out for a in answers), 1),
                    }
                )
                print(json.dumps(results[-1]), flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument(
        "--serve-args", default="", help="extra `transformers serve` options, e.g. --continuous-batching"
    )
    args = parser.parse_args()
    images = pages(args.pages)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}", flush=True)
    for row in png_levels(images, args.repeat):
        print(json.dumps(row), flush=True)
    overhead = client_overhead(images, args.repeat)
    for row in overhead["pages"]:
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    client_ms = statistics.mean(r["client_ms"] for r in overhead["pages"])
    print(f"client overhead per page (mean): {client_ms:.1f} ms", flush=True)
    if args.skip_serve:
        return
    if not SERVE_PYTHON.exists():
        raise SystemExit(f"{SERVE_PYTHON} is absent: run .ci/run (or set DOCPARSE_SERVE_PYTHON) for part 2")
    levels = [int(x) for x in args.levels.split(",")]
    rows = sweep(images, levels, args.new_tokens, client_ms, args.serve_args.split())
    server_ms = rows[0]["request_minus_client_ms"]
    if rows[0]["concurrency"] == 1 and server_ms > 0:
        print(
            f"server's own time per page (concurrency 1): {server_ms:.0f} ms; client overhead is "
            f"{100 * client_ms / server_ms:.1f}% of it",
            flush=True,
        )


if __name__ == "__main__":
    threading.current_thread().name = "benchmark"
    main()
