"""How tests and benchmarks start a real `transformers serve` on loopback: its venv, a free port, the command."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests.paths import REPO

# The server's own venv (torch 2.14.1 + torchvision + transformers[serving]; .ci/run creates it).
SERVE_PYTHON = Path(os.environ.get("DOCPARSE_SERVE_PYTHON", REPO / ".venv-serve" / "bin" / "python"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(model_dir: Path, port: int, *extra: str) -> list[str]:
    """`transformers serve MODEL` on 127.0.0.1:`port`, on the CPU, from the server venv."""
    return [
        str(SERVE_PYTHON),
        "-c",
        "from transformers.cli.transformers import main; main()",
        "serve",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        *extra,
    ]
