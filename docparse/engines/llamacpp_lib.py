"""llama-cpp-python as the llama.cpp engine loads it: the bindings, llama.cpp's log sent to ours, the threads."""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any

from docparse.errors import ModelUnavailableError

# The engine's logger: llama.cpp's lines are logged as the engine's own.
log = logging.getLogger("docparse.engines.llamacpp")


def library() -> tuple[Any, Any]:
    """llama_cpp and its mtmd bindings, or ModelUnavailableError saying how to install them."""
    try:
        import llama_cpp
        from llama_cpp import mtmd_cpp
    except (ImportError, OSError) as exc:
        raise ModelUnavailableError(
            f"--engine llamacpp needs llama-cpp-python with its mtmd library: pip install 'docparse[llamacpp]' "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return llama_cpp, mtmd_cpp


# The one log callback handed to llama.cpp: its logger is process-wide, so the callback must outlive every engine.
_LOG_CALLBACK: list[Any] = []


def _forward_log(_level: int, text: bytes, _data: Any) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())


def quiet_logs(lib: Any, mtmd: Any) -> None:
    """llama.cpp logs every load to stderr; send it to the engine's logger at debug level instead."""
    if not _LOG_CALLBACK:
        _LOG_CALLBACK.append(lib.llama_log_callback(_forward_log))
        lib.llama_log_set(_LOG_CALLBACK[0], ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(_LOG_CALLBACK[0], ctypes.c_void_p(0))


def default_threads() -> int:
    """Threads for llama.cpp: the cores this process may use (physical and logical alike)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)
