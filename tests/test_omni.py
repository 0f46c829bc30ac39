"""Omni content through `docparse render`: one page of every kind, with crops, in every format; goldens for all three.

The page is tests/data/answers/omni (a PDF drawn by make_omni.py and a hand-made QwenVL HTML answer for
it). Goldens are written with the optional checkers (RDKit, music21) switched off, so they do not
depend on which extras or versions are installed; the checkers' own effects are asserted separately.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import lxml.html
import pytest
from markdown_it import MarkdownIt
from PIL import Image

from docparse.cli.app import main
from docparse.document import Chemistry, Document, Figure, Music
from docparse.writers import notation
from docparse.writers.json import document_schema
from tests.paths import DATA, REPO
from tests.requires import unavailable
from tests.test_golden import check_golden

OMNI = DATA / "answers" / "omni"
ANSWER = "tests/data/answers/omni/page-0001.html"
GOLDEN = DATA / "golden"
VALIDATOR = jsonschema.Draft202012Validator(document_schema())
MARKDOWN = MarkdownIt("commonmark").enable("table")
KINDS = ["figure1", "chart1", "chemistry1", "chemistry2", "music1"]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "-q"])
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def no_checkers(monkeypatch: pytest.MonkeyPatch) -> None:
    """RDKit and music21 as if not installed."""
    monkeypatch.setattr(notation, "_rdkit", lambda: None)
    monkeypatch.setattr(notation, "_music21_abc", lambda: None)


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def rdkit_or_skip() -> None:
    if not notation.rdkit_available():
        unavailable("RDKit is not installed (pip install -e '.[chem]')", ".ci/run installs docparse[chem]")


def music21_or_skip() -> None:
    if not notation.music21_available():
        unavailable("music21 is not installed (pip install -e '.[music]')", ".ci/run installs docparse[music]")


@pytest.mark.parametrize("fmt", ["md", "html", "json"])
def test_omni_page_matches_its_goldens(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_checkers: None, in_repo: None
) -> None:
    out = tmp_path / f"omni.{fmt}"
    code, _, err = run(["render", ANSWER, "-o", str(out)], capsys)
    assert code == 0, err
    check_golden(GOLDEN / f"omni.{fmt}", out.read_text(encoding="utf-8"))
    # Every picture block has its crop beside the output, and nothing half-written is left.
    assert sorted(p.name for p in (tmp_path / "omni_files").iterdir()) == sorted(f"p0001-{k}.png" for k in KINDS)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]
    if fmt == "json":
        VALIDATOR.validate(json.loads(out.read_text(encoding="utf-8")))


def test_json_records_each_crop_and_keeps_notation_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    out = tmp_path / "doc.json"
    assert run(["render", ANSWER, "-o", str(out)], capsys)[0] == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    blocks = data["pages"][0]["blocks"]
    images = {b["type"]: [] for b in blocks}
    for b in blocks:
        images[b["type"]].append(b.get("image"))
    assert images["figure"] == ["doc_files/p0001-figure1.png"]
    assert images["chart"] == ["doc_files/p0001-chart1.png"]
    assert images["chemistry"] == ["doc_files/p0001-chemistry1.png", "doc_files/p0001-chemistry2.png"]
    assert images["music"] == ["doc_files/p0001-music1.png"]
    for b in blocks:
        if "image" in b:
            assert (tmp_path / b["image"]).is_file()
    chem = [b for b in blocks if b["type"] == "chemistry"]
    assert [c["smiles"] for c in chem] == ["O=C1C=CC(=O)N1C", "C1CC(C"]
    music = next(b for b in blocks if b["type"] == "music")
    assert music["abc"] == "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nC D E F | G A B c |]"
    formulas = [b for b in blocks if b["type"] == "formula"]
    assert [(f["latex"], f["variant"]) for f in formulas] == [
        (r"\int_0^1 x^2\,dx = \frac{1}{3}", "machine_printed"),
        (r"\sqrt{a^2+b^2}", "handwritten"),
    ]
    table = next(b for b in blocks if b["type"] == "table")
    head = table["rows"][0]
    assert [(c["rowspan"], c["colspan"], c["header"]) for c in head] == [(2, 1, True), (1, 2, True)]
    assert table["rows"][2][2]["content"] == []  # the empty cell stays a cell
    chart = next(b for b in blocks if b["type"] == "chart")
    assert [[c["content"][0]["text"] for c in row] for row in chart["table"]["rows"]][1] == ["2021", "40"]
    VALIDATOR.validate(data)


def test_crops_are_rendered_from_the_pdf_at_print_resolution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    out = tmp_path / "doc.html"
    assert run(["render", ANSWER, "-o", str(out)], capsys)[0] == 0
    figure = Image.open(tmp_path / "doc_files" / "p0001-figure1.png").convert("RGB")
    # The figure's box is 228 x 110 pt: at 300 dpi that is about 950 x 458 px, far above the
    # 407 x 198 px the model saw it at.
    assert abs(figure.width - 228 * 300 / 72) < 6 and abs(figure.height - 110 * 300 / 72) < 6
    # Its three blocks, left to right: red, green, blue (drawn at 80-140, 152-212, 224-284 pt).
    y = figure.height // 2
    colours = [figure.getpixel((round((x - 72) * 300 / 72), y)) for x in (110, 182, 254)]
    assert colours[0][0] > 180 > colours[0][2] and colours[1][1] > 120 > colours[1][0]
    assert colours[2][2] > 180 > colours[2][0]


def test_markdown_parses_into_tables_fences_images_and_math(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    out = tmp_path / "doc.md"
    assert run(["render", ANSWER, "-o", str(out)], capsys)[0] == 0
    md = out.read_text(encoding="utf-8")
    tokens = MARKDOWN.parse(md)
    fences = [(t.info, t.content) for t in tokens if t.type == "fence"]
    assert fences == [
        ("smiles", "O=C1C=CC(=O)N1C\n"),
        ("smiles", "C1CC(C\n"),
        ("abc", "X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nC D E F | G A B c |]\n"),
    ]
    # GFM tables for the rectangular grid and the chart's data; the spanned table stays HTML.
    assert sum(t.type == "table_open" for t in tokens) == 2
    html_blocks = [t.content for t in tokens if t.type == "html_block"]
    assert any('<th rowspan="2">Group</th><th colspan="2">Scores</th>' in h for h in html_blocks)
    root = lxml.html.fromstring(MARKDOWN.render(md))
    tables = root.findall(".//table")
    cells = [[c.text_content() for c in row] for row in tables[1].iter("tr")]
    assert cells == [["Metal", "Symbol"], ["Iron", "Fe"], ["Gold", "Au"]]
    srcs = [img.get("src") for img in root.iter("img")]
    assert srcs == [f"doc_files/p0001-{k}.png" for k in KINDS]
    assert root.find(".//img").get("alt") == "Figure 1: Three coloured blocks."
    intro = root.find(".//p")
    assert intro.find("sub").text == "2" and intro.find("sup").text == "2"
    assert intro.find("strong").text == "bold" and intro.find("em").text == "italic"
    assert intro.find("a").get("href") == "https://example.org/omni"
    assert "$E = mc^2$" in intro.text_content()
    assert "$$\n\\int_0^1 x^2\\,dx = \\frac{1}{3}\n$$" in md and "$$\n\\sqrt{a^2+b^2}\n$$" in md
    assert "border: 1px" not in md and "table1" not in md  # the answer's <style> block is not content


def test_html_formulas_are_mathml_with_the_latex_as_annotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    code, out, _ = run(["render", ANSWER, "--to", "html"], capsys)
    assert code == 0
    root = lxml.html.fromstring(out)
    formulas = root.findall(".//div[@class='formula']")
    assert [f.get("data-variant") for f in formulas] == ["machine_printed", "handwritten"]
    for div, latex in zip(formulas, [r"\int_0^1 x^2\,dx = \frac{1}{3}", r"\sqrt{a^2+b^2}"], strict=True):
        math = div.find("math")
        assert math.get("display") == "block"
        assert math.findtext("semantics/annotation[@encoding='application/x-tex']") == latex
    assert formulas[0].find(".//mfrac") is not None and formulas[1].find(".//msqrt") is not None
    inline = root.find(".//p/span[@class='math']/math")
    assert inline.get("display") == "inline" and inline.findtext(".//annotation") == "E = mc^2"
    # No LaTeX outside the annotations.
    for ann in root.iter("annotation"):
        ann.drop_tree()
    assert "\\" not in root.find(".//main").text_content()


def test_a_formula_that_cannot_convert_shows_its_latex(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '<div class="formula" data-bbox="0 0 50 20"><div>$$\\unknowncommand{x} + \\frac{a}{$$</div></div>\n'
        '<p data-bbox="0 30 50 40">so $\\alpha$ and $\\nosuch$.</p>',
        encoding="utf-8",
    )
    code, out, _ = run(["render", str(page), "--image-size", "100x100", "--to", "html"], capsys)
    assert code == 0
    root = lxml.html.fromstring(out)
    assert root.find(".//div[@class='formula']/math") is None
    assert root.findtext(".//div[@class='formula']/code[@class='latex']") == r"\[\unknowncommand{x} + \frac{a}{\]"
    spans = root.findall(".//p/span[@class='math']")
    assert spans[0].find("math") is not None
    assert spans[1].findtext("code[@class='latex']") == r"\(\nosuch\)"


def test_rdkit_flags_bad_smiles_and_draws_good_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    rdkit_or_skip()
    out = tmp_path / "doc.html"
    code, _, err = run(["render", ANSWER, "-o", str(out)], capsys)
    assert code == 0
    assert "docparse: warning: page 1: RDKit cannot read the SMILES 'C1CC(C'" in err
    root = lxml.html.fromstring(out.read_text(encoding="utf-8"))
    good, bad = root.findall(".//figure")[2:4]
    assert (good.get("data-valid"), bad.get("data-valid")) == ("true", "false")
    svg = good.find(".//div[@class='notation']/svg")
    assert svg is not None and len(svg.findall("path")) >= 10
    assert good.findtext(".//pre[@class='smiles']") == "O=C1C=CC(=O)N1C"
    assert bad.find(".//svg") is None and bad.find("p[@class='invalid']") is not None
    data = json.loads(run(["render", ANSWER, "--to", "json", "--images", "none"], capsys)[1])
    chem = [b for b in data["pages"][0]["blocks"] if b["type"] == "chemistry"]
    assert [c["valid"] for c in chem] == [True, False] and all(c["image"] is None for c in chem)
    md = run(["render", ANSWER, "--to", "md"], capsys)[1]
    assert "```smiles\nC1CC(C\n```\n\n<!-- RDKit could not read this SMILES -->" in md


def test_without_rdkit_smiles_are_unchecked_and_shown_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_checkers: None, in_repo: None
) -> None:
    code, out, err = run(["render", ANSWER, "--to", "json"], capsys)
    assert code == 0 and "warning" not in err
    blocks = json.loads(out)["pages"][0]["blocks"]
    assert [b["valid"] for b in blocks if b["type"] in ("chemistry", "music")] == [None, None, None]
    html = run(["render", ANSWER, "--to", "html"], capsys)[1]
    assert "<svg" not in html and 'class="invalid"' not in html


@pytest.mark.parametrize(
    ("abc", "valid"),
    [
        ("X:1\nT:Scale\nM:4/4\nL:1/4\nK:C\nC D E F | G A B c |]", True),
        ("X:1\nK:G\nGABc dedB|", True),  # no L: and no M: (unit 1/8 by the standard)
        ("X:1\nT:only a header\nK:C\n", False),  # no note
        ("just some words, no tune", False),  # no K: field
    ],
)
def test_music21_checks_abc(abc: str, valid: bool) -> None:
    music21_or_skip()
    assert notation.check_abc(abc) is valid


def test_invalid_abc_is_flagged_in_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    music21_or_skip()
    page = tmp_path / "page.html"
    page.write_text(
        '<div class="music sheet" format="abc notation" data-bbox="0 0 90 40"><div>T:no key, no notes</div></div>',
        encoding="utf-8",
    )
    args = ["render", str(page), "--image-size", "100x100"]
    code, out, err = run([*args, "--to", "json"], capsys)
    assert code == 0 and "music21 cannot read the ABC notation 'T:no key, no notes'" in err
    assert json.loads(out)["pages"][0]["blocks"][0]["valid"] is False
    html = lxml.html.fromstring(run([*args, "--to", "html"], capsys)[1])
    assert html.find(".//figure[@data-valid='false']/p[@class='invalid']") is not None
    assert "<!-- music21 could not read this ABC notation -->" in run([*args, "--to", "md"], capsys)[1]


def test_html_is_self_contained_unless_online_assets_are_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    offline = run(["render", ANSWER, "--to", "html"], capsys)[1]
    assert "<script" not in offline and "https://cdn" not in offline
    assert lxml.html.fromstring(offline).findtext(".//pre[@class='abc']").startswith("X:1\nT:Scale")
    online = run(["render", ANSWER, "--to", "html", "--online-assets"], capsys)[1]
    root = lxml.html.fromstring(online)
    src, init = root.findall(".//script")
    assert src.get("src").startswith("https://cdn.jsdelivr.net/npm/abcjs@") and src.get("integrity")
    csp = root.find(".//meta[@http-equiv='Content-Security-Policy']").get("content")
    digest = base64.b64encode(hashlib.sha256(init.text.encode("utf-8")).digest()).decode("ascii")
    assert csp.endswith(f"script-src {src.get('src')} 'sha256-{digest}'")
    # The ABC text stays in the page for the renderer to read and for a reader without it.
    assert root.findtext(".//pre[@class='abc']").startswith("X:1\nT:Scale")
    # A page with no music loads nothing even when asked.
    page = run(
        ["render", "tests/data/qwenvl/01-cookbook-qwen25-techreport-72b.html", "--to", "html", "--online-assets"],
        capsys,
    )
    assert "<script" not in page[1]


def test_embed_puts_png_data_uris_in_the_output_and_writes_no_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    code, out, _ = run(["render", ANSWER, "--to", "md", "--images", "embed"], capsys)
    assert code == 0
    root = lxml.html.fromstring(MARKDOWN.render(out))
    srcs = [img.get("src") for img in root.iter("img")]
    assert len(srcs) == len(KINDS) and all(s.startswith("data:image/png;base64,") for s in srcs)
    png = Image.open(io.BytesIO(base64.b64decode(srcs[0].split(",", 1)[1])))
    assert png.format == "PNG" and png.width > 900
    out_file = tmp_path / "e.html"
    assert run(["render", ANSWER, "-o", str(out_file), "--images", "embed"], capsys)[0] == 0
    assert not (tmp_path / "e_files").exists()


def test_stdout_takes_no_image_files(capsys: pytest.CaptureFixture[str], in_repo: None) -> None:
    code, out, _ = run(["render", ANSWER, "--to", "html"], capsys)
    assert code == 0 and "<img" not in out and 'class="placeholder"' in out  # default on stdout: none
    code, out, err = run(["render", ANSWER, "--to", "html", "--images", "files"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("docparse: error: --images files needs -o FILE") and "Traceback" not in err


def test_images_none_writes_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None) -> None:
    out = tmp_path / "n.md"
    assert run(["render", ANSWER, "-o", str(out), "--images", "none"], capsys)[0] == 0
    assert not (tmp_path / "n_files").exists() and "<!-- figure -->" in out.read_text(encoding="utf-8")


def test_a_missing_or_changed_source_warns_and_still_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    folder = tmp_path / "answers"
    shutil.copytree(OMNI, folder, ignore=shutil.ignore_patterns("omni.pdf", "*.py"))
    out = tmp_path / "doc.html"
    code, _, err = run(["render", str(folder / "page-0001.html"), "-o", str(out)], capsys)
    assert code == 0 and out.exists() and not (tmp_path / "doc_files").exists()
    assert "docparse: warning: pictures were not cropped: the source omni.pdf is not there" in err
    # A saved document whose source changed since: not cropped from the wrong file.
    json_out = tmp_path / "doc.json"
    assert run(["render", ANSWER, "-o", str(json_out), "--images", "none"], capsys)[0] == 0
    data = json.loads(json_out.read_text(encoding="utf-8"))
    data["metadata"]["source_sha256"] = "0" * 64
    data["source"] = str(OMNI / "omni.pdf")
    json_out.write_text(json.dumps(data), encoding="utf-8")
    code, _, err = run(["render", str(json_out), "-o", str(tmp_path / "again.html")], capsys)
    assert code == 0 and "its SHA-256 differs" in err and not (tmp_path / "again_files").exists()


def test_render_of_a_saved_document_crops_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    saved = tmp_path / "saved.json"
    assert run(["render", ANSWER, "-o", str(saved), "--images", "none"], capsys)[0] == 0
    out = tmp_path / "sub dir" / "my doc #1.html"
    code, _, err = run(["render", str(saved), "-o", str(out)], capsys)
    assert code == 0, err
    folder = tmp_path / "sub dir" / "my doc #1_files"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"p0001-{k}.png" for k in KINDS)
    srcs = [img.get("src") for img in lxml.html.fromstring(out.read_text(encoding="utf-8")).iter("img")]
    assert srcs[0] == "my%20doc%20%231_files/p0001-figure1.png"


def test_hostile_image_references_in_a_saved_document_are_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    saved = tmp_path / "saved.json"
    assert run(["render", ANSWER, "-o", str(saved), "--images", "none"], capsys)[0] == 0
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["source"] = "gone.pdf"  # no crops can be made: the references stay as the file has them
    hostile = [
        "javascript:alert(1)",
        "../../../etc/passwd_files/x.png",
        "data:image/svg+xml;base64,PHN2Zz4=",
        "https://evil.example/t.png",
        'x_files/p0001-figure1.png" onerror="alert(1)',
    ]
    pictures = [b for b in data["pages"][0]["blocks"] if "image" in b]
    for block, ref in zip(pictures, hostile, strict=True):
        block["image"] = ref
    saved.write_text(json.dumps(data), encoding="utf-8")
    for fmt in ("html", "md"):
        code, out, _ = run(["render", str(saved), "--to", fmt, "--images", "embed"], capsys)
        assert code == 0
        for ref in hostile:
            assert ref not in out
        assert "evil" not in out and "javascript" not in out and "passwd" not in out


def test_crops_turn_with_a_page_the_pipeline_turned(tmp_path: Path) -> None:
    """A page whose content was turned 90 degrees before the model saw it: the crop is turned the same way."""
    import pymupdf

    from docparse.config import WriteOptions
    from docparse.document import Box, Page
    from docparse.output import add_crops

    pdf = tmp_path / "turned.pdf"
    doc = pymupdf.open()
    page = doc.new_page(width=200, height=300)
    page.draw_rect(pymupdf.Rect(50, 50, 100, 100), color=(1, 0, 0), fill=(1, 0, 0))  # red, top left
    page.draw_rect(pymupdf.Rect(100, 50, 150, 100), color=(0, 0, 1), fill=(0, 0, 1))  # blue, top right
    doc.save(pdf)
    doc.close()
    figure = Figure(box=Box(50, 50, 150, 100), raw_class="img")

    def crop(rotation: int) -> Image.Image:
        d = Document(
            source=str(pdf),
            pages=(
                Page(number=1, width=200, height=300, unit="pt", image_size=None, blocks=(figure,), rotation=rotation),
            ),
        )
        done, _, warnings = add_crops(d, WriteOptions(images="embed"), None)
        assert warnings == ()
        block = done.pages[0].blocks[0]
        assert isinstance(block, Figure) and block.image is not None
        return Image.open(io.BytesIO(base64.b64decode(block.image.split(",", 1)[1]))).convert("RGB")

    upright, turned = crop(0), crop(90)
    assert upright.width > upright.height and turned.height > turned.width
    # Turned 90 degrees clockwise: the red half (left) is now on top, the blue half below.
    assert upright.getpixel((upright.width // 4, upright.height // 2))[0] > 200
    top, bottom = (
        turned.getpixel((turned.width // 2, turned.height // 4)),
        turned.getpixel((turned.width // 2, turned.height * 3 // 4)),
    )
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]


def test_crops_of_an_image_input_come_from_its_own_pixels(tmp_path: Path) -> None:
    from docparse.config import WriteOptions
    from docparse.document import Box, Page
    from docparse.output import add_crops

    source = tmp_path / "scan.png"
    image = Image.new("RGB", (400, 300), "white")
    image.paste((0, 160, 0), (100, 100, 300, 200))
    image.save(source)
    block = Chemistry(smiles="C", box=Box(100, 100, 300, 200))
    doc = Document(
        source=str(source),
        pages=(Page(number=1, width=400, height=300, unit="px", image_size=(392, 308), blocks=(block,)),),
    )
    out = tmp_path / "scan.md"
    done, files, warnings = add_crops(doc, WriteOptions(format="md", images="files"), out)
    assert warnings == () and [f.name for f in files] == ["p0001-chemistry1.png"]
    assert (
        isinstance(done.pages[0].blocks[0], Chemistry)
        and done.pages[0].blocks[0].image == "scan_files/p0001-chemistry1.png"
    )
    crop = Image.open(files[0]).convert("RGB")
    assert crop.size == (200, 100) and crop.getpixel((100, 50)) == (0, 160, 0)


def iter_blocks(doc: Document) -> Iterator[object]:
    for page in doc.pages:
        yield from page.blocks


def test_a_music_block_without_a_box_gets_no_crop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from docparse.config import WriteOptions
    from docparse.document import Page
    from docparse.output import add_crops

    doc = Document(
        source=str(OMNI / "omni.pdf"),
        pages=(Page(number=1, width=612, height=792, unit="pt", image_size=None, blocks=(Music(abc="X:1\nK:C\nC"),)),),
    )
    done, files, warnings = add_crops(doc, WriteOptions(images="files"), tmp_path / "m.html")
    assert files == () and warnings == () and all(getattr(b, "image", None) is None for b in iter_blocks(done))


def test_convert_of_a_pdf_crops_from_the_file_it_converted(tmp_path: Path) -> None:
    """The whole path a user takes: the pipeline converts omni.pdf (a scripted engine answers with the
    omni answer), then the write step crops from the input, recorded with its SHA-256."""
    import docparse
    from tests.test_pipeline import ScriptedEngine

    answer = (OMNI / "page-0001.html").read_text(encoding="utf-8")
    engine = ScriptedEngine(lambda image, n: answer)
    doc = docparse.convert(OMNI / "omni.pdf", engine=engine)
    assert engine.calls == [[(1092, 1428)]]  # the size the answer's boxes were made for
    out = tmp_path / "converted.html"
    warnings = docparse.save(doc, out, "html")
    assert not [w for w in warnings if "crop" in w]
    root = lxml.html.fromstring(out.read_text(encoding="utf-8"))
    assert [img.get("src") for img in root.iter("img")] == [f"converted_files/p0001-{k}.png" for k in KINDS]
    chart = Image.open(tmp_path / "converted_files" / "p0001-chart1.png")
    assert abs(chart.width - 228 * 300 / 72) < 6 and abs(chart.height - 150 * 300 / 72) < 6
    # A second save with fewer pictures leaves no stale crop behind.
    first_page_only = Document(
        source=doc.source,
        pages=(dataclasses.replace(doc.pages[0], blocks=doc.pages[0].blocks[:3]),),
        metadata=doc.metadata,
    )
    docparse.save(first_page_only, out, "html")
    assert [p.name for p in (tmp_path / "converted_files").iterdir()] == ["p0001-figure1.png"]
    embedded = docparse.write(doc, "md", images="embed")
    assert embedded.count("](data:image/png;base64,") == len(KINDS)


def test_a_page_claiming_hundreds_of_pictures_gets_a_bounded_number_of_crops(tmp_path: Path) -> None:
    from docparse.config import WriteOptions
    from docparse.document import Box, Page
    from docparse.output import MAX_CROPS_PER_PAGE, add_crops

    source = tmp_path / "scan.png"
    Image.new("RGB", (100, 100), "white").save(source)
    figures = tuple(Figure(box=Box(0, 0, 10 + i % 50, 10 + i % 50)) for i in range(300))
    doc = Document(
        source=str(source), pages=(Page(number=1, width=100, height=100, unit="px", image_size=None, blocks=figures),)
    )
    done, files, warnings = add_crops(doc, WriteOptions(images="files"), tmp_path / "many.md")
    assert len(files) == MAX_CROPS_PER_PAGE
    assert warnings == (f"page 1: only its first {MAX_CROPS_PER_PAGE} pictures were cropped",)
    images = [b.image for b in done.pages[0].blocks if isinstance(b, Figure)]
    assert images[MAX_CROPS_PER_PAGE - 1] is not None and images[MAX_CROPS_PER_PAGE] is None


def test_bare_answers_name_no_source_to_crop_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare.html"
    bare.write_text((OMNI / "page-0001.html").read_text(encoding="utf-8"), encoding="utf-8")  # no sidecar
    out = tmp_path / "bare.md"
    code, _, err = run(["render", str(bare), "--image-size", "1092x1428", "-o", str(out)], capsys)
    assert code == 0 and out.exists() and not (tmp_path / "bare_files").exists()
    assert "pictures were not cropped: the answers were rendered without a --keep-raw sidecar" in err


def test_a_crop_that_fails_is_reported_and_the_others_are_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, in_repo: None
) -> None:
    from docparse import output as assets

    real_crop = assets._Cropper.crop

    def flaky(self: assets._Cropper, page: object, block: object) -> bytes | None:
        if isinstance(block, Chemistry):
            raise RuntimeError("MuPDF error: broken content stream")
        return real_crop(self, page, block)  # type: ignore[arg-type]

    monkeypatch.setattr(assets._Cropper, "crop", flaky)
    out = tmp_path / "doc.md"
    code, _, err = run(["render", ANSWER, "-o", str(out)], capsys)
    assert code == 0
    assert err.count("a chemistry could not be cropped (MuPDF error: broken content stream)") == 2
    assert sorted(p.name for p in (tmp_path / "doc_files").iterdir()) == [
        "p0001-chart1.png",
        "p0001-figure1.png",
        "p0001-music1.png",
    ]
    assert "![Chemical structure]" not in out.read_text(encoding="utf-8")


def test_an_encrypted_source_is_cropped_with_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_repo: None
) -> None:
    import pymupdf

    locked = tmp_path / "locked.pdf"
    with pymupdf.open(OMNI / "omni.pdf") as pdf:
        pdf.save(locked, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="s3cret", owner_pw="owner")
    saved = tmp_path / "saved.json"
    assert run(["render", ANSWER, "-o", str(saved), "--images", "none"], capsys)[0] == 0
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["source"] = str(locked)
    saved.write_text(json.dumps(data), encoding="utf-8")
    code, _, err = run(["render", str(saved), "-o", str(tmp_path / "no.html")], capsys)
    assert code == 0 and "is encrypted: its crops need --password" in err
    assert not (tmp_path / "no_files").exists()
    code, _, err = run(["render", str(saved), "-o", str(tmp_path / "yes.html"), "--password", "s3cret"], capsys)
    assert code == 0 and "crop" not in err
    assert len(list((tmp_path / "yes_files").iterdir())) == len(KINDS)


@pytest.mark.parametrize("command", [[], ["render"]])
def test_help_documents_the_images_options(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "--images [files|embed|none]" in text and "<stem>_files/" in text and "--online-assets" in text
