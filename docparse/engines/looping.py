"""Token-level loop detection, shared by every engine's generation loop (numpy only, no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
# A loop is looked for at every STRIDE-th generated token from MIN_TOKENS on, in every engine, so that
# all of them cut a looping answer at the same token.
STRIDE = 4


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


def check_due(generated: int, stride: int = STRIDE) -> bool:
    """Whether a loop is looked for once `generated` tokens are out: at every `stride`-th from MIN_TOKENS on."""
    return generated >= MIN_TOKENS and generated % stride == 0


def loops_after(ids: Sequence[int], n: int) -> bool:
    """Whether the first `n` generated `ids` end in a loop, looked for only where `check_due(n)` says so."""
    return check_due(n) and looping_tail(np.asarray(ids[max(0, n - WINDOW) : n], dtype=np.int64))
