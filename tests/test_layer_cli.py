"""The text-layer options through the real CLI: --min-layer-coverage, --fallback text-layer, --snap-boxes,
with an engine that answers from the page's own text layer (doctored where the test says)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from docparse.config import RasterOptions
from docparse.document import Box, Generation
from docparse.engines.base import GREEDY, Answer, GenerationSettings
from docparse.errors import EngineError
from docparse.inputs.rasterize import open_input
from docparse.layer.textnorm import tokens
from tests.layer_answers import Element, answer_html, layer_elements
from tests.paths import shared_file
from tests.test_cli import run_cli

NAME = "col-multicolumn-lipsum-table.pdf"  # page 1: title, abstract, two columns of paragraphs


class LayerEngine:
    """Answers every page image with page 1's text layer as QwenVL HTML (after `change`), or fails."""

    batch_size = 1
    concurrency = 1
    model_id = "layer"

    def __init__(
        self, pdf: Path, change: Callable[[list[Element]], list[Element]] = lambda e: e, *, fail: bool = False,
        finish: str = "stop",
    ) -> None:  # fmt: skip
        self.elements = change(layer_elements(pdf, 1))
        with open_input(pdf, RasterOptions(pages=((1, 1),))) as doc:
            image = doc.render(1)  # the turn docparse gives the page before the model sees it
        self.size, self.turn = (image.width, image.height), image.turn
        self.fail = fail
        self.finish = finish

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        if self.fail:
            raise EngineError("out of memory (fake)")
        out = []
        for image in images:
            text = answer_html(self.elements, image.size, self.size, self.turn)
            if self.finish == "length":
                text = text[: len(text) // 2]
            gen = Generation(model="layer", prompt="QwenVL HTML ", tokens_in=10, tokens_out=len(text), seconds=0.0,
                             finish_reason=self.finish)  # type: ignore[arg-type]  # fmt: skip
            out.append(Answer(text, gen))
        return out

    def close(self) -> None:
        pass


def convert(
    tmp_path: Path,
    engine: LayerEngine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    name: str = NAME,
) -> tuple[int, dict[str, Any], dict[str, Any], str]:
    """Run `docparse PDF --pages 1 -o out.json ...`; (exit code, the JSON, the report, stderr)."""
    import docparse.engines.transformers as transformers_engine

    monkeypatch.setattr(transformers_engine, "load_engine", lambda _o, _px=None: engine)
    pdf = shared_file("fixtures", "pdfs", name)
    out, report = tmp_path / "out.json", tmp_path / "report.json"
    argv = [str(pdf), "--pages", "1", "-o", str(out), "--report", str(report), "--cache-dir", str(tmp_path / "c")]
    code, _, err = run_cli([*argv, "--max-pixels", "200704", "--max-retries", "0", *args], capsys)
    return code, json.loads(out.read_text()), json.loads(report.read_text()), err


def drop_longest(elements: list[Element]) -> list[Element]:
    del elements[max(range(len(elements)), key=lambda i: len(elements[i].text))]
    return elements


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((), 0),  # not asked: warned, not failed
        (("--min-layer-coverage", "0.9"), 1),
        (("--min-layer-coverage", "0.5"), 0),
        (("--min-layer-coverage", "0.9", "--max-page-error-rate", "1"), 0),
    ],
)
def test_min_layer_coverage_makes_a_page_the_model_read_badly_count_as_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
    code: int,
) -> None:  # fmt: skip
    pdf = shared_file("fixtures", "pdfs", NAME)
    got, doc, report, err = convert(tmp_path, LayerEngine(pdf, drop_longest), monkeypatch, capsys, *args)
    assert got == code, err
    (page,) = doc["pages"]
    assert page["status"] == "ok" and page["layer_coverage"] < 0.9 and page["layer_missing"]
    # Warned below the floor given (else below LOW_COVERAGE): the report names the page either way.
    warned = "page 1: the model's text disagrees with the PDF's text layer: coverage" in err
    assert warned is ("0.5" not in args)
    entry = report["files"][0]["pages"][0]
    assert entry["layer_coverage"] == page["layer_coverage"] and entry["layer_missing_lines"] == len(
        page["layer_missing"]
    )
    assert entry["below_layer_coverage"] is (args[:2] == ("--min-layer-coverage", "0.9"))
    assert report["files"][0]["status"] == ("failed" if code else "converted")


def test_a_faithful_answer_passes_min_layer_coverage_with_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = shared_file("fixtures", "pdfs", NAME)
    got, doc, _, err = convert(tmp_path, LayerEngine(pdf), monkeypatch, capsys, "--min-layer-coverage", "0.95")
    assert got == 0 and "disagrees" not in err, err
    assert doc["pages"][0]["layer_coverage"] == 1.0
    assert all(b["layer_agreement"] == 1.0 for b in doc["pages"][0]["blocks"])


def test_a_page_turned_upright_for_the_model_is_checked_on_the_page_as_displayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "tab-rot-nics-checks-rotate90.pdf"  # /Rotate 90, its table sideways: turned before the model
    engine = LayerEngine(shared_file("fixtures", "pdfs", name))
    code, doc, _, err = convert(tmp_path, engine, monkeypatch, capsys, name=name)
    assert code == 0 and "disagrees" not in err
    (page,) = doc["pages"]
    assert page["rotation"] == engine.turn != 0 and page["layer_coverage"] == 1.0
    assert all(b["layer_agreement"] == 1.0 for b in page["blocks"])


@pytest.mark.parametrize(("fail", "finish"), [(True, "stop"), (False, "length")])
def test_fallback_text_layer_gives_a_failed_page_the_layers_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fail: bool, finish: str
) -> None:
    pdf = shared_file("fixtures", "pdfs", NAME)
    engine = LayerEngine(pdf, fail=fail, finish=finish)
    code, doc, report, _ = convert(tmp_path, engine, monkeypatch, capsys, "--fallback", "text-layer")
    assert code == 0
    (page,) = doc["pages"]
    assert page["status"] == "fallback-text-layer" and report["files"][0]["pages"][0]["status"] == page["status"]
    assert "--fallback text-layer" in page["warnings"][-1]
    assert {b["raw_class"] for b in page["blocks"]} == {"text-layer"}
    text = " ".join(b["text"] for b in page["blocks"])
    assert tokens(text) == tokens(" ".join(e.text for e in layer_elements(pdf, 1)))
    assert doc["metadata"]["fallback"] == "text-layer"

    plain, nofallback, _, _ = convert(tmp_path / "b", LayerEngine(pdf, fail=fail, finish=finish), monkeypatch, capsys)
    assert nofallback["pages"][0]["status"] == ("failed" if fail else "truncated") and plain == (1 if fail else 0)


def test_snap_boxes_tightens_loose_boxes_to_the_layer_words_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = shared_file("fixtures", "pdfs", NAME)
    tight = layer_elements(pdf, 1)

    def loosen(elements: list[Element]) -> list[Element]:
        grow = 8.0
        return [
            dataclasses.replace(e, box=Box(e.box.x0 - grow, e.box.y0 - grow / 2, e.box.x1 + grow, e.box.y1 + grow / 2))
            for e in elements
        ]

    _, loose, _, _ = convert(tmp_path / "a", LayerEngine(pdf, loosen), monkeypatch, capsys)
    _, snapped, _, _ = convert(tmp_path / "b", LayerEngine(pdf, loosen), monkeypatch, capsys, "--snap-boxes")
    assert (loose["metadata"]["snap_boxes"], snapped["metadata"]["snap_boxes"]) == (False, True)

    def off(blocks: list[dict[str, Any]]) -> float:
        pairs = [(blk["box"], e.box.as_list()) for blk, e in zip(blocks, tight, strict=True)]
        return max(abs(a - b) for got, want in pairs for a, b in zip(got, want, strict=True))

    assert off(loose["pages"][0]["blocks"]) > 5  # the model's boxes (as loosened)
    assert off(snapped["pages"][0]["blocks"]) < 1  # the layer's words
    assert [b["text"] for b in snapped["pages"][0]["blocks"]] == [b["text"] for b in loose["pages"][0]["blocks"]]
    assert [b["layer_agreement"] for b in snapped["pages"][0]["blocks"]] == [
        b["layer_agreement"] for b in loose["pages"][0]["blocks"]
    ]


def test_render_of_saved_answers_checks_against_the_source_beside_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`docparse render` finds the sidecar's source as crops find it, and the HTML marks a low block."""
    from tests.layer_answers import write_answer

    pdf = shared_file("fixtures", "pdfs", NAME)
    invented = Element("The committee approved the new budget for the harbour bridge.", Box(72, 770, 540, 785))
    path = write_answer(tmp_path, pdf, 1, lambda e: [*e, invented])
    code, out, _ = run_cli(["render", str(path), "--to", "json", "-q"], capsys)
    assert code == 0
    blocks = json.loads(out)["pages"][0]["blocks"]
    assert blocks[-1]["layer_agreement"] == 0.0 and all(b["layer_agreement"] == 1.0 for b in blocks[:-1])
    code, html, _ = run_cli(["render", str(path), "--to", "html", "-q"], capsys)
    assert html.count('class="layer-low"') == 2  # the block, and the legend's sample
    assert 'class="layer-legend"' in html and "harbour bridge" in html.split('class="layer-low" data-layer')[1]


@pytest.mark.parametrize("fail", [False, True])
def test_a_page_image_has_no_layer_null_fields_and_nothing_to_fall_back_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fail: bool
) -> None:
    import pymupdf

    import docparse.engines.transformers as transformers_engine

    pdf = shared_file("fixtures", "pdfs", NAME)
    picture = tmp_path / "page.png"
    with pymupdf.open(pdf) as doc:
        doc[0].get_pixmap(dpi=100).save(picture)  # the same page as a picture: no text layer
    engine = LayerEngine(pdf, fail=fail)
    monkeypatch.setattr(transformers_engine, "load_engine", lambda _o, _px=None: engine)
    out = tmp_path / "out.json"
    args = [str(picture), "-o", str(out), "--cache-dir", str(tmp_path / "c"), "--max-pixels", "200704"]
    code, _, err = run_cli([*args, "--fallback", "text-layer", "--min-layer-coverage", "0.9"], capsys)
    (page,) = json.loads(out.read_text())["pages"]
    assert page["unit"] == "px" and page["layer_coverage"] is None and page["layer_missing"] is None
    assert all(b["layer_agreement"] is None for b in page["blocks"]) and "disagrees" not in err
    assert (code, page["status"]) == ((1, "failed") if fail else (0, "ok"))
