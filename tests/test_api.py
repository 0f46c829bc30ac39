"""The Python API as a caller meets it: typed keywords, a misspelled one named, errors in its terms, no bars."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest

import docparse
from docparse.errors import UsageError
from docparse.keywords import ConvertKeywords, option_names
from tests.paths import REPO

SAMPLE = REPO / "samples" / "report.pdf"


def test_every_option_is_a_typed_keyword() -> None:
    assert set(typing.get_type_hints(ConvertKeywords)) == set(option_names())
    assert not any(
        p.kind is p.VAR_KEYWORD and p.annotation in ("Any", typing.Any)
        for p in inspect.signature(docparse.convert).parameters.values()
    )


def test_a_misspelled_option_names_the_right_one() -> None:
    with pytest.raises(TypeError, match=r"unknown option 'page'; did you mean 'pages'\?"):
        docparse.convert(SAMPLE, page="1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="max_new_tokens"):
        docparse.convert(SAMPLE, max_tokens=5)  # type: ignore[call-arg]


def test_errors_speak_in_keywords_not_flags() -> None:
    with pytest.raises(UsageError) as info:
        docparse.convert(SAMPLE, pages="9")
    assert str(info.value).startswith("pages= asks for page 9") and "--" not in str(info.value)
    with pytest.raises(UsageError) as info:
        docparse.convert(SAMPLE, min_pixels=10**7)
    assert "min_pixels=" in str(info.value) and "--min-pixels" not in str(info.value)


def test_convert_is_quiet_by_default(tiny_model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    doc = docparse.convert(
        SAMPLE, model=str(tiny_model_dir), device="cpu", dtype="float32", max_new_tokens=4, max_retries=0
    )
    assert len(doc.pages) == 1
    out, err = capfd.readouterr()
    assert out == "" and "Loading weights" not in err, err
