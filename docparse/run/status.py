"""A page's status, decided in one place from what happened: its answer's shape, a clean retry, a failure, a blank page.

Every status but "fallback-text-layer" (set by docparse.layer.agreement.fallback_page) comes from here.
"""

from __future__ import annotations

from dataclasses import replace

from docparse.document import Page, PageStatus
from docparse.inputs.rasterize import PageImage

BLANK_WARNING = "the page is blank (no text layer, no ink on its raster); it was not sent to the model"


def answer_status(*, looped: bool, cut: bool, unstructured: bool = False) -> PageStatus:
    """The status of a page read from the model's answer: the worst thing seen wins (a loop, then an answer
    cut off, then blocks without the model's markup), else "ok"."""
    if looped:
        return "repetition"
    if cut:
        return "truncated"
    return "unstructured" if unstructured else "ok"


def retried(page: Page, attempts: int, note: str) -> Page:
    """The page a retry read cleanly, after `attempts` model calls in all; `note` says what was tried."""
    return replace(page, status="retried", attempts=attempts, warnings=(*page.warnings, note))


def _empty(image: PageImage, status: PageStatus, warning: str, attempts: int) -> Page:
    return Page(
        number=image.number,
        width=image.width,
        height=image.height,
        unit=image.unit,
        image_size=image.image.size,
        blocks=(),
        status=status,
        warnings=(warning,),
        attempts=attempts,
        rotation=image.turn,
    )


def blank_page(image: PageImage) -> Page:
    """A blank page, never sent to the model."""
    return _empty(image, "skipped-blank", BLANK_WARNING, 0)


def failed_page(image: PageImage, error: str) -> Page:
    """A page the engine failed on (one call): no blocks, `error` its error (and so its first warning)."""
    return _empty(image, "failed", error, 1)


def unrendered_page(number: int, error: str) -> Page:
    """A page that could not be rendered: failed, with nothing known of its size."""
    return Page(number=number, width=None, height=None, unit="pt", image_size=None, blocks=(), status="failed",
                warnings=(error,))  # fmt: skip
