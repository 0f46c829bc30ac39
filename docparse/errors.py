"""Typed errors raised by library code; only the CLI turns them into a message and an exit code."""

from __future__ import annotations

# Exit codes, documented in the README and in `docparse --help`.
EXIT_OK = 0
EXIT_FAILED = 1  # an input (or some of its pages) could not be converted
EXIT_USAGE = 2  # bad options or arguments
EXIT_MODEL = 3  # the model or server could not be loaded
EXIT_INTERRUPTED = 130  # Ctrl-C


class DocparseError(Exception):
    """Base of every error docparse reports to a user: one line, no traceback."""

    exit_code = EXIT_FAILED


class UsageError(DocparseError):
    """The command line asks for something impossible (bad range, bad size, unknown format)."""

    exit_code = EXIT_USAGE


class InputError(DocparseError):
    """An input file cannot be read: missing, empty, broken, encrypted, or not a supported type."""

    exit_code = EXIT_FAILED


class PasswordError(InputError):
    """The PDF is encrypted and no password, or a wrong one, was given."""


class ModelUnavailableError(DocparseError):
    """The model could not be loaded: not cached while offline, not found, not a Qwen2.5-VL checkpoint; or its
    server is down, refuses the key, does not serve it, or resizes page images."""

    exit_code = EXIT_MODEL


class EngineError(DocparseError):
    """The engine failed while generating (out of memory, device error)."""

    exit_code = EXIT_FAILED
