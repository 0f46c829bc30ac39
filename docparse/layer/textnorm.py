"""Text reduced to comparable tokens for the text-layer check: NFKC, hyphenation, Arabic, CJK, LaTeX printed.

See docparse.layer.agreement for what is compared and why; these functions are pure and cached.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

_DROP = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u0640"), None)
HYPHENS = "-\u2010\u2011"
_NO_HYPHENS = dict.fromkeys(map(ord, HYPHENS), None)
_LINE_HYPHEN = re.compile(rf"(\w)[{HYPHENS}]\s+(?=\w)")
_LAM_ALEF = re.compile("\u0644([\u0627\u0623\u0625\u0622])")
_NO_SPACE_SCRIPTS = re.compile(
    r"[\u0e00-\u0e7f\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)
_GREEK = {
    (name.split()[-1].lower() if "SMALL" in name else name.split()[-1].capitalize()): chr(code)
    for code in (*range(0x391, 0x3AA), *range(0x3B1, 0x3CA))
    if (name := unicodedata.name(chr(code), "")) and "FINAL" not in name
}
_LATEX_SYMBOLS = {
    **_GREEK,
    "varepsilon": "ε", "vartheta": "θ", "varphi": "φ", "varrho": "ρ", "ell": "ℓ", "partial": "∂",
    "nabla": "∇", "infty": "∞", "int": "∫", "iint": "∬", "oint": "∮", "sum": "∑", "prod": "∏",
    "sqrt": "√", "pm": "±", "mp": "∓", "times": "×", "cdot": "·", "div": "÷", "leq": "≤", "le": "≤",
    "geq": "≥", "ge": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "equiv": "≡", "sim": "∼", "propto": "∝",
    "in": "∈", "notin": "∉", "subset": "⊂", "subseteq": "⊆", "cup": "∪", "cap": "∩", "forall": "∀",
    "exists": "∃", "to": "→", "rightarrow": "→", "leftarrow": "←", "Rightarrow": "⇒", "mapsto": "↦",
    "emptyset": "∅", "cdots": "⋯", "ldots": "…", "dots": "…", "circ": "∘", "prime": "′", "angle": "∠",
}  # fmt: skip
_LATEX_COMMAND = re.compile(r"\\([A-Za-z]+)\*?|\\(.)")
_LATEX_ENV = re.compile(r"\\(?:begin|end)\{[^}]*\}")


def print_latex(latex: str) -> str:
    """LaTeX as it prints, roughly: symbols as their characters, other commands, braces, ^ and _ gone."""
    latex = _LATEX_ENV.sub(" ", latex)

    def command(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return " " if match.group(2) in "\\, ;:!" else match.group(2)
        return _LATEX_SYMBOLS.get(name, " ")

    # A superscript or subscript prints beside its base ("x^{2}" as "x2"); alignment marks print nothing.
    return _LATEX_COMMAND.sub(command, latex).translate(str.maketrans("&~$", "   ", "{}^_"))


_ARABIC_MARKS = dict.fromkeys([*range(0x064B, 0x0660), 0x0670], None)
# A token: letters and digits, with the marks of scripts that write vowels as marks.
_TOKEN = re.compile(r"(?:[^\W_]|[\u0300-\u036f\u0483-\u0489\u0900-\u0dff\u0e00-\u0eff\u1ab0-\u1aff\u20d0-\u20ff])+")
_RTL = re.compile(r"[\u0590-\u08ff]")
_RTL_OR_NOT = re.compile(r"[\u0590-\u08ff]+|[^\u0590-\u08ff]+")
_LTR_LETTER = re.compile(r"[^\W\d_\u0590-\u08ff]")
_NO_SPACE_SPLIT = re.compile(_NO_SPACE_SCRIPTS.pattern + "|" + _NO_SPACE_SCRIPTS.pattern.replace("[", "[^", 1) + "+")


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_DROP).casefold().translate(_ARABIC_MARKS)
    return _LAM_ALEF.sub(r"\1" + "\u0644", text)


@functools.lru_cache(maxsize=1 << 16)
def _tokens(text: str) -> tuple[str, ...]:
    text = _LINE_HYPHEN.sub(r"\1", _clean(text)).translate(_NO_HYPHENS)
    out: list[str] = []
    for token in _TOKEN.findall(text):
        if _NO_SPACE_SCRIPTS.search(token):
            out.extend(_NO_SPACE_SPLIT.findall(token))
        elif _RTL.search(token) and _LTR_LETTER.search(token):
            # Right-to-left and left-to-right letters never share a word ("وPython" is two: layers split it).
            out.extend(_RTL_OR_NOT.findall(token))
        else:
            out.append(token)
    return tuple(out)


def tokens(text: str) -> list[str]:
    """The comparable tokens of a text (see the module docstring); `$...$` is read as LaTeX."""
    if "$" in text:
        text = re.sub(r"\$([^$]*)\$", lambda m: print_latex(m.group(1)), text)
    return list(_tokens(text))


def formula_chars(text: str) -> list[str]:
    """A formula as a bag of characters: letters, digits and math symbols of its printed form."""
    printed = _clean(print_latex(text))
    return [c for c in printed if unicodedata.category(c)[0] in "LNM" or unicodedata.category(c) == "Sm"]


def join_lines(texts: Iterable[str]) -> str:
    """Lines of one paragraph: a word hyphenated at a line end whole again, lines joined by a space."""
    out = ""
    for text in texts:
        text = " ".join(text.split())
        if not out:
            out = text
        elif out[-1:] in HYPHENS and out[-2:-1].isalpha() and text[:1].islower():
            out = out[:-1] + text
        elif text:
            out += " " + text
    return out
