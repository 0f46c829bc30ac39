"""Errors from the model hub, told apart from the others (the transformers and llama.cpp engines)."""

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
