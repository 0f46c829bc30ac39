"""The model's blocks checked against the PDF's own text layer: agreement, coverage, missing lines, fallback, snapping.

Nothing the model said is changed: the check only fills `Page.layer` (and, when asked, tightens
boxes to the layer's words, or gives a failed page blocks from the layer).

How text is compared. Both sides are reduced to *tokens*: NFKC (ligatures such as "ﬁ" become
"fi", Arabic presentation forms their letters), case folded, Arabic diacritics and tatweel dropped
and lam-alef put in one order (text layers of Arabic often store it reversed), a word hyphenated
at a line end joined again, hyphens inside words removed, and anything but letters, digits and marks
a separator, a word split where right-to-left letters meet left-to-right ones; ideographs, kana,
hangul and Thai count one token per character (their spacing is not to be trusted). Inline and
display LaTeX is first printed: `\\alpha` becomes "α", commands with no printed form, braces, `^`
and `_` go, so `x^{2}` compares with the printed "x2". Formulas compare as bags of characters
(where a printed formula breaks into words is arbitrary).

- A layer token is *under* a block when its centre lies in one of the block's boxes (its own, or
  the parts of a block merged across pages) grown by MARGIN_PT on each side.
- `layer_agreement` of a text block is the Dice score of the two bags (2 x matched / (block tokens
  + layer tokens under it that no other block matched: overlapping boxes do not count twice):
  reading order inside the box and whitespace do not count, a dropped or invented sentence lowers
  it by its share, a changed number by one token. A picture (figure,
  chart) is scored on its caption only, by precision (the share of the caption found under it or
  up to CAPTION_PT above or below it): the text read inside a picture and a chart's data table come
  off a drawing the layer may not hold; SMILES and ABC have nothing to compare: None.
- A layer token is *held* when a block under which it lies matched it (a picture holds every token
  under it: the model saw that region as a picture). `layer_coverage` is the share of the page's
  tokens held; `layer_missing` are the layer lines with less than half of their tokens held.

Thresholds (LOW_AGREEMENT 0.8, LOW_COVERAGE 0.9), chosen from measurements on fixture pages
(tests/test_agreement.py; README "Checking against the text layer"), answers built from the layer
and then changed: unchanged, every block scores 1.0 and coverage is 1.0 (two-column Latin, a
results table, Korean, CJK and Arabic pages, a /Rotate 90 table page, formulas); an invented
paragraph in an empty place scores 0.0; a block given another block's text 0.13-0.34; the longest
paragraph dropped takes the coverage to 0.75-0.85 with its lines in `layer_missing`; a sentence
invented inside the longest paragraph lowers it to 0.82-0.95 and one changed digit its block to
0.67-0.88 (short blocks fall most): lowered, and flagged only when the change is a large part of
the block. Shuffled reading order (the blocks in reverse) keeps every score at 1.0: the layer's own
order is no witness (columns, right-to-left text stored in visual order), so order is not judged.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from docparse.document import (
    Block,
    Box,
    Document,
    LayerCheck,
    LayerLine,
    Page,
    Paragraph,
    Text,
)
from docparse.document.boxes import scaled
from docparse.layer.compare import Compared, comparison, match_layer, score, weight
from docparse.layer.textnorm import HYPHENS, join_lines, tokens

if TYPE_CHECKING:
    from docparse.inputs.textlayer import TextLayer

LOW_AGREEMENT = 0.8
LOW_COVERAGE = 0.9
MARGIN_PT = 3.0
# A picture's caption may sit just outside its box: its text is looked for this far above and below.
CAPTION_PT = 24.0
_HELD_LINE = 0.5

# --- the layer as tokens ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    x: float
    y: float
    words: tuple[int, ...]  # indices of the layer words it came from
    line: int


def _layer_tokens(layer: TextLayer) -> list[_Token]:
    """The layer's tokens, each at its word's centre; a word hyphenated at a line end joined with the next line."""
    out: list[_Token] = []
    words = layer.words
    skip = -1
    for i, word in enumerate(words):
        if i == skip:
            continue
        text = word.text
        ids: tuple[int, ...] = (i,)
        nxt = words[i + 1] if i + 1 < len(words) else None
        last_in_line = nxt is None or nxt.line != word.line
        # Hyphens inside words are dropped on both sides, so a line-end hyphen joins whatever follows.
        if (
            last_in_line
            and nxt is not None
            and text[-1:] in HYPHENS
            and text[-2:-1].isalnum()
            and nxt.text[:1].isalnum()
        ):
            text, ids, skip = text[:-1] + nxt.text, (i, i + 1), i + 1
        cx, cy = (word.box.x0 + word.box.x1) / 2, (word.box.y0 + word.box.y1) / 2
        out.extend(_Token(t, cx, cy, ids, word.line) for t in tokens(text))
    return out


# --- the check -------------------------------------------------------------------------------


@dataclass(slots=True)
class _PageState:
    page: Page
    layer: TextLayer
    tokens: list[_Token]
    held: list[bool]
    sx: float
    sy: float
    order: list[int]  # token indices sorted by their centre's y
    ys: list[float]  # the centres' y in that order

    def under(self, box: Box, reach: float = 0.0) -> list[int]:
        """Indices of the tokens whose centre lies in `box` (page units) grown by MARGIN_PT (and `reach`
        more above and below), in layer order."""
        x0, x1 = box.x0 * self.sx - MARGIN_PT, box.x1 * self.sx + MARGIN_PT
        lo = bisect.bisect_left(self.ys, box.y0 * self.sy - MARGIN_PT - reach)
        hi = bisect.bisect_right(self.ys, box.y1 * self.sy + MARGIN_PT + reach)
        return sorted(k for k in self.order[lo:hi] if x0 <= self.tokens[k].x <= x1)


def _texts(found: Sequence[tuple[_PageState, int]]) -> list[str]:
    return [state.tokens[k].text for state, k in found]


def _regions(page: Page, block: Block) -> list[tuple[int, Box]]:
    if block.parts:
        return [(p.page, p.box) for p in block.parts if p.box is not None]
    return [(page.number, block.box)] if block.box is not None else []


def check_document(doc: Document, layers: Mapping[int, TextLayer | None], *, snap: bool = False) -> Document:
    """The document with each page's `layer` check filled (None where its layer is missing or not usable).

    `layers` maps page numbers to their text layers. With `snap`, each text block's box (and each
    part's) is tightened to the layer words it matched.
    """
    states: dict[int, _PageState] = {}
    for page in doc.pages:
        layer = layers.get(page.number)
        if layer is None or not layer.usable or page.unit != "pt" or not page.width or not page.height:
            continue
        toks = _layer_tokens(layer)
        order = sorted(range(len(toks)), key=lambda k: toks[k].y)
        states[page.number] = _PageState(
            page, layer, toks, [False] * len(toks), layer.width / page.width, layer.height / page.height,
            order, [toks[k].y for k in order],
        )  # fmt: skip
    if not states:
        return doc
    # First what each block matches, then each block's score: layer tokens under its box that another
    # block matched (overlapping boxes) do not count against it.
    found: list[tuple[Page, int, Block, Compared, list[tuple[_PageState, int]], list[tuple[_PageState, int]], int]] = []
    matched_by: dict[tuple[int, int], set[tuple[int, int]]] = {}
    for page in doc.pages:
        for position, block in enumerate(page.blocks):
            regions = [(states[n], box) for n, box in _regions(page, block) if n in states]
            if not regions:
                continue
            compared, text = comparison(block)
            picture = compared == "caption"
            under = [(state, k) for state, box in regions for k in state.under(box)]
            near = [(state, k) for state, box in regions for k in state.under(box, CAPTION_PT)] if picture else under
            size, hits = match_layer(compared, text, _texts(near))
            matched = [near[i] for i in hits]
            found.append((page, position, block, compared, under, matched, size))
            for state, k in (*under, *matched) if picture else matched:
                state.held[k] = True
                matched_by.setdefault((state.page.number, k), set()).add((page.number, position))
    scores: dict[tuple[int, int], float | None] = {}
    snapped: dict[tuple[int, int], Block] = {}
    for page, position, block, compared, under, matched, size in found:
        me = (page.number, position)
        mine = {(state.page.number, k) for state, k in matched}
        # A layer token under the box that this block did not match but another did is that block's.
        free = [
            (state, k)
            for state, k in under
            if (state.page.number, k) in mine or (state.page.number, k) not in matched_by
        ]
        scores[me] = score(compared, size, weight(compared, _texts(matched)), weight(compared, _texts(free)))
        # Snapped to the words only this block matched (a word another block's text also has stays theirs).
        alone = [(state, k) for state, k in matched if len(matched_by[(state.page.number, k)]) == 1]
        if snap and alone and compared != "caption":
            snapped[me] = _snapped(block, page, alone)
    pages = []
    for page in doc.pages:
        checked = states.get(page.number)
        blocks = tuple(snapped.get((page.number, i), b) for i, b in enumerate(page.blocks))
        if checked is None:
            pages.append(dataclasses.replace(page, blocks=blocks))
            continue
        agreement = tuple(scores.get((page.number, i)) for i in range(len(page.blocks)))
        check = LayerCheck(coverage=_coverage(checked), missing=_missing(checked), agreement=agreement)
        pages.append(dataclasses.replace(page, blocks=blocks, layer=check))
    return dataclasses.replace(doc, pages=tuple(pages))


def _coverage(state: _PageState) -> float:
    if not state.tokens:
        return 1.0
    return round(sum(state.held) / len(state.tokens), 3)


def _missing(state: _PageState) -> tuple[LayerLine, ...]:
    per_line: dict[int, list[bool]] = {}
    for tok, held in zip(state.tokens, state.held, strict=True):
        per_line.setdefault(tok.line, []).append(held)
    out = []
    for index, flags in sorted(per_line.items()):
        if sum(flags) < _HELD_LINE * len(flags):
            line = state.layer.lines[index]
            out.append(LayerLine(line.text, _to_page(line.box, state)))
    return tuple(out)


def _to_page(box: Box, state: _PageState) -> Box:
    """A layer box in the page's unit, to the hundredth."""
    sx, sy = state.sx, state.sy
    return Box(round(box.x0 / sx, 2), round(box.y0 / sy, 2), round(box.x1 / sx, 2), round(box.y1 / sy, 2))


def _union(boxes: Iterable[Box]) -> Box | None:
    items = list(boxes)
    if not items:
        return None
    return Box(min(b.x0 for b in items), min(b.y0 for b in items), max(b.x1 for b in items), max(b.y1 for b in items))


def _snapped(block: Block, page: Page, matched: Sequence[tuple[_PageState, int]]) -> Block:
    """The block with its box (and its parts' boxes) the union of the layer words it matched, on each page."""

    def on(number: int) -> Box | None:
        boxes = [
            _to_page(state.layer.words[w].box, state)
            for state, k in matched
            if state.page.number == number
            for w in state.tokens[k].words
        ]
        return _union(boxes)

    parts = tuple(dataclasses.replace(p, box=on(p.page) or p.box) for p in block.parts)
    return dataclasses.replace(block, box=on(page.number) or block.box, parts=parts)


# --- fallback --------------------------------------------------------------------------------

FALLBACK_STATUSES = frozenset({"failed", "truncated", "repetition"})


def fallback_page(page: Page, layer: TextLayer | None) -> Page:
    """A page the model failed on (failed, or still truncated or looping after every retry) with its blocks
    taken from a usable text layer: one paragraph per layer block, status "fallback-text-layer"; any other
    page, or one without a usable layer, as it is."""
    if page.status not in FALLBACK_STATUSES or layer is None or not layer.usable:
        return page
    groups: dict[int, list[int]] = {}
    for index, line in enumerate(layer.lines):
        groups.setdefault(line.block, []).append(index)
    width, height = page.width or layer.width, page.height or layer.height
    sx, sy = width / layer.width, height / layer.height
    blocks: list[Block] = []
    for indices in groups.values():
        lines = [layer.lines[i] for i in indices]
        text = join_lines(line.text for line in lines)
        box = _union(line.box for line in lines)
        if text and box is not None:
            blocks.append(Paragraph(content=(Text(text),), box=scaled(box, sx, sy), raw_class="text-layer"))
    note = (
        f"the model's answer was {page.status}; the page's blocks come from the PDF's text layer "
        "(--fallback text-layer)"
    )
    return dataclasses.replace(
        page, blocks=tuple(blocks), status="fallback-text-layer", width=width, height=height, unit="pt",
        warnings=(*page.warnings, note),
    )  # fmt: skip


# --- what the check says ---------------------------------------------------------------------


def low_blocks(page: Page, threshold: float = LOW_AGREEMENT) -> list[int]:
    """Positions of the page's blocks whose agreement with the layer is below `threshold` (a page whose
    blocks were edited after the check, leaving fewer than it scored, has the rest unscored)."""
    if page.layer is None:
        return []
    scored = page.layer.agreement[: len(page.blocks)]
    return [i for i, a in enumerate(scored) if a is not None and a < threshold]


def layer_warnings(doc: Document, min_coverage: float | None = None) -> list[str]:
    """One line per page whose coverage or agreement is low (`min_coverage`, else LOW_COVERAGE)."""
    floor = LOW_COVERAGE if min_coverage is None else min_coverage
    out = []
    for page in doc.pages:
        if page.layer is None or page.failed:  # a failed page has its error already
            continue
        low = low_blocks(page)
        if page.layer.coverage < floor or low:
            missing = len(page.layer.missing)
            out.append(
                f"page {page.number}: the model's text disagrees with the PDF's text layer: coverage "
                f"{page.layer.coverage:.2f} ({missing} layer lines no block holds), {len(low)} blocks below "
                f"{LOW_AGREEMENT:.2f} agreement"
            )
    return out


def below_coverage(page: Page, min_coverage: float | None) -> bool:
    """Whether --min-layer-coverage counts this page as failed: its layer coverage is under the floor."""
    return min_coverage is not None and page.layer is not None and page.layer.coverage < min_coverage


def check_source(doc: Document, password: str | None = None) -> Document:
    """`doc` checked against the text layer of its source file, found as crops find it (docparse.output:
    the recorded source, from the working folder or beside the raw answers, unchanged); as it is when the
    source is not found or is not a PDF."""
    from docparse.inputs.source import find_source
    from docparse.inputs.textlayer import read_layers

    source, _ = find_source(doc)
    if source is None:
        return doc
    return check_document(doc, read_layers(source, [p.number for p in doc.pages], password))
