"""The server engine: one chat completion per page on an OpenAI-compatible server (vLLM, SGLang, transformers serve)."""

from __future__ import annotations

import base64
import io
import json
import math
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
from docparse.engines.openai_http import ChatClient, ServedModel, check_server, connect
from docparse.errors import EngineError, ModelUnavailableError
from docparse.prompt import FACTOR, image_token_count

if TYPE_CHECKING:
    from docparse.engines.base import Engine

# PNG compression: level 1 encodes a 1064x1484 page in about half the time of the default 6, and
# the files came out no larger (benchmarks/RESULTS-openai.md); the pixels are lossless either way.
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True, slots=True)
class Calibration:
    """The server's prompt length without the image: prompt_tokens = text_tokens + image tokens."""

    text_tokens: int
    sizes: tuple[tuple[int, int], ...]


def encode_png(image: Image.Image) -> bytes:
    """The page image as PNG bytes, pixels unchanged (RGB)."""
    buffer = io.BytesIO()
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    rgb.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


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


class OpenAIEngine(ChatClient):
    """Answers each page with one chat completion on an OpenAI-compatible server.

    Thread-safe (a ChatClient: one HTTP connection pool, retries): at most `concurrency` requests are
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
        super().__init__(client, server)
        self.options = model
        self.served = served
        self.calibration = calibration
        self._slots = threading.BoundedSemaphore(server.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=server.concurrency, thread_name_prefix="docparse-openai")
        self._closed = False

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
    client = connect(server)
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
