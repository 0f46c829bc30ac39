"""Regenerate samples/report.pdf: a small page with text, a table and a formula, made with PyMuPDF."""

from __future__ import annotations

from pathlib import Path

import pymupdf

CSS = """
* {font-family: sans-serif;}
td, th {border: 0.6pt solid black; padding: 3pt 8pt;}
table {border-collapse: collapse;}
"""

HTML = """
<h1>Quarterly Field Report</h1>
<p>This sample page exercises the three things docparse is most often asked to read:
running text, a table with a header row, and a display formula. It was drawn by
<i>samples/make_samples.py</i> and carries no third-party content.</p>
<h2>1. Measurements</h2>
<table>
<tr><th>Site</th><th>Samples</th><th>Mean (mg/L)</th><th>Std. dev.</th></tr>
<tr><td>North well</td><td>12</td><td>4.21</td><td>0.38</td></tr>
<tr><td>River inlet</td><td>9</td><td>6.05</td><td>1.12</td></tr>
<tr><td>Reservoir</td><td>15</td><td>2.77</td><td>0.21</td></tr>
</table>
<h2>2. Model</h2>
<p>Concentration decays exponentially with distance <i>x</i> from the source:</p>
<p style="text-align: center; font-size: 14pt">C(x) = C<sub>0</sub> · e<sup>−λx</sup>,
&nbsp; λ = ln 2 / x<sub>½</sub></p>
<p>With x<sub>½</sub> = 3.5 km, the reservoir reading implies a source concentration
of about 9.8 mg/L.</p>
"""


def make_report(path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)  # A4 in points
    page.insert_htmlbox(pymupdf.Rect(60, 60, 535, 780), HTML, css=CSS)
    doc.set_metadata(
        {
            "title": "Quarterly Field Report (docparse sample)",
            "creator": "samples/make_samples.py",
            "creationDate": "D:20261126000000Z",
            "modDate": "D:20261126000000Z",
        }
    )
    doc.save(path, garbage=4, deflate=True, no_new_id=True)
    doc.close()


if __name__ == "__main__":
    make_report(Path(__file__).with_name("report.pdf"))
