"""Blank pages, sideways and upside-down content, on the shared fixtures: found before the model, boxes turned back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from docparse.config import ConvertOptions, RasterOptions
from docparse.document import Box, Paragraph, Text
from docparse.inputs.pageprep import is_blank, raster_orientation, turn_image, unturn, unturn_box, upside_down
from docparse.inputs.rasterize import open_input
from docparse.pipeline import convert
from tests.paths import shared_file
from tests.test_pipeline import ScriptedEngine, _engine


def first_page(name: str, **raster: object):  # type: ignore[no-untyped-def]
    with open_input(shared_file("fixtures", "pdfs", name), RasterOptions(**raster)) as doc:  # type: ignore[arg-type]
        return next(doc.pages())


@pytest.mark.parametrize("name", ["blank-page-no-content.pdf", "broken-xref-issue297.pdf"])
def test_blank_pages_are_skipped_without_a_model_call(name: str) -> None:
    engine = ScriptedEngine(lambda _im, _n: "<p>never asked</p>")
    doc = convert(shared_file("fixtures", "pdfs", name), ConvertOptions(), _engine(engine))
    [page] = doc.pages
    assert page.status == "skipped-blank"
    assert (page.attempts, page.blocks, page.generation) == (0, (), None)
    assert engine.calls == []


@pytest.mark.parametrize(
    "name", ["chem-maleimide-structure-tiny.pdf", "scan-docling-ocr-test.pdf", "cjk-multilang-hello-world.pdf"]
)
def test_sparse_pages_and_scans_are_not_blank(name: str) -> None:
    assert not first_page(name).blank


def test_scanner_noise_alone_is_blank_and_a_small_mark_is_not() -> None:
    rng = np.random.default_rng(0)
    noisy = np.clip(rng.normal(235, 6, (1400, 1000)), 0, 255)
    specks = rng.random((1400, 1000)) < 0.002  # isolated dark specks, dust
    noisy[specks] = 30
    page = Image.fromarray(noisy.astype(np.uint8)).convert("RGB")
    assert is_blank(page, has_text=False)
    ImageDraw.Draw(page).rectangle((400, 600, 470, 640), outline="black", width=4)
    assert not is_blank(page, has_text=False)
    assert not is_blank(Image.new("RGB", (100, 100), "white"), has_text=True)


def test_a_sideways_scan_is_detected_and_turned_upright() -> None:
    upright = first_page("scan-docling-ocr-test.pdf")
    sideways = first_page("rot-scan-ocr-test-rotate270.pdf")
    assert upright.turn == 0
    assert (sideways.rotation, sideways.turn) == (270, 90)
    assert sideways.width > sideways.height  # displayed landscape
    assert sideways.image.size == upright.image.size  # the model sees the upright page
    a = np.asarray(sideways.image.convert("L"), dtype=np.int16)
    b = np.asarray(upright.image.convert("L"), dtype=np.int16)
    assert np.abs(a - b).mean() < 3  # the same raster, upright
    assert any("turned 90 degrees" in n for n in sideways.notes)


def test_raster_orientation_without_a_page_rotate() -> None:
    upright = first_page("scan-docling-ocr-test.pdf").image
    assert raster_orientation(upright).sideways is False
    # Turned by hand: left-aligned lines give the direction back.
    assert raster_orientation(turn_image(upright, 90)).sideways
    found = raster_orientation(turn_image(upright, 270))
    assert found.sideways and found.turn in (90, None)


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_a_box_on_the_turned_image_lands_on_the_displayed_page(turn: int) -> None:
    # A displayed page 200 x 100 with a mark in its top-left corner; turn it, find the mark, turn the box back.
    w, h = 200, 100
    img = Image.new("L", (w, h), 255)
    ImageDraw.Draw(img).rectangle((10, 20, 49, 39), fill=0)
    turned = np.asarray(turn_image(img, turn))
    ys, xs = np.nonzero(turned == 0)
    box = Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    assert unturn_box(box, turn, w, h) == Box(10, 20, 50, 40)
    block = Paragraph(content=(Text("x"),), box=box)
    assert unturn((block,), turn, w, h)[0].box == Box(10, 20, 50, 40)


def test_the_sideways_scan_through_the_pipeline_records_the_turn_and_maps_boxes_back() -> None:
    path = shared_file("fixtures", "pdfs", "rot-scan-ocr-test-rotate270.pdf")
    seen: list[tuple[int, int]] = []

    def answer(image: Image.Image, _n: int) -> str:
        seen.append(image.size)
        w, h = image.size  # the model marks the top-left tenth of the upright page
        return f'<html><body><p data-bbox="0 0 {w // 10} {h // 10}">Docling bundles</p></body></html>'

    doc = convert(path, ConvertOptions(), _engine(ScriptedEngine(answer)))
    [page] = doc.pages
    assert page.rotation == 90
    assert seen[0][1] > seen[0][0]  # portrait: the upright scan
    [block] = page.blocks
    assert block.box is not None and page.width is not None and page.height is not None
    # Top-left of the upright page is the bottom-left of the displayed (sideways) page.
    assert block.box.x0 == pytest.approx(0, abs=1)
    assert block.box.y1 == pytest.approx(page.height, abs=1)
    assert block.box.x1 == pytest.approx(page.width / 10, abs=2)


UPRIGHT = [
    "ar-arabic-word-doc.pdf",
    "chem-maleimide-structure-tiny.pdf",
    "cjk-korean-nars-report-4pp.pdf",
    "cjk-multilang-hello-world.pdf",
    "col-multicolumn-lipsum-table.pdf",
    "math-code-and-formula.pdf",
    "math-multivar-calculus-notes.pdf",
    "music-mtx-canons.pdf",
    "scan-docling-ocr-test.pdf",
    "tab-longtable-doc-continued.pdf",
    "tab-tableformer-paper-p9.pdf",
]


@pytest.mark.parametrize("name", UPRIGHT)
def test_upright_pages_are_not_turned_or_skipped(name: str) -> None:
    page = first_page(name)
    assert (page.turn, page.blank, page.notes) == (0, False, ())


def test_an_upside_down_scan_is_turned_upright_and_boxes_map_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    upright = first_page("scan-docling-ocr-test.pdf").image
    path = tmp_path / "upside-down-scan.png"
    turn_image(upright, 180).save(path)
    seen: list[Image.Image] = []

    def answer(image: Image.Image, _n: int) -> str:
        seen.append(image)
        w, h = image.size  # the model marks the top-left tenth of the upright page
        return f'<html><body><p data-bbox="0 0 {w // 10} {h // 10}">Docling bundles</p></body></html>'

    doc = convert(path, ConvertOptions(), _engine(ScriptedEngine(answer)))
    [page] = doc.pages
    assert page.rotation == 180
    a = np.asarray(seen[0].convert("L"), dtype=np.int16)
    assert np.abs(a - np.asarray(upright.convert("L"), dtype=np.int16)).mean() < 3  # the model saw it upright
    [block] = page.blocks
    assert block.box is not None and page.width is not None and page.height is not None
    # The top-left of the upright page is the bottom-right of the page as displayed.
    assert block.box.x1 == pytest.approx(page.width, abs=1)
    assert block.box.y1 == pytest.approx(page.height, abs=1)
    assert block.box.x0 == pytest.approx(page.width * 0.9, abs=2)


@pytest.mark.parametrize("name", ["scan-docling-ocr-test.pdf", "col-multicolumn-lipsum-table.pdf"])
@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_a_scan_turned_any_way_comes_back_upright(tmp_path, name: str, turn: int) -> None:  # type: ignore[no-untyped-def]
    # An image file has no text layer: only the raster tells. Two columns give the lines' ends no
    # straight edge, so there the letters tell which way a sideways page is up.
    path = tmp_path / "turned.png"
    turn_image(first_page(name).image, turn).save(path)
    with open_input(path, RasterOptions()) as doc:
        page = next(doc.pages())
    assert page.turn == (360 - turn) % 360


LATIN = [
    "col-multicolumn-lipsum-table.pdf",
    "math-code-and-formula.pdf",
    "math-multivar-calculus-notes.pdf",
    "scan-docling-ocr-test.pdf",
    "tab-longtable-doc-continued.pdf",
    "tab-tableformer-paper-p9.pdf",
]


@pytest.mark.parametrize("name", [*UPRIGHT, "tab-rot-nics-checks-rotate90.pdf"])
def test_upright_renders_read_as_scans_are_never_judged_upside_down(name: str) -> None:
    image = first_page(name).image
    assert not upside_down(image)
    # Turned by hand: Latin text is found upside down (other scripts, tables, drawings may abstain).
    if name in LATIN:
        assert upside_down(turn_image(image, 180))


def test_drawings_and_boxes_are_never_turned_upside_down() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        page = Image.new("RGB", (800, 1100), "white")
        draw = ImageDraw.Draw(page)
        for _ in range(int(rng.integers(5, 60))):
            x, y, w, h = (
                int(v) for v in (rng.integers(0, 800), rng.integers(0, 1100), rng.integers(2, 300), rng.integers(2, 40))
            )
            draw.rectangle(
                (x, y, x + w, y + h), fill=int(rng.integers(0, 120)) if rng.random() < 0.5 else None, outline="black"
            )
        assert not upside_down(page)
        assert not upside_down(turn_image(page, 180))
