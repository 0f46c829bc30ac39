"""Stopping criteria for transformers' generate: a looping sequence stops alone, a call stops at its time budget."""

from __future__ import annotations

import time
from typing import Any

import torch
from transformers import StoppingCriteria

from docparse.engines.looping import STRIDE, WINDOW, check_due, looping_tail


class RepetitionStop(StoppingCriteria):
    """Stops each sequence whose generated tail loops; its batch-mates go on.

    `prompt_length` is the padded prompt length (generated ids start there). `stopped` maps a
    batch row to the number of tokens it had generated when it was stopped.
    """

    def __init__(self, prompt_length: int, stride: int = STRIDE) -> None:
        self.prompt_length = prompt_length
        self.stride = max(1, stride)
        self.stopped: dict[int, int] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        batch, length = input_ids.shape
        generated = length - self.prompt_length
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        if not check_due(generated, self.stride):
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
