"""Rasterisation: exact model sizes, /Rotate, page selection, image inputs, and clear errors on bad files."""

from __future__ import annotations

import types
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from docparse.config import RasterOptions, parse_pages
from docparse.errors import InputError, PasswordError, UsageError
from docparse.inputs.rasterize import open_input, select_pages
from docparse.prompt import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, FACTOR, smart_resize
from tests.paths import REPO, shared_file

SAMPLE = REPO / "samples" / "report.pdf"


def test_smart_resize_matches_the_cookbook_page() -> None:
    # The cookbook's page (1014x1532) was seen by the model at 1008x1540 (fixture 01's source note).
    assert smart_resize(1532, 1014, 4 * 28 * 28, 16384 * 28 * 28) == (1540, 1008)


def test_smart_resize_stays_within_bounds_and_multiples_of_28() -> None:
    for h, w in [(10, 10), (5000, 80), (842, 595), (20000, 15000), (60, 45)]:
        th, tw = smart_resize(h, w, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)
        assert th % FACTOR == 0 and tw % FACTOR == 0
        assert DEFAULT_MIN_PIXELS <= th * tw <= DEFAULT_MAX_PIXELS


def test_smart_resize_refuses_extreme_aspect_ratio() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 3000, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)


def test_pdf_page_is_rendered_at_exactly_the_model_size() -> None:
    with open_input(SAMPLE, RasterOptions()) as doc:
        (page,) = list(doc.pages())
    assert (page.width, page.height, page.unit) == (595.0, 842.0, "pt")
    w, h = page.image.size
    assert (h, w) == smart_resize(round(842 * 200 / 72), round(595 * 200 / 72), DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)
    assert w * h <= DEFAULT_MAX_PIXELS and w % 28 == 0 and h % 28 == 0
    # The page is rendered, not blank: the title is dark ink on white.
    assert page.image.convert("L").getextrema()[0] < 64


def test_pixel_bounds_change_the_size() -> None:
    small = RasterOptions(min_pixels=28 * 28, max_pixels=256 * 28 * 28)
    with open_input(SAMPLE, small) as doc:
        (page,) = list(doc.pages())
    assert page.image.size[0] * page.image.size[1] <= 256 * 28 * 28


def test_rotated_page_is_measured_as_displayed_and_its_sideways_text_turned_upright() -> None:
    path = shared_file("fixtures", "pdfs", "tab-rot-nics-checks-rotate90.pdf")
    with open_input(path, RasterOptions()) as doc:
        (page,) = list(doc.pages())
    # MediaBox is 1008x612 with /Rotate 90: a reader sees a 612x1008 portrait page...
    assert (page.width, page.height) == (612.0, 1008.0)
    assert page.rotation == 90
    # ... whose table runs sideways (its text layer says so): the model gets it turned upright.
    assert page.turn == 270
    w, h = page.image.size
    assert w > h


def test_tiny_page_is_enlarged_by_rendering_to_the_lower_bound() -> None:
    path = shared_file("fixtures", "pdfs", "chem-maleimide-structure-tiny.pdf")
    with open_input(path, RasterOptions()) as doc:
        (page,) = list(doc.pages())
    w, h = page.image.size
    assert w * h >= DEFAULT_MIN_PIXELS
    assert (page.width, page.height) == (45.0, 63.0)


def test_pages_are_rendered_lazily_one_at_a_time() -> None:
    path = shared_file("fixtures", "pdfs", "math-multivar-calculus-notes.pdf")
    with open_input(path, RasterOptions(pages=parse_pages("2-3"))) as doc:
        pages = doc.pages()
        assert isinstance(pages, types.GeneratorType)
        assert [p.number for p in pages] == [2, 3]


def test_different_page_sizes_in_one_pdf() -> None:
    path = shared_file("fixtures", "pdfs", "math-code-and-formula.pdf")
    with open_input(path, RasterOptions()) as doc:
        sizes = [(p.width, p.height) for p in doc.pages()]
    assert sizes[0] == (612.0, 792.0)
    assert sizes[1] == pytest.approx((595.276, 841.89), abs=0.01)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("1-3,7", ((1, 3), (7, 7))), ("2", ((2, 2),)), ("4-", ((4, None),)), (" 1 - 2 , 5 ", ((1, 2), (5, 5)))],
)
def test_parse_pages(spec: str, expected: tuple[tuple[int, int | None], ...]) -> None:
    assert parse_pages(spec) == expected


@pytest.mark.parametrize("spec", ["0", "3-1", "a", "1-2-3", "", "1,,2", "-3"])
def test_parse_pages_rejects_nonsense(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_pages(spec)


def test_select_pages_validates_against_the_page_count() -> None:
    assert select_pages(((1, 3), (7, 7)), 10, "x.pdf") == [1, 2, 3, 7]
    assert select_pages(((9, None),), 10, "x.pdf") == [9, 10]
    assert select_pages(((2, 3), (3, 4)), 10, "x.pdf") == [2, 3, 4]
    with pytest.raises(UsageError, match="has 4 page"):
        select_pages(((3, 5),), 4, "x.pdf")


def test_multipage_tiff_gives_one_page_per_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (400, 600), c) for c in ("white", "red", "blue")]
    path = tmp_path / "scan.tiff"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with open_input(path, RasterOptions()) as doc:
        pages = list(doc.pages())
    assert [p.number for p in pages] == [1, 2, 3]
    assert all(p.unit == "px" and (p.width, p.height) == (400.0, 600.0) for p in pages)
    assert pages[1].image.getpixel((10, 10)) == (255, 0, 0)
    assert all(p.image.size[0] % 28 == 0 and p.image.size[1] % 28 == 0 for p in pages)


@pytest.mark.parametrize(("mode", "suffix"), [("RGBA", ".webp"), ("P", ".png"), ("L", ".jpg"), ("I;16", ".png")])
def test_image_modes_become_rgb(tmp_path: Path, mode: str, suffix: str) -> None:
    path = tmp_path / f"img{suffix}"
    Image.new(mode, (300, 200)).save(path)
    with open_input(path, RasterOptions()) as doc:
        (page,) = list(doc.pages())
    assert page.image.mode == "RGB"


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (400, 200), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif)
    with open_input(path, RasterOptions()) as doc:
        (page,) = list(doc.pages())
    assert (page.width, page.height) == (200.0, 400.0)


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        open_input(tmp_path / "nope.pdf", RasterOptions())


def test_empty_pdf_is_reported() -> None:
    path = shared_file("fixtures", "pdfs", "broken-empty-0bytes.pdf")
    with pytest.raises(InputError, match="empty"):
        open_input(path, RasterOptions())


def test_broken_xref_pdf_is_repaired_and_opens() -> None:
    path = shared_file("fixtures", "pdfs", "broken-xref-issue297.pdf")
    with open_input(path, RasterOptions()) as doc:
        assert doc.page_count == 1


def test_text_file_named_pdf_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "notes.pdf"
    path.write_text("just some text\n")
    with pytest.raises(InputError, match="not a PDF"):
        open_input(path, RasterOptions())


def test_garbage_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(InputError, match="neither a PDF nor a supported image"):
        open_input(path, RasterOptions())


def test_truncated_pdf_body_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "cut.pdf"
    path.write_bytes(SAMPLE.read_bytes()[:300])
    # MuPDF may repair what is left or refuse it; either way only a one-line InputError may escape.
    try:
        with open_input(path, RasterOptions()) as doc:
            list(doc.pages())
    except InputError as exc:
        assert str(path) in str(exc)


def test_encrypted_pdf_needs_its_password() -> None:
    path = shared_file("fixtures", "pdfs", "enc-pdfplumber-pw-test.pdf")
    with pytest.raises(PasswordError, match="--password"):
        open_input(path, RasterOptions())
    with pytest.raises(PasswordError, match="wrong password"):
        open_input(path, RasterOptions(password="nope"))
    with open_input(path, RasterOptions(password="test")) as doc:
        assert doc.page_count == 4
        assert next(doc.pages()).image.convert("L").getextrema()[0] < 128


def test_rotated_text_maps_back_to_points() -> None:
    # A word's box on the displayed (rotated) page, scaled to model pixels and back, lands where it was.
    path = shared_file("fixtures", "pdfs", "tab-rot-nics-checks-rotate90.pdf")
    pdf = pymupdf.open(path)
    word = pdf[0].get_text("words")[0]
    shown = pymupdf.Rect(word[:4]) * pdf[0].rotation_matrix
    with open_input(path, RasterOptions()) as doc:
        (page,) = list(doc.pages())
    sx = page.image.size[0] / page.width
    crop = page.image.crop((int(shown.x0 * sx), int(shown.y0 * sx), int(shown.x1 * sx) + 1, int(shown.y1 * sx) + 1))
    # Ink is where the text layer says the word is, on the upright render.
    assert crop.convert("L").getextrema()[0] < 128
