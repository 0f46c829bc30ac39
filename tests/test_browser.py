"""The HTML output opened in a real headless Chromium (Debian's chromium, driven by Selenium + chromedriver).

Checks what a reader sees: formulas laid out as MathML with no raw LaTeX on screen, table spans kept,
every crop loaded, the RDKit drawing present, no console error (a CSP violation is one), and hostile
model output running nothing. A screenshot of the omni page is saved under test-artifacts/ (git-ignored)
and its path printed. Without chromium the tests skip locally; with CI=true they fail instead.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from docparse.cli.app import main
from docparse.writers import notation
from tests.paths import REPO
from tests.requires import unavailable

ANSWER = "tests/data/answers/omni/page-0001.html"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("DOCPARSE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DOCPARSE_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    unavailable(reason, "CI must run the browser tests (.ci/run installs chromium and chromium-driver)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            _unavailable(f"{path} is absent (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="docparse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1000, 1600)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def render_html(tmp_path: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    with pytest.raises(SystemExit) as exit_info:
        main(["render", ANSWER, "-o", str(out), "-q", *extra])
    assert exit_info.value.code == 0
    return out


def open_page(browser: Any, path: Path) -> list[dict[str, Any]]:
    """Load the page and return the console entries it logged."""
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(path.as_uri())
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all([...document.images].map(i => i.decode().catch(() => null))).then(() => done(true));"
    )
    entries: list[dict[str, Any]] = browser.get_log("browser")
    return entries


def errors(entries: list[dict[str, Any]]) -> list[str]:
    return [e["message"] for e in entries if e.get("level") in ("SEVERE", "WARNING")]


@pytest.mark.parametrize("images", ["files", "embed"])
def test_omni_page_renders_in_chromium(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: str
) -> None:
    monkeypatch.chdir(REPO)
    page = render_html(tmp_path, "omni.html", "--images", images)
    log = open_page(browser, page)
    assert errors(log) == []

    # Formulas: MathML laid out by the browser, the LaTeX only in annotations, which are not shown.
    maths = browser.execute_script(
        "return [...document.querySelectorAll('math')].map(m => {"
        " const r = m.getBoundingClientRect(); const a = m.querySelector('annotation');"
        " return [m.getAttribute('display'), r.width, r.height, getComputedStyle(m).display,"
        "         a ? a.getBoundingClientRect().width : -1, a ? a.textContent : null]; })"
    )
    assert [m[0] for m in maths] == ["inline", "block", "block"]
    for display, width, height, css_display, annotation_width, latex in maths:
        assert width > 5 and height > 5, (display, latex)
        assert css_display in ("block math", "inline math", "math"), css_display  # MathML layout, not inline text
        assert annotation_width == 0 and latex
    assert browser.execute_script("return document.querySelector('msqrt').getBoundingClientRect().width") > 10
    shown = browser.execute_script("return document.body.innerText")
    for raw in ("\\int", "\\frac", "\\sqrt", "$$", "mc^2", "\\(", "\\["):
        assert raw not in shown, raw

    # Tables keep their spans (as the DOM reads them, and laid out: "Scores" spans two columns).
    spans = browser.execute_script(
        "const t = document.querySelector('table');"
        "const [group, scores] = t.rows[0].cells; const a = t.rows[1].cells[0];"
        "return [group.rowSpan, scores.colSpan, Math.round(scores.getBoundingClientRect().width),"
        " Math.round(a.getBoundingClientRect().width + t.rows[1].cells[1].getBoundingClientRect().width),"
        " t.rows[2].cells.length, t.rows[2].cells[2].textContent]"
    )
    assert spans[:2] == [2, 2] and abs(spans[2] - spans[3]) <= 2 and spans[4:] == [3, ""]

    # Every crop loaded.
    images_state = browser.execute_script(
        "return [...document.images].map(i => [i.getAttribute('alt'), i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert [i[0] for i in images_state] == [
        "Figure 1: Three coloured blocks.",
        "Chart",
        "Chemical structure",
        "Chemical structure",
        "Music sheet",
    ]
    assert all(complete and w > 0 and h > 0 for _, complete, w, h in images_state), images_state

    # The chemical structure drawn by RDKit, beside its SMILES; the bad SMILES flagged.
    if notation.rdkit_available():
        svg = browser.execute_script(
            "const s = document.querySelector('figure.chemistry[data-valid=true] .notation svg');"
            "if (!s) return null; const r = s.getBoundingClientRect();"
            "return [r.width, r.height, s.querySelectorAll('path').length,"
            " s.parentElement.querySelector('pre.smiles').textContent]"
        )
        assert svg is not None and svg[0] > 50 and svg[1] > 50 and svg[2] >= 10 and svg[3] == "O=C1C=CC(=O)N1C"
        assert browser.execute_script("return !!document.querySelector('figure.chemistry[data-valid=false] .invalid')")
    elif os.environ.get("CI") == "true":
        pytest.fail("RDKit is missing on CI: .ci/run installs docparse[chem]")

    # The ABC text is on the page (offline HTML draws no notation).
    assert "C D E F | G A B c |]" in shown
    assert browser.execute_script("return document.scripts.length") == 0

    if images == "files":
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "omni-chromium.png"
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1000, min(6000, height + 120))
        assert browser.save_screenshot(str(shot))
        browser.set_window_size(1000, 1600)
        print(f"screenshot: {shot}")
        assert shot.stat().st_size > 10_000


HOSTILE = """```html
<html><body>
<p data-bbox="0 0 100 20">BEFORE TEXT</p>
<script>window.pwned = 1</script>
<img src="x" onerror="window.pwned = 2" data-bbox="0 20 100 40">
<svg onload="window.pwned = 3"><script>window.pwned = 4</script></svg>
<math><mtext><script>window.pwned = 5</script></mtext></math>
<div class="formula" data-bbox="0 40 100 60"><div>$$\\text{<img src=x onerror=window.pwned=6>}$$</div></div>
<div class="chemical formula" format="smile" data-bbox="0 60 100 80"><div>C<script>window.pwned=7</script></div></div>
<p data-bbox="0 80 100 100"><a href="javascript:window.pwned=8">AFTER TEXT</a>
$\\href{javascript:window.pwned=9}{x}$</p>
<iframe src="javascript:parent.pwned=10"></iframe>
</body></html>
```"""


def test_hostile_answer_runs_nothing_in_chromium(browser: Any, tmp_path: Path) -> None:
    answer = tmp_path / "hostile.html"
    answer.write_text(HOSTILE, encoding="utf-8")
    out = tmp_path / "out.html"
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(answer), "--image-size", "100x100", "-o", str(out), "-q"])
    assert exit_info.value.code == 0
    open_page(browser, out)
    browser.execute_script("document.querySelectorAll('a').forEach(a => a.click())")
    state = browser.execute_script(
        "return [window.pwned === undefined, document.scripts.length, document.querySelectorAll('iframe').length,"
        " document.body.innerText.includes('BEFORE TEXT'), document.body.innerText.includes('AFTER TEXT')]"
    )
    assert state == [True, 0, 0, True, True]
    assert browser.current_url == out.as_uri()


# abcjs as published on npm (.ci/run fetches it with `npm pack`); the test serves it to Chromium as
# cdn.jsdelivr.net from a local HTTPS server, so nothing leaves the machine.
def _abcjs_file() -> Path:
    from docparse.writers.html_safety import ABCJS_VERSION

    default = REPO / "test-artifacts" / "abcjs" / ABCJS_VERSION / "package" / "dist" / "abcjs-basic-min.js"
    return Path(os.environ.get("DOCPARSE_ABCJS", default))


class _CdnHandler(http.server.BaseHTTPRequestHandler):
    body = b""
    path_served = ""
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if self.path != self.path_served:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/javascript")
        self.send_header("Access-Control-Allow-Origin", "*")  # the page loads it with crossorigin + integrity
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_cdn(tmp_path: Path) -> Iterator[int]:
    """A local HTTPS server answering for the abcjs URL docparse pins; yields its port."""
    from docparse.writers.html_safety import ABCJS_INTEGRITY, ABCJS_URL

    abcjs = _abcjs_file()
    if not abcjs.exists():
        _unavailable(f"{abcjs} is absent (.ci/run fetches it: npm pack abcjs)")
    if shutil.which("openssl") is None:
        _unavailable("openssl is not installed (needed for the local HTTPS server)")
    body = abcjs.read_bytes()
    # The pinned integrity is that of the published file: if this fails, the pin is wrong.
    assert "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode() == ABCJS_INTEGRITY
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=cdn.jsdelivr.net",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    _CdnHandler.body, _CdnHandler.path_served = body, ABCJS_URL.split("cdn.jsdelivr.net", 1)[1]
    _CdnHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CdnHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_online_assets_draw_abc_as_notation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_cdn: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.chdir(REPO)
    page = render_html(tmp_path, "online.html", "--online-assets", "--images", "none")
    profile = tempfile.mkdtemp(prefix="docparse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    extra = [
        f"--host-resolver-rules=MAP cdn.jsdelivr.net 127.0.0.1:{fake_cdn}",
        "--ignore-certificate-errors",
        f"--user-data-dir={profile}",
    ]
    for flag in [*FLAGS, *extra]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        log = open_page(driver, page)
        assert errors(log) == []
        drawn = driver.execute_script(
            "const d = document.querySelector('figure.music .abc-notation');"
            "return d ? [d.querySelectorAll('svg').length, d.querySelectorAll('path').length,"
            " d.getBoundingClientRect().height, d.nextElementSibling.tagName, d.nextElementSibling.textContent] : null"
        )
        assert drawn is not None, _CdnHandler.requests
        svgs, paths, height, sibling, abc = drawn
        assert svgs >= 1 and paths >= 8 and height > 40  # staff lines, clef, note heads
        assert sibling == "PRE" and abc.startswith("X:1\nT:Scale")  # the ABC text stays beside it
        ARTIFACTS.mkdir(exist_ok=True)
        driver.find_element("css selector", "figure.music").screenshot(str(ARTIFACTS / "abc-notation-chromium.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
