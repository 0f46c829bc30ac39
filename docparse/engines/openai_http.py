"""The server engine's HTTP side: GET /models to check the server, chat completions POSTed with retries."""

from __future__ import annotations

import email.utils
import json
import math
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx2

from docparse.config import ServerOptions
from docparse.engines.oneline import squeeze
from docparse.errors import EngineError, ModelUnavailableError, UsageError

# Seconds to open a connection, and to wait for the startup check: a server that is down or
# unreachable must be reported within seconds, whatever --timeout is.
CONNECT_TIMEOUT = 5.0
CHECK_TIMEOUT = 10.0
# Backoff between tries: full jitter on base * 2**try, capped; a Retry-After is obeyed up to its cap.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 120.0
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


class ChatClient:
    """Chat completions POSTed to one server: retries with backoff, Retry-After, and the extras it refuses.

    Thread-safe: one HTTP connection pool serves every thread. `sleep` is the wait between tries (tests
    record it instead); `requests` (requests sent) and `retries` (tries repeated) are counters a caller
    may read (benchmarks, tests).
    """

    def __init__(self, client: httpx2.Client, server: ServerOptions) -> None:
        self.client = client
        self.server = server
        self._lock = threading.Lock()
        self._rejects_extras = False
        self.sleep = time.sleep
        self.requests = 0
        self.retries = 0

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


def connect(server: ServerOptions) -> httpx2.Client:
    """The HTTP client for the server at `server.api_base`: its key, timeouts and --concurrency connections.

    Raises UsageError when the key variable is unset.
    """
    headers = {"User-Agent": "docparse"}
    key = _api_key(server)
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return httpx2.Client(
        base_url=server.api_base,
        headers=headers,
        timeout=httpx2.Timeout(server.timeout, connect=CONNECT_TIMEOUT),
        limits=httpx2.Limits(max_connections=server.concurrency, max_keepalive_connections=server.concurrency),
    )
