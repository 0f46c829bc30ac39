"""Local HTTP servers for the server-engine tests: a scripted OpenAI-compatible server with faults; a proxy."""

from __future__ import annotations

import base64
import http.client
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from docparse.prompt import image_token_count

TEXT_TOKENS = 21  # the fake server's prompt length without the image


def image_of(body: dict[str, Any]) -> Image.Image:
    """The image a chat completion request carries (its first image_url part, a base64 data URL)."""
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    assert url.startswith("data:image/png;base64,"), url[:40]
                    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    raise AssertionError("no image in the request")


def box_answer(width: int, height: int) -> str:
    """A QwenVL HTML answer whose one paragraph covers the left half of the top quarter of the image."""
    return f'<html><body><p data-bbox="0 0 {width // 2} {height // 4}">Page text</p></body></html>'


@dataclass
class Seen:
    """One request the fake server received."""

    path: str
    body: dict[str, Any] | None
    size: tuple[int, int] | None
    fault: str | None
    started: float
    ended: float = 0.0


@dataclass
class FakeServer:
    """An OpenAI-compatible server on 127.0.0.1 answering from a script.

    Page requests (max_tokens above 1; calibration requests ask for 1 token) are numbered from 1 in
    arrival order; `faults` maps a number to what that request gets instead of an answer: "429"
    (with Retry-After: 1), "500", "503", "slow" (answers after `slow_seconds`), "drop" (closes the
    connection without answering), "garbage" (200 with a body that is not JSON), "resize" (usage
    counts an image of a quarter of the pixels), "length" (finish_reason "length"). `fault_by_pixel`
    does the same by the image's top-left pixel (R value), and `fault_by_width` by the image's width,
    for concurrent callers. `models` is what
    /v1/models lists; `key` the API key required (None: none); `shrink_above` makes usage count images
    of more pixels as that many (a server with a lower max_pixels); `reject_fields` are body fields
    answered with 422 (as transformers serve treats fields it does not know).
    """

    models: tuple[str, ...] = ("tiny",)
    key: str | None = None
    faults: dict[int, str] = field(default_factory=dict)
    fault_by_pixel: dict[int, list[str]] = field(default_factory=dict)
    fault_by_width: dict[int, list[str]] = field(default_factory=dict)
    slow_seconds: float = 2.0
    shrink_above: int | None = None
    reject_fields: tuple[str, ...] = ()
    latency: float = 0.0
    answer: Callable[[int, int], str] = box_answer
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pages: int = 0
    in_flight: int = 0
    most_in_flight: int = 0

    def _fault(self, body: dict[str, Any], image: Image.Image) -> str | None:
        with self._lock:
            if body.get("max_tokens") == 1:
                return None
            self._pages += 1
            fault = self.faults.get(self._pages)
            for queue in (self.fault_by_pixel.get(image.getpixel((0, 0))[0]), self.fault_by_width.get(image.width)):  # type: ignore[index]
                if fault is None and queue:
                    fault = queue.pop(0)
            return fault

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting (a timeout test)

            def _authorised(self) -> bool:
                if server.key is None or self.headers.get("Authorization") == f"Bearer {server.key}":
                    return True
                self._send(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
                return False

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path != "/v1/models":
                    self._send(404, {"detail": "Not Found"})
                    return
                data = [{"id": m, "object": "model", "owned_by": "fake", "root": f"/models/{m}"} for m in server.models]
                self._send(200, {"object": "list", "data": data})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if not self._authorised():
                    return
                if self.path != "/v1/chat/completions":
                    self._send(404, {"detail": "Not Found"})
                    return
                unknown = set(server.reject_fields) & set(body)
                if unknown:
                    self._send(422, {"detail": f"Unexpected fields in the request: {unknown}"})
                    return
                if body.get("model") not in server.models:
                    self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
                    return
                image = image_of(body)
                fault = server._fault(body, image)
                seen = Seen(self.path, body, image.size, fault, time.monotonic())
                with server._lock:
                    server.seen.append(seen)
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    self._answer(body, image, fault)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                    seen.ended = time.monotonic()

            def _answer(self, body: dict[str, Any], image: Image.Image, fault: str | None) -> None:
                if server.latency:
                    time.sleep(server.latency)
                if fault == "429":
                    self._send(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "1"})
                    return
                if fault in ("500", "503"):
                    self._send(int(fault), {"error": {"message": "engine overloaded"}})
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "garbage":
                    self._send(200, b"<html>gateway</html>")
                    return
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                width, height = image.size
                pixels = width * height // 4 if fault == "resize" else width * height
                if server.shrink_above is not None and pixels > server.shrink_above:
                    pixels = server.shrink_above  # a server whose max_pixels is below the image
                tokens = TEXT_TOKENS + image_token_count(28, 28) * pixels // (28 * 28)
                text = server.answer(width, height) if body.get("max_tokens", 0) > 1 else "<"
                self._send(
                    200,
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "length" if fault == "length" else "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": tokens, "completion_tokens": 17, "total_tokens": tokens + 17},
                    },
                )

        return Handler

    def pages(self) -> list[Seen]:
        """Page requests received (calibration requests left out), in arrival order."""
        return [s for s in self.seen if s.body is not None and s.body.get("max_tokens") != 1]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run `handler` on 127.0.0.1 in a thread; yields the API base address (http://127.0.0.1:PORT/v1)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def fake_server(server: FakeServer) -> Iterator[str]:
    with serving(server.handler()) as base:
        yield base


@dataclass
class RecordingProxy:
    """Forwards every request to `upstream` (host, port) unchanged and records the request bodies."""

    upstream: tuple[str, int]
    bodies: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length) if length else None
                if data:
                    proxy.bodies.append(json.loads(data))
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=300)
                try:
                    headers = {"Content-Type": "application/json"} if data else {}
                    conn.request(method, self.path, body=data, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                finally:
                    conn.close()
                if data and response.status == 200:
                    proxy.answers.append(json.loads(payload))
                self.send_response(response.status)
                self.send_header("Content-Type", response.getheader("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

        return Handler
