"""What the two in-process engines (transformers, llama.cpp) share: one call at a time, chunks halved when too big."""

from __future__ import annotations

import logging


class LocalBatches:
    """An engine that takes one generate call at a time and cuts its pages into chunks of `batch_size`.

    A chunk too big for the device (out of memory, no context) is retried in halves, and the halved
    size is kept for later calls; the engine sets `_batch_size` when it is built.
    """

    _batch_size: int

    @property
    def batch_size(self) -> int:
        """Pages per generate call: --batch-size, or what `auto` stands for; smaller once a chunk did not fit."""
        return self._batch_size

    @property
    def concurrency(self) -> int:
        """One generate call at a time: a local engine is busiest with one big batch."""
        return 1

    def _halve(self, pages: int, log: logging.Logger, reason: str) -> None:
        """A chunk of `pages` pages (more than one) did not fit: half that size, kept from now on.

        `reason` (a %-format that takes the page count) starts the line logged at info level.
        """
        self._batch_size = max(1, pages // 2)
        log.info(reason + ": batch size now %d", pages, self._batch_size)
