"""Stopping criteria for transformers' generate: a looping sequence stops alone, a call stops at its time budget."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from transformers import StoppingCriteria

# A sequence is looping when its last tokens are one unit of at most MAX_PERIOD tokens repeated
# at least max(MIN_COPIES, MIN_TOKENS / period) times in a row: a line or table row written over
# and over, or one token stuck. Real pages repeat units too: a form's empty rows (about 10 tokens
# each), longtable's demo with a dozen rows of "Lots of lines | like this." (about 15 tokens). So
# a unit must come back 8 times and over 160 tokens: 16 empty rows, 11 such rows. A loop still
# stops within a few hundred tokens of an 8192-token budget.
MAX_PERIOD = 128
MIN_COPIES = 8
MIN_TOKENS = 160
# The tail looked at, in tokens (enough for MIN_COPIES copies of the longest unit).
WINDOW = MAX_PERIOD * MIN_COPIES


def looping_tail(
    ids: np.ndarray, max_period: int = MAX_PERIOD, min_copies: int = MIN_COPIES, min_tokens: int = MIN_TOKENS
) -> bool:
    """True when the end of `ids` is a unit of up to `max_period` ids repeated enough times in a row."""
    n = len(ids)
    for period in range(1, min(max_period, n // 2) + 1):
        need = max(min_copies, -(-min_tokens // period))
        if need * period > n:
            break
        tail = ids[n - need * period :]
        if np.array_equal(tail[period:], tail[:-period]):
            return True
    return False


class RepetitionStop(StoppingCriteria):
    """Stops each sequence whose generated tail loops; its batch-mates go on.

    `prompt_length` is the padded prompt length (generated ids start there). `stopped` maps a
    batch row to the number of tokens it had generated when it was stopped.
    """

    def __init__(self, prompt_length: int, stride: int = 4) -> None:
        self.prompt_length = prompt_length
        self.stride = max(1, stride)
        self.stopped: dict[int, int] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        batch, length = input_ids.shape
        generated = length - self.prompt_length
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        if generated < MIN_TOKENS or generated % self.stride:
            return done  # type: ignore[return-value]
        tails = input_ids[:, max(self.prompt_length, length - WINDOW) :].cpu().numpy()
        for row in range(batch):
            if row not in self.stopped and looping_tail(tails[row]):
                self.stopped[row] = generated
                done[row] = True
        return done  # type: ignore[return-value]


class TimeBudget(StoppingCriteria):
    """Stops the whole call once `seconds` have passed since `start` (time.perf_counter)."""

    def __init__(self, seconds: float, start: float) -> None:
        self.seconds = seconds
        self.start = start
        self.fired = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        over = time.perf_counter() - self.start > self.seconds
        self.fired = self.fired or over
        return torch.full((input_ids.shape[0],), over, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]
