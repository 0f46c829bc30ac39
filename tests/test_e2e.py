"""The real CLI, in a subprocess, on the tiny random Qwen2.5-VL: PDFs, images, page ranges, formats, passwords.

The tiny model's text is noise; what is asserted is the structure a user relies on: one page
per selected page, page sizes in points, model image sizes, generation records, valid JSON,
HTML sections, raw answers that re-render to the same document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import lxml.html
import pytest
from PIL import Image, ImageDraw

from docparse.prompt import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from tests.paths import REPO, shared_file

SAMPLE = REPO / "samples" / "report.pdf"
MAX_NEW = 12


def schema() -> dict[str, object]:
    text = resources.files("docparse").joinpath("schema/document.schema.json").read_text(encoding="utf-8")
    loaded = json.loads(text)
    assert isinstance(loaded, dict)
    return loaded


def docparse(args: list[str], model: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    model_args = (
        []
        if model is None
        else [
            "--model",
            str(model),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--max-new-tokens",
            str(MAX_NEW),
            # The tiny model's answers always run to the token limit; retries are tested in test_recover.
            "--max-retries",
            "0",
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "docparse", *args, *model_args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def check_page_structure(page: dict[str, object], width: float, height: float, unit: str) -> None:
    assert page["unit"] == unit
    assert page["width"] == pytest.approx(width, abs=0.01) and page["height"] == pytest.approx(height, abs=0.01)
    w, h = page["image_size"]  # type: ignore[misc]
    assert w % 28 == 0 and h % 28 == 0 and DEFAULT_MIN_PIXELS <= w * h <= DEFAULT_MAX_PIXELS
    assert abs(w / h - width / height) < 0.05  # aspect kept
    gen = page["generation"]
    assert isinstance(gen, dict)
    assert gen["tokens_in"] > w * h // (28 * 28)  # the image tokens are in the prompt
    assert 1 <= gen["tokens_out"] <= MAX_NEW
    assert gen["finish_reason"] in ("stop", "length")
    assert (page["status"] == "truncated") == (gen["finish_reason"] == "length") or page["status"] == "unstructured"


def test_pdf_page_range_to_json_with_raw_answers_that_re_render(tiny_model_dir: Path, tmp_path: Path) -> None:
    pdf = shared_file("fixtures", "pdfs", "math-code-and-formula.pdf")
    out = tmp_path / "out.json"
    proc = docparse(
        [str(pdf), "-o", str(out), "--pages", "1-2", "--batch-size", "2", "--keep-raw", "raw"],
        tiny_model_dir,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    data = json.loads(out.read_text())
    jsonschema.validate(data, schema())
    assert [p["number"] for p in data["pages"]] == [1, 2]
    check_page_structure(data["pages"][0], 612, 792, "pt")
    check_page_structure(data["pages"][1], 595.276, 841.89, "pt")  # the second page is A4
    assert data["metadata"]["model"] == str(tiny_model_dir)
    assert data["metadata"]["page_count"] == 2
    assert "page 2 (2/2)" in proc.stderr
    raws = sorted((tmp_path / "raw").glob("*.html"))
    assert [r.name for r in raws] == [
        "math-code-and-formula.page-0001.html",
        "math-code-and-formula.page-0002.html",
    ]
    sidecar = json.loads(raws[0].with_suffix(".json").read_text())
    assert sidecar["image_size"] == data["pages"][0]["image_size"]
    assert sidecar["tokens_out"] == data["pages"][0]["generation"]["tokens_out"]
    again = docparse(["render", *[str(r) for r in raws], "--to", "json", "-q"], None, tmp_path)
    assert again.returncode == 0, again.stderr
    rerendered = json.loads(again.stdout)
    for first, second in zip(data["pages"], rerendered["pages"], strict=True):
        assert first["blocks"] == second["blocks"]
        assert (first["width"], first["height"], first["unit"]) == (
            second["width"],
            second["height"],
            second["unit"],
        )


def test_sample_to_markdown_on_stdout_and_html_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    proc = docparse([str(SAMPLE)], tiny_model_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "loading" in proc.stderr and "page 1 (1/1)" in proc.stderr
    assert "page 1 (1/1)" not in proc.stdout and "loading" not in proc.stdout
    out = tmp_path / "report.html"
    proc = docparse([str(SAMPLE), "-o", str(out)], tiny_model_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr
    root = lxml.html.fromstring(out.read_text())
    assert root.xpath("//section[@id='page-1']")
    assert not root.xpath("//script")


def test_multipage_tiff_and_jpeg_are_pages(tiny_model_dir: Path, tmp_path: Path) -> None:
    tiff = tmp_path / "scan.tiff"
    frames = [Image.new("RGB", (500, 700), "white"), Image.new("RGB", (700, 500), "white")]
    for frame in frames:  # lines of "text", so the pages are not blank
        draw = ImageDraw.Draw(frame)
        for y in range(60, 400, 40):
            draw.rectangle((50, y, 420, y + 14), fill="black")
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    proc = docparse([str(tiff), "--to", "json"], tiny_model_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    jsonschema.validate(data, schema())
    check_page_structure(data["pages"][0], 500, 700, "px")
    check_page_structure(data["pages"][1], 700, 500, "px")
    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (640, 480), "white").save(jpeg)
    proc = docparse([str(jpeg), "--to", "md", "--pages", "1"], tiny_model_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_encrypted_pdf_with_and_without_its_password(tiny_model_dir: Path, tmp_path: Path) -> None:
    pdf = shared_file("fixtures", "pdfs", "enc-pdfplumber-pw-test.pdf")
    proc = docparse([str(pdf)], tiny_model_dir, tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "--password" in proc.stderr and "Traceback" not in proc.stderr
    assert "loading" not in proc.stderr  # refused before the model was loaded
    proc = docparse([str(pdf), "--password", "test", "--pages", "4", "--to", "json"], tiny_model_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [p["number"] for p in data["pages"]] == [4]
    check_page_structure(data["pages"][0], 612, 792, "pt")
