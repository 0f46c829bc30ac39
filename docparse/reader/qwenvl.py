"""The reader: one raw Qwen2.5-VL "QwenVL HTML" answer in, typed document blocks (in page space) out."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from docparse.document import Block, Other, Text
from docparse.reader.blocks import BlockReader
from docparse.reader.context import ReadContext
from docparse.reader.elements import clean
from docparse.reader.tree import MAX_TREE_DEPTH, parse, visible_text
from docparse.reader.unwrap import answer_html, truncation, unwrap

__all__ = ["ReadResult", "read_answer"]


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What the reader made of one answer.

    `blocks` are in reading order. `warnings` are human-readable, one line each. `truncated` is
    True when the answer was cut off (no closing fence, no closing `</html>`/`</body>`, or it ends
    inside a tag). `structured` is False when the answer carries no `data-bbox` at all, i.e. it is
    not QwenVL HTML (another prompt, or no HTML): its text is still returned as blocks.
    """

    blocks: tuple[Block, ...]
    warnings: tuple[str, ...]
    truncated: bool
    structured: bool


def read_answer(
    raw: str, *, image_size: tuple[int, int] | None = None, page_size: tuple[float, float] | None = None
) -> ReadResult:
    """Read one raw model answer into blocks. Never raises.

    `image_size` is the (width, height) in pixels of the image the model saw; `page_size` the
    (width, height) of the page in its unit. With both, every box is mapped to the page
    (x * page_w / image_w, likewise y, rounded to 2 decimals); otherwise boxes stay in model
    pixels. With `image_size`, boxes are clamped to the image (one warning per page).
    Any internal error gives the answer's visible text as Other blocks and a warning.
    """
    try:
        return _read(raw, image_size, page_size)
    except Exception as exc:  # the reader must never raise: keep the text instead
        return _fallback(raw, exc)


def _read(raw: str, image_size: tuple[int, int] | None, page_size: tuple[float, float] | None) -> ReadResult:
    ctx = ReadContext(image_size, page_size)
    answer = answer_html(clean(raw if isinstance(raw, str) else str(raw)))
    if answer.prose.strip():
        ctx.warnings.append(
            f"ignored {len(answer.prose.strip())} characters of prose outside the ``` fence ({_snippet(answer.prose)})"
        )
    cut = answer.cut
    if cut is not None:
        ctx.warnings.append(f"the answer was cut off: {cut}")
    html = answer.html
    if not html.strip():
        ctx.warnings.append("the answer is empty")
        return ReadResult((), tuple(ctx.warnings), cut is not None, False)
    parsed = parse(html)
    if not parsed.has_bbox:
        ctx.warnings.append(
            "the answer is not QwenVL HTML (no data-bbox anywhere): probably a different prompt; "
            "its text is kept without boxes"
        )
    if parsed.flattened:
        ctx.warnings.append(f"markup nested deeper than {MAX_TREE_DEPTH} levels was flattened to its text")
    blocks = BlockReader(ctx).read_tree(parsed.root) if parsed.root is not None else []
    ctx.summarise()
    return ReadResult(tuple(blocks), tuple(ctx.warnings), cut is not None, parsed.has_bbox)


def _snippet(text: str) -> str:
    s = " ".join(text.split())
    return repr(s if len(s) <= 60 else s[:57] + "...")


def _fallback(raw: Any, exc: Exception) -> ReadResult:
    """The answer's visible text as Other blocks, after an internal error. Never raises."""
    detail = " ".join(str(exc).split())[:200]
    warning = f"the reader failed ({type(exc).__name__}: {detail}); kept the answer's text only"
    try:
        text = clean(raw if isinstance(raw, str) else str(raw))
    except Exception:
        return ReadResult((), (warning,), False, False)
    try:
        chunks = visible_text(unwrap(text).html)
    except Exception:
        chunks = [text]
    blocks: list[Block] = []
    for chunk in chunks:
        s = " ".join(chunk.split())
        if s:
            blocks.append(Other(content=(Text(s),)))
    truncated = False
    with contextlib.suppress(Exception):
        truncated = truncation(unwrap(text)) is not None
    return ReadResult(tuple(blocks), (warning,), truncated, "data-bbox" in text)
