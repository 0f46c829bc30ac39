"""Errors from the model hub, told apart and reported in one line (the transformers and llama.cpp engines)."""

from __future__ import annotations

import importlib


def hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the hub (or the cache) could not supply the model.

    OSError covers huggingface_hub's HTTP, offline and cache errors; ValueError its bad-id errors;
    the HTTP client's own errors (httpx2 for huggingface_hub 2.x, httpx for 1.x) cover refused
    connections, timeouts and proxies.
    """
    errors: list[type[BaseException]] = [OSError, ValueError]
    for client in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(client)
        except ImportError:
            continue
        errors.extend([module.HTTPError, module.InvalidURL])
    return tuple(errors)


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, for one-line error reports."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
