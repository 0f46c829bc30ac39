"""The pipeline with a scripted engine: exact box mapping, statuses, failed batches, raw answers re-rendered."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from docparse.config import ConvertOptions, RasterOptions, parse_pages
from docparse.document import Generation, Heading, Paragraph
from docparse.engines.base import GREEDY, Answer, Engine, GenerationSettings
from docparse.errors import EngineError, InputError, PasswordError, UsageError
from docparse.pipeline import convert, render
from docparse.run.rawfiles import raw_path
from tests.paths import REPO, shared_file

SAMPLE = REPO / "samples" / "report.pdf"


class ScriptedEngine:
    """An Engine whose answer for each image comes from a function; records what it was sent."""

    def __init__(
        self,
        answer: Callable[[Image.Image, int], str],
        finish: str = "stop",
        fail_on: int = 0,
        batch_size: int = 1,
        concurrency: int = 1,
    ) -> None:
        self.answer = answer
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.finish = finish
        self.fail_on = fail_on
        self.calls: list[list[tuple[int, int]]] = []
        self.seen = 0

    @property
    def model_id(self) -> str:
        return "scripted"

    def generate(self, images: Sequence[Image.Image], settings: GenerationSettings = GREEDY) -> list[Answer]:
        self.calls.append([im.size for im in images])
        out = []
        for image in images:
            self.seen += 1
            if self.seen == self.fail_on:
                raise EngineError("CUDA out of memory (scripted)")
            text = self.answer(image, self.seen)
            gen = Generation(
                model="scripted",
                prompt="QwenVL HTML ",
                tokens_in=100,
                tokens_out=len(text),
                seconds=0.5,
                finish_reason="length" if self.finish == "length" else "stop",
            )
            out.append(Answer(text, gen))
        return out

    def close(self) -> None:
        pass


def _engine(e: ScriptedEngine) -> Callable[[], Engine]:
    return lambda: e


def _title_box_pt(path: Path, words: str) -> pymupdf.Rect:
    page = pymupdf.open(path)[0]
    hits = page.search_for(words)
    assert hits, words
    return hits[0] * page.rotation_matrix


def _answer_with_box(box_pt: pymupdf.Rect, page_w: float, page_h: float, text: str) -> Callable[..., str]:
    def answer(image: Image.Image, _n: int) -> str:
        sx, sy = image.size[0] / page_w, image.size[1] / page_h
        x0, y0, x1, y1 = (
            round(box_pt.x0 * sx),
            round(box_pt.y0 * sy),
            round(box_pt.x1 * sx),
            round(box_pt.y1 * sy),
        )
        return f'```html\n<html><body>\n<h1 data-bbox="{x0} {y0} {x1} {y1}">{text}</h1>\n</body></html>\n```'

    return answer


def test_boxes_come_back_in_pdf_points_where_the_text_is() -> None:
    box = _title_box_pt(SAMPLE, "Quarterly Field Report")
    engine = ScriptedEngine(_answer_with_box(box, 595, 842, "Quarterly Field Report"))
    doc = convert(SAMPLE, ConvertOptions(), _engine(engine))
    (page,) = doc.pages
    (block,) = page.blocks
    assert isinstance(block, Heading)
    assert block.box is not None
    # Rounding to whole model pixels is the only error: under one pixel, in points.
    tolerance = 595 / page.image_size[0] if page.image_size else 1
    for got, want in zip(block.box.as_list(), [box.x0, box.y0, box.x1, box.y1], strict=True):
        assert got == pytest.approx(want, abs=tolerance)
    assert (page.width, page.height, page.unit) == (595, 842, "pt")


def test_boxes_on_a_rotated_page_are_on_the_page_as_displayed() -> None:
    # The page displays sideways (/Rotate 90 over landscape content): docparse turns it 270 degrees
    # clockwise so the model reads upright text, and maps the model's boxes back to the displayed page.
    path = shared_file("fixtures", "pdfs", "tab-rot-nics-checks-rotate90.pdf")
    pdf_page = pymupdf.open(path)[0]
    first_word = pdf_page.get_text("words")[0]
    box = pymupdf.Rect(first_word[:4]) * pdf_page.rotation_matrix  # on the displayed 612 x 1008 page
    # The same word on the turned (upright, 1008 x 612) page the model sees.
    turned = pymupdf.Rect(box.y0, 612 - box.x1, box.y1, 612 - box.x0)
    seen: list[tuple[int, int]] = []

    def answer(image: Image.Image, n: int) -> str:
        seen.append(image.size)
        return _answer_with_box(turned, 1008, 612, first_word[4])(image, n)

    doc = convert(path, ConvertOptions(), _engine(ScriptedEngine(answer)))
    page = doc.pages[0]
    assert page.rotation == 270
    assert seen[0][0] > seen[0][1]  # the model saw a landscape, upright image
    block = page.blocks[0]
    assert block.box is not None
    for got, want in zip(block.box.as_list(), [box.x0, box.y0, box.x1, box.y1], strict=True):
        assert got == pytest.approx(want, abs=1)
    assert (page.width, page.height) == (612, 1008)


def test_page_selection_and_batches() -> None:
    path = shared_file("fixtures", "pdfs", "math-multivar-calculus-notes.pdf")
    engine = ScriptedEngine(
        lambda _im, n: f'<html><body><p data-bbox="10 10 50 20">page answer {n}</p></body></html>', batch_size=3
    )
    options = ConvertOptions(raster=RasterOptions(pages=parse_pages("2-4,9")))
    doc = convert(path, options, _engine(engine))
    assert [p.number for p in doc.pages] == [2, 3, 4, 9]
    assert [len(c) for c in engine.calls] == [3, 1]
    assert doc.metadata["page_count"] == 14
    assert doc.metadata["model"] == "scripted"
    assert all(p.status == "ok" for p in doc.pages)


def test_a_failed_batch_fails_its_pages_and_the_rest_convert() -> None:
    path = shared_file("fixtures", "pdfs", "math-multivar-calculus-notes.pdf")
    engine = ScriptedEngine(lambda _im, n: f'<p data-bbox="1 1 9 9">text {n}</p>', fail_on=2)
    options = ConvertOptions(raster=RasterOptions(pages=parse_pages("1-3")))
    doc = convert(path, options, _engine(engine))
    assert [p.status for p in doc.pages] == ["ok", "failed", "ok"]
    assert "out of memory" in doc.pages[1].warnings[0]


def test_cut_answer_is_kept_and_flagged_truncated() -> None:
    text = '<html><body><p data-bbox="1 1 100 20">Complete.</p><p data-bbox="1 30 100 50">Cut in the mid'
    engine = ScriptedEngine(lambda _im, _n: text, finish="length")
    doc = convert(SAMPLE, ConvertOptions(max_retries=0), _engine(engine))
    page = doc.pages[0]
    assert page.status == "truncated"
    assert page.attempts == 1
    assert any("--max-new-tokens" in w for w in page.warnings)
    texts = [b.content for b in page.blocks if isinstance(b, Paragraph)]
    assert len(texts) == 2


def test_answer_without_boxes_is_kept_as_text_and_flagged() -> None:
    engine = ScriptedEngine(lambda _im, _n: "<html><body><h1>Hello</h1><p>World</p></body></html>")
    doc = convert(SAMPLE, ConvertOptions(), _engine(engine))
    assert doc.pages[0].status == "unstructured"
    assert len(doc.pages[0].blocks) == 2


def test_bad_input_fails_before_the_model_is_loaded(tmp_path: Path) -> None:
    loads = []

    def get_engine() -> Engine:
        loads.append(1)
        raise AssertionError("the model must not be loaded for a bad input")

    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(InputError):
        convert(bad, ConvertOptions(), get_engine)
    enc = shared_file("fixtures", "pdfs", "enc-pdfplumber-pw-test.pdf")
    with pytest.raises(PasswordError):
        convert(enc, ConvertOptions(), get_engine)
    assert loads == []


def test_kept_raw_answers_render_to_the_same_document(tmp_path: Path) -> None:
    box = _title_box_pt(SAMPLE, "Quarterly Field Report")
    engine = ScriptedEngine(_answer_with_box(box, 595, 842, "Quarterly Field Report"))
    doc = convert(SAMPLE, ConvertOptions(keep_raw=tmp_path / "raw"), _engine(engine))
    raw = raw_path(tmp_path / "raw", str(SAMPLE), 1)
    assert raw.exists() and raw.with_suffix(".json").exists()
    again = render([raw])
    assert again.pages[0].blocks == doc.pages[0].blocks
    assert again.pages[0].image_size == doc.pages[0].image_size
    assert again.pages[0].generation == doc.pages[0].generation
    assert not list((tmp_path / "raw").glob("*.part"))


def test_render_without_sizes_keeps_model_pixels(tmp_path: Path) -> None:
    answer = tmp_path / "page.html"
    answer.write_text('<p data-bbox="100 200 300 400">x</p>')
    doc = render([answer])
    assert doc.pages[0].unit == "px"
    assert doc.pages[0].blocks[0].box is not None
    assert doc.pages[0].blocks[0].box.as_list() == [100, 200, 300, 400]
    mapped = render([answer], image_size=(1000, 2000), page_size=(500.0, 1000.0))
    assert mapped.pages[0].unit == "pt"
    assert mapped.pages[0].blocks[0].box is not None
    assert mapped.pages[0].blocks[0].box.as_list() == [50, 100, 150, 200]


def test_python_api_converts_with_the_cli_records_and_assembles() -> None:
    import docparse

    path = shared_file("fixtures", "pdfs", "col-multicolumn-lipsum-table.pdf")
    answers = REPO / "tests" / "data" / "answers" / "col-multicolumn-lipsum-table"

    def answer(image: Image.Image, n: int) -> str:
        return (answers / f"page-{n:04d}.html").read_text(encoding="utf-8")

    doc = docparse.convert(path, engine=ScriptedEngine(answer), pages="1-2")
    assert isinstance(doc, docparse.Document)
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.title == "Two-Column Document with Lorem Ipsum"
    assert doc.metadata["merge"] is True and doc.metadata["page_count"] == 3
    joined = [b for p in doc.pages for b in p.blocks if b.parts]
    assert len(joined) == 1 and [part.page for part in joined[0].parts] == [1, 2]
    # The same answers saved with --keep-raw's sidecars render to the same document, model fields aside.
    rendered = render(sorted(answers.glob("page-*.html")))
    assert [p.blocks for p in rendered.pages] == [p.blocks for p in doc.pages]
    apart = docparse.convert(path, engine=ScriptedEngine(answer), pages="1-2", merge=False)
    assert not any(b.parts for p in apart.pages for b in p.blocks)
    assert docparse.Document.from_json(doc.to_json()) == doc
    with pytest.raises(UsageError):
        docparse.convert(path, engine=ScriptedEngine(answer), min_pixels=10**7)


def test_kept_raw_answers_of_a_turned_page_render_onto_the_displayed_page(tmp_path: Path) -> None:
    # The sideways scan is turned upright for the model; its saved answer is in the turned image's
    # pixels, and `render` must turn the boxes back exactly as the live run did.
    path = shared_file("fixtures", "pdfs", "rot-scan-ocr-test-rotate270.pdf")

    def answer(image: Image.Image, _n: int) -> str:
        w, h = image.size
        return f'<html><body><p data-bbox="{w // 10} {h // 5} {w // 2} {h // 4}">Docling bundles</p></body></html>'

    doc = convert(path, ConvertOptions(keep_raw=tmp_path / "raw"), _engine(ScriptedEngine(answer)))
    live = doc.pages[0]
    assert live.rotation in (90, 270)
    again = render([raw_path(tmp_path / "raw", str(path), 1)]).pages[0]
    assert (again.rotation, again.width, again.height) == (live.rotation, live.width, live.height)
    assert again.blocks == live.blocks
