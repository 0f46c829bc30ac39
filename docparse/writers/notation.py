"""Notation made readable: LaTeX to MathML, SMILES checked and drawn (RDKit), ABC parse-checked (music21).

Everything here takes the model's text, which is untrusted. A converter's output is never passed on
as it comes: it is parsed as XML and rebuilt from an allow-list of element and attribute names, with
every text and attribute value escaped, so whatever the model wrote ends up as text, never as markup.
RDKit and music21 are optional extras (`docparse[chem]`, `docparse[music]`): without them the
checks answer None ("not checked") and nothing is drawn.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any

from lxml import etree

# --- MathML -----------------------------------------------------------------------------------

# MathML Core elements (what browsers render), less the ones that reach outside the formula.
MATHML_TAGS = frozenset(
    {
        "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "mfrac", "msqrt",
        "mroot", "msub", "msup", "msubsup", "munder", "mover", "munderover", "mmultiscripts", "mprescripts",
        "none", "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom", "merror",
    }
)  # fmt: skip
MATHML_ATTRIBUTES = frozenset(
    {
        "display", "displaystyle", "scriptlevel", "mathvariant", "stretchy", "fence", "separator", "lspace",
        "rspace", "accent", "accentunder", "movablelimits", "largeop", "symmetric", "minsize", "maxsize", "form",
        "width", "height", "depth", "linethickness", "columnalign", "rowalign", "columnspacing", "rowspacing",
        "columnlines", "rowlines", "frame", "columnspan", "rowspan", "encoding", "voffset",
    }
)  # fmt: skip
# Values a converter writes for those attributes: words, numbers, lengths; never a URL or a bracket.
_SAFE_VALUE = re.compile(r"[\w\s.,#%+-]*")
_MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"
TEX_ENCODING = "application/x-tex"


class NotationError(ValueError):
    """A converter could not make sense of the notation; the caller shows the source text instead."""


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""  # a comment or processing instruction
    return tag.rsplit("}", 1)[-1]


def _rebuild(el: Any, tags: frozenset[str], attributes: frozenset[str], out: list[str]) -> None:
    """`el` written again from the allow-lists; NotationError for any other element or a doubtful value."""
    name = _local(el.tag)
    if name not in tags:
        raise NotationError(f"unexpected element {name or 'comment'!r}")
    attrs = []
    for key, value in el.attrib.items():
        local = _local(key)
        if local not in attributes:
            continue
        if not _SAFE_VALUE.fullmatch(value):
            raise NotationError(f"unexpected value of {local}")
        attrs.append(f' {local}="{html.escape(value, quote=True)}"')
    out.append(f"<{name}{''.join(attrs)}>")
    out.append(html.escape(el.text or "", quote=False))
    for child in el:
        if isinstance(child.tag, str):
            _rebuild(child, tags, attributes, out)
        out.append(html.escape(child.tail or "", quote=False))
    out.append(f"</{name}>")


def _parse_xml(text: str) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(text.encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        raise NotationError(f"converter output is not XML: {exc}") from None


def latex_to_mathml(latex: str, display: bool) -> str:
    """MathML for `latex`, the LaTeX kept as its TeX annotation. NotationError when it cannot be converted.

    A command the converter does not know comes back from it as the command's own text (`\\foo`),
    which a reader would see as raw LaTeX: that counts as a failure too.
    """
    if not latex.strip():
        raise NotationError("empty formula")
    from latex2mathml.converter import convert

    try:
        raw = convert(latex, display="block" if display else "inline")
    except Exception as exc:  # the converter raises its own errors, and IndexError/KeyError on odd input
        raise NotationError(f"{type(exc).__name__}: {exc}") from None
    root = _parse_xml(raw)
    if _local(root.tag) != "math":
        raise NotationError("converter output is not a <math> element")
    for node in root.iter():
        if isinstance(node.tag, str) and "\\" in (node.text or ""):
            raise NotationError(f"unknown command {node.text!r}")
    inner: list[str] = []
    for child in root:
        if isinstance(child.tag, str):
            _rebuild(child, MATHML_TAGS, MATHML_ATTRIBUTES, inner)
    body = "".join(inner)
    if not body:
        raise NotationError("the formula converted to nothing")
    mode = "block" if display else "inline"
    annotation = f'<annotation encoding="{TEX_ENCODING}">{html.escape(latex, quote=False)}</annotation>'
    return f'<math display="{mode}"><semantics><mrow>{body}</mrow>{annotation}</semantics></math>'


# --- chemistry (RDKit, optional) ----------------------------------------------------------------

SVG_TAGS = frozenset({"svg", "g", "rect", "path", "ellipse", "circle", "line", "polyline", "polygon"})
SVG_ATTRIBUTES = frozenset(
    {
        "viewBox", "width", "height", "x", "y", "cx", "cy", "r", "rx", "ry", "x1", "y1", "x2", "y2", "d", "points",
        "fill", "fill-rule", "fill-opacity", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin",
        "stroke-opacity", "opacity", "class",
    }
)  # fmt: skip
# Style properties RDKit writes, turned into the presentation attributes of the same name.
_STYLE_PROPERTIES = SVG_ATTRIBUTES & {
    "fill", "fill-rule", "fill-opacity", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin",
    "stroke-opacity", "opacity",
}  # fmt: skip


@functools.cache
def _rdkit() -> Any:
    """The RDKit Chem module with its stderr logging off, or None when RDKit is not installed."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        return None
    logger: Any = RDLogger  # the stubs lack DisableLog
    logger.DisableLog("rdApp.*")
    return Chem


def rdkit_available() -> bool:
    return _rdkit() is not None


def check_smiles(smiles: str) -> bool | None:
    """Whether RDKit reads `smiles` as a molecule; None when RDKit is not installed."""
    chem = _rdkit()
    if chem is None:
        return None
    if not smiles.strip():
        return False
    try:
        return chem.MolFromSmiles(smiles) is not None
    except Exception:  # RDKit raises on some inputs instead of returning None
        return False


def _styles_as_attributes(el: Any) -> None:
    style = el.attrib.pop("style", None)
    if not style:
        return
    for declaration in style.split(";"):
        name, _, value = declaration.partition(":")
        name, value = name.strip(), value.strip()
        if name in _STYLE_PROPERTIES and value and name not in el.attrib:
            el.set(name, value)


def smiles_svg(smiles: str, size: tuple[int, int] = (240, 180)) -> str | None:
    """An inline SVG drawing of the molecule, rebuilt from an allow-list; None without RDKit or for bad SMILES."""
    chem = _rdkit()
    if chem is None or not check_smiles(smiles):
        return None
    from rdkit.Chem.Draw import rdMolDraw2D

    try:
        mol = chem.MolFromSmiles(smiles)
        drawer = rdMolDraw2D.MolDraw2DSVG(*size)
        drawer.DrawMolecule(mol)
        drawer.FinishDrawing()
        text = drawer.GetDrawingText()
    except Exception:
        return None
    text = re.sub(r"^<\?xml[^>]*\?>", "", text.lstrip())
    try:
        root = _parse_xml(text)
        for el in root.iter():
            if isinstance(el.tag, str):
                _styles_as_attributes(el)
        out: list[str] = []
        _rebuild_svg(root, out)
    except NotationError:
        return None
    return "".join(out)


def _rebuild_svg(root: Any, out: list[str]) -> None:
    """The SVG from the allow-list, leaving out what it does not know (comments, metadata, text)."""
    name = _local(root.tag)
    if name not in SVG_TAGS:
        return
    attrs = []
    for key, value in root.attrib.items():
        local = _local(key)
        if local in SVG_ATTRIBUTES and _SAFE_VALUE.fullmatch(value):
            attrs.append(f' {local}="{html.escape(value, quote=True)}"')
    extra = ' role="img"' if name == "svg" else ""
    out.append(f"<{name}{''.join(attrs)}{extra}>")
    for child in root:
        if isinstance(child.tag, str):
            _rebuild_svg(child, out)
    out.append(f"</{name}>")


# --- music (music21, optional) ------------------------------------------------------------------

_UNIT_OR_METER = re.compile(r"(?m)^[ \t]*[LM]:")
_KEY_FIELD = re.compile(r"(?m)^[ \t]*K:")


@functools.cache
def _music21_abc() -> Any:
    try:
        from music21 import converter
    except ImportError:
        return None
    return converter


def music21_available() -> bool:
    return _music21_abc() is not None


def check_abc(abc: str) -> bool | None:
    """Whether music21 reads `abc` as a tune (a K: field, then at least one note); None without music21.

    ABC's default unit note length is 1/8 when a tune gives neither `L:` nor `M:`; music21 wants one
    of them, so `L:1/8` is put before the `K:` line for the check only (the ABC itself is unchanged).
    """
    converter = _music21_abc()
    if converter is None:
        return None
    key = _KEY_FIELD.search(abc)
    if key is None:  # every tune's header ends with its K: field
        return False
    text = abc if _UNIT_OR_METER.search(abc) else abc[: key.start()] + "L:1/8\n" + abc[key.start() :]
    try:
        score = converter.parseData(text, format="abc")
        return any(True for _ in score.recurse().notes)
    except Exception:  # music21 raises many kinds of error on malformed input
        return False
