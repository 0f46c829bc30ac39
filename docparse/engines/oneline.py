"""Errors and server texts made one line long, for the one-line reports every engine gives."""

from __future__ import annotations


def one_line(exc: BaseException, *, last: bool = False) -> str:
    """`Type: first line of the message`, for one-line error reports.

    `last` takes the message's last line instead (where a library puts the cause after its context, as
    vLLM does), without a trailing colon.
    """
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    if last:
        return f"{type(exc).__name__}: {lines[-1]}".rstrip(": ")
    return f"{type(exc).__name__}: {lines[0]}"


def squeeze(text: str, limit: int = 300) -> str:
    """`text` with its runs of white space made one space, cut to `limit` characters (ending in ...)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
