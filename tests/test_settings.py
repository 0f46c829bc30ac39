"""Defaults from the environment and docparse.toml, `docparse config`, `docparse schema`, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from tests.test_cli import FIXTURE_01, SAMPLE, assert_one_line_error, run_cli


def _config_lines(out: str) -> dict[str, str]:
    """`docparse config` output: option -> 'value  # source'."""
    lines = {}
    for line in out.splitlines():
        body = line.removeprefix("# ")
        if " = " in body and not line.startswith("# precedence"):
            key, rest = body.split(" = ", 1)
            lines[key.strip()] = " ".join(rest.split())
    return lines


def test_precedence_flag_over_environment_over_file_over_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "docparse.toml").write_text('model = "from-file"\nmax_new_tokens = 64\nno-merge = true\nto = "html"\n')
    user = tmp_path / "user.toml"
    user.write_text('max-new-tokens = 32\nconcurrency = 3\nto = "md"\n')
    monkeypatch.setenv("DOCPARSE_CONFIG", str(user))
    monkeypatch.chdir(project / "sub")  # the project's file is found from a folder below it
    monkeypatch.setenv("DOCPARSE_ENGINE", "openai")
    code, out, _ = run_cli(["config", "--to", "json"], capsys)
    assert code == 0
    lines = _config_lines(out)
    here = project / "docparse.toml"
    assert lines["to"] == '"json" # flag'
    assert lines["engine"] == '"openai" # environment DOCPARSE_ENGINE'
    assert lines["model"] == f'"from-file" # file {here}'
    assert lines["max-new-tokens"] == f"64 # file {here}"  # the project's file beats the user's
    assert lines["concurrency"] == f"3 # file {user}"
    assert lines["no-merge"] == f"true # file {here}"
    assert lines["max-retries"] == "3 # default"
    monkeypatch.setenv("DOCPARSE_MODEL", "from-env")
    code, out, _ = run_cli(["config"], capsys)
    assert _config_lines(out)["model"] == '"from-env" # environment DOCPARSE_MODEL'
    code, out, _ = run_cli(["config", "--model", "from-flag"], capsys)
    assert _config_lines(out)["model"] == '"from-flag" # flag'


def test_a_file_sets_the_options_of_a_real_run(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = {"device": "cpu", "dtype": "float32", "max-new-tokens": 6, "max-retries": 0, "to": "json"}
    lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    (tmp_path / "docparse.toml").write_text("\n".join([*lines, 'model = "no-such-model-folder/"']) + "\n")
    monkeypatch.setenv("DOCPARSE_MODEL", str(tiny_model_dir))  # the environment beats the file's model
    code, out, err = run_cli([str(SAMPLE), "-q"], capsys)
    assert code == 0, err
    doc = json.loads(out)  # `to` from the file
    assert doc["metadata"]["model"] == str(tiny_model_dir) and doc["metadata"]["max_new_tokens"] == 6
    code, out, _ = run_cli(["render", str(FIXTURE_01), "-q"], capsys)  # render takes the file's `to` too
    assert code == 0 and json.loads(out)["pages"]
    code, out, _ = run_cli(["render", str(FIXTURE_01), "-q", "--to", "md"], capsys)
    assert code == 0 and out.lstrip().startswith("#")


def test_an_unknown_key_in_the_file_is_a_usage_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docparse.toml").write_text("max-new-token = 5\n")
    code, out, err = run_cli([str(SAMPLE)], capsys)
    assert code == 2 and out == ""
    assert_one_line_error(err)
    assert "docparse.toml: unknown option 'max-new-token' (did you mean 'max-new-tokens'?)" in err
    (tmp_path / "docparse.toml").write_text("model = \n")
    code, _, err = run_cli(["render", str(FIXTURE_01)], capsys)
    assert code == 2 and "not valid TOML" in err


def test_config_does_not_show_a_password(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCPARSE_PASSWORD", "s3cret")
    code, out, _ = run_cli(["config"], capsys)
    assert code == 0 and "s3cret" not in out and "password" in out


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["schema"], capsys)
    shipped = resources.files("docparse").joinpath("schema/document.schema.json").read_text(encoding="utf-8")
    assert code == 0 and json.loads(out) == json.loads(shipped)
    assert json.loads(out)["$schema"].endswith("2020-12/schema")


def test_shell_completion_is_offered_and_completes_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert "--install-completion" in out and "--show-completion" in out
    code, out, _ = run_cli(["--show-completion", "bash"], capsys)
    assert code == 0 and "_DOCPARSE_COMPLETE" in out and "complete " in out
    env = {**os.environ, "_DOCPARSE_COMPLETE": "complete_bash", "COMP_WORDS": "docparse --max-new", "COMP_CWORD": "1"}
    proc = subprocess.run([sys.executable, "-m", "docparse"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["--max-new-tokens"], proc.stderr
