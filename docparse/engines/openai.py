"""The server engine: one chat completion per page on an OpenAI-compatible server (vLLM, SGLang, transformers serve)."""

from __future__ import annotations

import base64
import email.utils
import io
import json
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2
from PIL import Image

from docparse.config import ModelOptions, RasterOptions, ServerOptions
from docparse.document import FinishReason, Generation
from docparse.engines.base import GREEDY, Answer, GenerationSettings
from docparse.engines.oneline import squeeze
from docparse.errors import EngineError, ModelUnavailableError, UsageError
from docparse.prompt import FACTOR, image_token_count

if TYPE_CHECKING:
    from docparse.engines.base import Engine

# Seconds to open a connection, and to wait for the startup check: a server that is down or
# unreachable must be reported within seconds, whatever --timeout is.
CONNECT_TIMEOUT = 5.0
CHECK_TIMEOUT = 10.0
# Backoff between tries: full jitter on base * 2**try, capped; a Retry-After is obeyed up to its cap.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 120.0
# PNG compression: level 1 encodes a 1064x1484 page in about half the time of the default 6, and
# the files came out no larger (benchmarks/RESULTS-openai.md); the pixels are lossless either way.
PNG_COMPRESS_LEVEL = 1
# Vendor extras that some servers reject as unknown fields (transformers serve answers 422).
_EXTRA_FIELDS = ("repetition_penalty",)


@dataclass(frozen=True, slots=True)
class ServedModel:
    """What identifies the model behind the server: the name requests use, and what /models says of it.

    `root` is the checkpoint vLLM loaded (its /v1/models `root`), when the server reports one; a page
    cache should key on (api_base-independent) `name` and `root`.
    """

    name: str
    root: str | None
    owned_by: str | None


@dataclass(frozen=True, slots=True)
class Calibration:
    """The server's prompt length without the image: prompt_tokens = text_tokens + image tokens."""

    text_tokens: int
    sizes: tuple[tuple[int, int], ...]


class _Retryable(Exception):
    """A try that may succeed when repeated (connection error, 429, 5xx); `wait` from Retry-After."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class _Rejected(Exception):
    """The server answered with an error status that repeating will not change (4xx but 429)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def encode_png(image: Image.Image) -> bytes:
    """The page image as PNG bytes, pixels unchanged (RGB)."""
    buffer = io.BytesIO()
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    rgb.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), capped; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def backoff(attempt: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff before try `attempt` + 1 (attempt counts from 0)."""
    return rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def _error_detail(response: httpx2.Response) -> str:
    """The server's own error message from an error response (OpenAI, vLLM and FastAPI shapes)."""
    try:
        body = response.json()
    except ValueError:
        return squeeze(response.text) or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return squeeze(error if isinstance(error, str) else json.dumps(error))
    return squeeze(json.dumps(body))


def calibration_sizes(raster: RasterOptions) -> tuple[tuple[int, int], ...]:
    """Two image sizes (width, height) at docparse's pixel bounds: the smallest and the largest
    square-ish image docparse may send, both multiples of 28. A server that keeps both as they are
    leaves every size between them alone too (smart_resize only changes sizes out of its bounds)."""
    low = FACTOR * math.ceil(math.sqrt(raster.min_pixels) / FACTOR)
    high = FACTOR * math.floor(math.sqrt(raster.max_pixels) / FACTOR)
    small = (low, low)
    # The larger one a column narrower, so the two differ even when the bounds are one size apart.
    large = (max(FACTOR, high - FACTOR), high) if high * (high - FACTOR) >= raster.min_pixels else (high, high)
    return (small, large) if large != small else (small,)


class OpenAIEngine:
    """Answers each page with one chat completion on an OpenAI-compatible server.

    Thread-safe: one HTTP connection pool serves every thread, and at most `concurrency` requests are
    in flight at once, whoever calls. A generate call with several images fans them out itself, each
    image PNG-encoded only once it holds a slot, so memory holds at most `concurrency` encoded pages.
    Every answer's usage.prompt_tokens is checked against the calibrated text length plus the image's
    token count: an image the server resized is an EngineError for that page, never wrong boxes.
    """

    def __init__(
        self,
        client: httpx2.Client,
        model: ModelOptions,
        server: ServerOptions,
        served: ServedModel,
        calibration: Calibration,
    ) -> None:
        self.client = client
        self.options = model
        self.server = server
        self.served = served
        self.calibration = calibration
        self._slots = threading.BoundedSemaphore(server.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=server.concurrency, thread_name_prefix="docparse-openai")
        self._lock = threading.Lock()
        self._rejects_extras = False
        self._closed = False
        self.sleep = time.sleep  # the wait between tries (tests record it instead)
        # Counters a caller may read (benchmarks, tests): requests sent and tries repeated.
        self.requests = 0
        self.retries = 0

    @property
    def model_id(self) -> str:
        """The model as the server names it (--served-model, else --model)."""
        return self.served.name

    @property
    def batch_size(self) -> int:
        """One page per call: the server batches requests from many callers itself."""
        return 1

    @property
    def concurrency(self) -> int:
        """Requests that may be in flight at once: --concurrency."""
        return self.server.concurrency

    def identity(self) -> dict[str, str | None]:
        """What names the model's answers, for a page cache: engine kind, served name, checkpoint root."""
        return {"engine": "openai", "served_model": self.served.name, "root": self.served.root}

    # ---- requests -----------------------------------------------------------------------------

    def body(self, url: str, settings: GenerationSettings, max_tokens: int | None = None) -> dict[str, Any]:
        """The chat completion request for one page image (a data URL), as the local engine prompts:
        system message, then the user turn with the request text followed by the image."""
        body: dict[str, Any] = {
            "model": self.served.name,
            "messages": [
                {"role": "system", "content": self.options.system_prompt},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": self.options.prompt},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                },
            ],
            "max_tokens": max_tokens or settings.max_new_tokens or self.options.max_new_tokens,
            "temperature": 0.0 if settings.temperature is None else settings.temperature,
            "stream": False,
        }
        if settings.temperature is not None:
            body["seed"] = settings.seed
        if settings.repetition_penalty is not None and not self._rejects_extras:
            body["repetition_penalty"] = settings.repetition_penalty
        return body

    def _post_once(self, body: dict[str, Any], timeout: float, budget: bool = False) -> dict[str, Any]:
        """One try; raises _Retryable, _Rejected, or EngineError for a read timeout (`budget`: the
        page's time budget, not --timeout, set this try's limit)."""
        with self._lock:
            self.requests += 1
        try:
            response = self.client.post(
                "/chat/completions",
                json=body,
                timeout=httpx2.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
            )
        except httpx2.ReadTimeout:
            # The server took the request and is still working on it: greedy decoding of the same
            # page would take as long again, so a timeout is not repeated.
            limit = "the page time budget (--page-timeout)" if budget else f"{timeout:g} s (--timeout)"
            raise EngineError(f"the server sent no answer within {limit}") from None
        except (httpx2.TransportError, httpx2.DecodingError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {squeeze(str(exc)) or 'connection failed'}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(
                f"HTTP {response.status_code}: {_error_detail(response)}",
                retry_after(response.headers.get("retry-after")),
            )
        if response.status_code >= 400:
            raise _Rejected(response.status_code, f"HTTP {response.status_code}: {_error_detail(response)}")
        try:
            answer = response.json()
        except ValueError:
            raise _Retryable(f"the answer is not JSON: {squeeze(response.text, 120)}") from None
        if not isinstance(answer, dict):
            raise EngineError(f"the server's answer is not a JSON object: {squeeze(response.text, 120)}")
        return answer

    def post(self, body: dict[str, Any], deadline: float | None = None) -> dict[str, Any]:
        """POST a chat completion, repeating connection errors, 429 and 5xx with backoff and jitter
        (honouring Retry-After) up to `retries` times or until `deadline` (time.monotonic)."""
        rng = random.Random()
        attempt = 0
        while True:
            timeout = self.server.timeout
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise EngineError("the page time budget ran out waiting for the server")
            try:
                if left is not None and left < timeout:
                    return self._post_once(body, left, budget=True)
                return self._post_once(body, timeout)
            except _Rejected as exc:
                if self._drop_extras(body, str(exc)):
                    continue
                raise EngineError(f"the server refused the request: {exc}") from None
            except _Retryable as exc:
                if attempt >= self.server.retries:
                    tries = f"{attempt + 1} tries" if attempt else "1 try"
                    raise EngineError(f"no answer from {self.server.api_base} after {tries}: {exc}") from None
                wait = exc.wait if exc.wait is not None else backoff(attempt, rng)
                if deadline is not None and time.monotonic() + wait >= deadline:
                    raise EngineError(f"the page time budget ran out retrying the server: {exc}") from None
                attempt += 1
                with self._lock:
                    self.retries += 1
                self.sleep(wait)

    def _drop_extras(self, body: dict[str, Any], message: str) -> bool:
        """A server that rejects a vendor extra field (not part of OpenAI's API) gets it no more."""
        dropped = [f for f in _EXTRA_FIELDS if f in body and f in message]
        if not dropped:
            return False
        for field in dropped:
            del body[field]
        self._rejects_extras = True
        return True

    # ---- pages --------------------------------------------------------------------------------

    def _page(self, image: Image.Image, settings: GenerationSettings, deadline: float | None) -> Answer:
        width, height = image.size
        if width % FACTOR or height % FACTOR:
            raise EngineError(f"page image {width}x{height}: sides must be multiples of {FACTOR}")
        with self._slots:
            if self._closed:
                raise EngineError("the engine was closed")
            start = time.perf_counter()
            answer = self.post(self.body(data_url(encode_png(image)), settings), deadline)
            seconds = time.perf_counter() - start
        text, finish, prompt_tokens, completion_tokens = read_completion(answer)
        expected = self.calibration.text_tokens + image_token_count(width, height)
        if prompt_tokens != expected:
            seen = prompt_tokens - self.calibration.text_tokens
            raise EngineError(
                f"the server did not take page image {width}x{height} as sent: its prompt has {prompt_tokens} "
                f"tokens, not {expected} ({seen} image tokens instead of {image_token_count(width, height)}), "
                "so it resized the image and the boxes would not map; start it with max_pixels at least "
                "docparse's --max-pixels (vLLM: --mm-processor-kwargs '{\"max_pixels\": N}')"
            )
        generation = Generation(
            model=self.model_id,
            prompt=self.options.prompt,
            tokens_in=prompt_tokens,
            tokens_out=completion_tokens,
            seconds=seconds,
            finish_reason=finish,
        )
        return Answer(text=text, generation=generation)

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        """One chat completion per image, at most `concurrency` in flight; answers in image order.

        Raises EngineError (one line) when a page gets no usable answer: after the retries, on a
        timeout, on a refused request, or when the server resized the image. The other pages of the
        call still run to the end first.
        """
        deadline = None if settings.time_limit is None else time.monotonic() + settings.time_limit
        if len(images) == 1:
            return [self._page(images[0], settings, deadline)]
        futures: list[Future[Answer]] = [self._pool.submit(self._page, im, settings, deadline) for im in images]
        answers: list[Answer] = []
        failure: EngineError | None = None
        for future in futures:
            try:
                answers.append(future.result())
            except EngineError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return answers

    def close(self) -> None:
        """Close the connection pool; the engine cannot generate afterwards."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()


def read_completion(answer: dict[str, Any]) -> tuple[str, FinishReason, int, int]:
    """(text, finish reason, prompt tokens, completion tokens) from a chat completion; the answer is
    untrusted, so anything missing or mistyped is an EngineError."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise EngineError("the server's answer has no choices")
    choice = choices[0]
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise EngineError("the server's answer has no text content")
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        raise EngineError("the server's answer has no usage counts, so the image size it used cannot be checked")
    prompt_tokens = usage.get("prompt_tokens")
    completion_tokens = usage.get("completion_tokens")
    if not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int):
        raise EngineError("the server's answer has no usage.prompt_tokens / completion_tokens")
    finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
    return text, finish, prompt_tokens, completion_tokens


# ---- opening ----------------------------------------------------------------------------------


def _api_key(server: ServerOptions) -> str | None:
    if server.api_key_env is None:
        return None
    key = os.environ.get(server.api_key_env)
    if not key:
        raise UsageError(f"--api-key-env {server.api_key_env}: that environment variable is not set or empty")
    return key.strip()


def check_server(client: httpx2.Client, server: ServerOptions, name: str) -> ServedModel:
    """GET /models: the server is up, takes the key, and serves `name`; else ModelUnavailableError."""
    where = server.api_base
    try:
        response = client.get("/models", timeout=httpx2.Timeout(CHECK_TIMEOUT, connect=CONNECT_TIMEOUT))
    except httpx2.TimeoutException:
        raise ModelUnavailableError(f"the server at {where} did not answer GET /models within seconds") from None
    except httpx2.TransportError as exc:
        raise ModelUnavailableError(
            f"cannot reach the server at {where} ({squeeze(str(exc)) or type(exc).__name__}): is it running?"
        ) from None
    if response.status_code in (401, 403):
        hint = (
            f"check the key in ${server.api_key_env}"
            if server.api_key_env
            else "pass --api-key-env with the variable that holds the key"
        )
        status = f"HTTP {response.status_code}: {_error_detail(response)}"
        raise ModelUnavailableError(f"the server at {where} refused the API key ({status}); {hint}")
    if response.status_code == 404:
        raise ModelUnavailableError(
            f"no OpenAI-compatible API at {where} (GET {where}/models: HTTP 404); --api-base usually ends in /v1"
        )
    if response.status_code >= 400:
        raise ModelUnavailableError(
            f"the server at {where} answered GET /models with HTTP {response.status_code}: {_error_detail(response)}"
        )
    try:
        listing = response.json()
    except ValueError:
        raise ModelUnavailableError(f"{where}/models is not an OpenAI-compatible model list (not JSON)") from None
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        raise ModelUnavailableError(f"{where}/models is not an OpenAI-compatible model list (no data)")
    entries = {str(e.get("id")): e for e in data if isinstance(e, dict) and e.get("id") is not None}
    entry = entries.get(name)
    if entry is None and server.pick_single and len(entries) == 1:
        ((name, entry),) = entries.items()  # no --model given: the one model served
    if entry is None:
        served = ", ".join(sorted(entries)[:10]) or "nothing"
        raise ModelUnavailableError(
            f"the server at {where} does not serve {name!r}; it serves: {served} (name one with --served-model)"
        )
    root = entry.get("root")
    owned = entry.get("owned_by")
    return ServedModel(
        name=name,
        root=root if isinstance(root, str) else None,
        owned_by=owned if isinstance(owned, str) else None,
    )


def calibrate(engine: OpenAIEngine, raster: RasterOptions) -> Calibration:
    """Measure the server's text tokens: one-token requests with blank images at docparse's two pixel
    bounds. Each gives prompt_tokens - image tokens; they agree only if the server kept both images
    at the size sent. ModelUnavailableError when it did not, or when the server cannot be used."""
    sizes = calibration_sizes(raster)
    bases: list[int] = []
    for width, height in sizes:
        blank = Image.new("RGB", (width, height), "white")
        body = engine.body(data_url(encode_png(blank)), GREEDY, max_tokens=1)
        try:
            answer = engine.post(body)
            _, _, prompt_tokens, _ = read_completion(answer)
        except EngineError as exc:
            raise ModelUnavailableError(
                f"the server at {engine.server.api_base} cannot answer a page request for {engine.served.name!r}: {exc}"
            ) from None
        bases.append(prompt_tokens - image_token_count(width, height))
    if len(set(bases)) != 1 or bases[0] <= 0:
        bounds = json.dumps({"min_pixels": raster.min_pixels, "max_pixels": raster.max_pixels})
        shown = " and ".join(f"{w}x{h}" for w, h in sizes)
        raise ModelUnavailableError(
            f"the server at {engine.server.api_base} resizes page images (test images {shown} came back as "
            f"{', '.join(str(b + image_token_count(w, h)) for b, (w, h) in zip(bases, sizes, strict=True))} "
            "prompt tokens): start it with pixel bounds that hold docparse's --min-pixels and --max-pixels "
            f"(vLLM: --mm-processor-kwargs '{bounds}')"
        )
    return Calibration(text_tokens=bases[0], sizes=sizes)


def open_openai_engine(model: ModelOptions, server: ServerOptions, raster: RasterOptions) -> OpenAIEngine:
    """Connect to the server, check it serves the model, calibrate the image size; ready to generate.

    Raises ModelUnavailableError (exit 3) within seconds when the server is down, refuses the key,
    does not serve the model, or resizes images; UsageError when the key variable is unset.
    """
    name = server.served_model or model.model
    headers = {"User-Agent": "docparse"}
    key = _api_key(server)
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    client = httpx2.Client(
        base_url=server.api_base,
        headers=headers,
        timeout=httpx2.Timeout(server.timeout, connect=CONNECT_TIMEOUT),
        limits=httpx2.Limits(max_connections=server.concurrency, max_keepalive_connections=server.concurrency),
    )
    engine: OpenAIEngine | None = None
    try:
        served = check_server(client, server, name)
        # A stand-in calibration until the real one is measured (the engine's request builder is used).
        engine = OpenAIEngine(client, model, server, served, Calibration(text_tokens=0, sizes=()))
        engine.calibration = calibrate(engine, raster)
    except BaseException:
        if engine is not None:
            engine.close()
        else:
            client.close()
        raise
    return engine


if TYPE_CHECKING:

    def _implements_engine(engine: OpenAIEngine) -> Engine:
        """Lets mypy check that OpenAIEngine satisfies the Engine protocol."""
        return engine
