"""What a test does when a real library or tool it needs is missing: skip locally, fail under CI=true."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str, ci_hint: str) -> NoReturn:
    """Skip the test with `reason`; under CI=true fail instead, naming what .ci/run should have installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: {ci_hint}")
    pytest.skip(reason)
