"""--ray on a real local Ray cluster (127.0.0.1, 3 CPUs) with the tiny random Qwen2.5-VL: the same outputs as a
local batch, an engine actor killed mid-run, a driver killed with SIGKILL and resumed from the page cache."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docparse.api import write
from docparse.config import ClusterOptions, ConvertOptions
from docparse.engines.base import Engine
from docparse.errors import EXIT_USAGE
from docparse.keywords import convert_options
from docparse.run.cache import PageCache
from docparse.run.events import Event, FileDone, PageDone
from tests.paths import PDF_FIXTURES, REPO, shared_file
from tests.requires import unavailable
from tests.test_batch_e2e import kill_after_answers, many_pages

SAMPLE = REPO / "samples" / "report.pdf"
pytestmark = pytest.mark.slow
MODEL_ARGS = ["--device", "cpu", "--dtype", "float32", "--max-new-tokens", "12", "--max-pixels", "200704"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A Ray cluster of this machine, small: 3 logical CPUs, no dashboard; its address for other drivers."""
    try:
        import ray
    except ImportError:
        unavailable("ray is not installed", "install docparse[ray] (.ci/run does)")
    import docparse

    ray.init(address="local", num_cpus=3, include_dashboard=False, object_store_memory=200 * 2**20,
             runtime_env={"py_modules": [os.path.dirname(docparse.__file__)]}, log_to_driver=False)  # fmt: skip
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def command(args: list[str], model: Path, cache: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "RAY_ADDRESS"}
    env.update({"HF_HUB_OFFLINE": "1", "DOCPARSE_CACHE_DIR": str(cache)})
    return [sys.executable, "-m", "docparse", *args, "--model", str(model), *MODEL_ARGS], env


def docparse(args: list[str], model: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    argv, env = command(args, model, cache)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)


def totals(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return dict(data["totals"])


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_fixtures_on_the_cluster_are_written_byte_for_byte_as_a_local_batch_writes_them(
    cluster: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    shared_file("fixtures", "pdfs", "MANIFEST.tsv")
    docs = tmp_path / "docs"
    shutil.copytree(PDF_FIXTURES, docs, ignore=shutil.ignore_patterns("groundtruth", "*.tsv"))
    shutil.copy(SAMPLE, docs / "report.pdf")
    common = [str(docs), "--max-retries", "1", "--images", "none"]  # Markdown: no timings in it
    local = docparse([*common, "-o", str(tmp_path / "local"), "--report", str(tmp_path / "local.json")],
                     tiny_model_dir, tmp_path / "c1")  # fmt: skip
    remote = docparse([*common, "-o", str(tmp_path / "ray"), "--report", str(tmp_path / "ray.json"), "--ray", cluster,
                       "--workers", "2"], tiny_model_dir, tmp_path / "c2")  # fmt: skip
    assert remote.returncode == local.returncode == 1, remote.stderr  # the empty and the encrypted PDFs fail
    assert "Traceback" not in remote.stderr
    assert all(line.startswith("docparse: ") for line in remote.stderr.splitlines()), remote.stderr
    written = outputs(tmp_path / "ray")
    assert len(written) == 16 and written == outputs(tmp_path / "local")
    for key in ("files", "converted", "failed", "pages", "pages_failed", "model_calls"):
        assert totals(tmp_path / "ray.json")[key] == totals(tmp_path / "local.json")[key], key

    again = docparse([*common, "-o", str(tmp_path / "ray"), "--report", str(tmp_path / "again.json"), "--ray", cluster],
                     tiny_model_dir, tmp_path / "c2")  # fmt: skip
    assert again.returncode == 1 and "engine actors" not in again.stderr  # all from the cache: no actor started
    assert totals(tmp_path / "again.json")["model_calls"] == 0 and outputs(tmp_path / "ray") == written


class _PidRecordingEngine:
    """Opens the run's engine as docparse does, and leaves the actor's pid in `folder` for the test to kill."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, options: ConvertOptions) -> Engine:
        from docparse.engines.open import open_engine

        (self.folder / str(os.getpid())).touch()
        return open_engine(options)


def test_an_engine_actor_killed_mid_run_loses_no_page(cluster: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    import cloudpickle

    from docparse.run.cluster import run_cluster
    from docparse.run.scheduler import run_batch

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    pids = tmp_path / "pids"
    pids.mkdir()
    sources = [many_pages(tmp_path / "long.pdf", 8), SAMPLE]
    options = convert_options(model=str(tiny_model_dir), device="cpu", dtype="float32", max_new_tokens=12,
                              max_pixels=200704, batch_size=1, max_retries=0)  # fmt: skip
    done: dict[str, FileDone] = {}
    answered: list[PageDone] = []

    def on_event(event: Event) -> None:
        if isinstance(event, FileDone):
            done[Path(event.source).name] = event
        elif isinstance(event, PageDone) and event.model_calls:
            answered.append(event)
            if len(answered) == 2:  # the engine's first actor, mid-run: killed as the OOM killer would
                (first,) = list(pids.iterdir())
                os.kill(int(first.name), signal.SIGKILL)

    cache = PageCache(tmp_path / "cache")
    run_cluster(sources, options, ClusterOptions(workers=1), cache=cache, events=on_event,
                engine_factory=_PidRecordingEngine(pids))  # fmt: skip
    assert len(list(pids.iterdir())) == 2  # a second actor took over
    assert {name: d.document is not None for name, d in done.items()} == {"long.pdf": True, "report.pdf": True}
    assert len(answered) == 9 and sorted(p.page.number for p in answered if p.source.endswith("long.pdf")) == [
        *range(1, 9)
    ]

    from docparse.engines.open import open_engine

    local: dict[str, FileDone] = {}
    engine = open_engine(options)
    try:
        run_batch(
            sources, options, lambda: engine, events=lambda e: isinstance(e, FileDone) and local.update({e.source: e})
        )
    finally:
        engine.close()
    for d in done.values():
        assert d.document is not None and local[d.source].document is not None
        assert write(d.document, "md") == write(local[d.source].document, "md")  # Markdown: no timings in it


def test_a_driver_killed_with_sigkill_resumes_from_the_page_cache(
    cluster: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    many_pages(docs / "long.pdf", 5)
    shutil.copy(SAMPLE, docs / "short.pdf")
    cache, out = tmp_path / "cache", tmp_path / "out"
    one = ["--batch-size", "1", "--max-retries", "0"]  # one answer a call, and the kill lands between answers
    argv, env = command([str(docs), "-o", str(out), "-q", *one, "--ray", cluster], tiny_model_dir, cache)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    answers = cache / "answers"
    kill_after_answers(proc, answers, 2, seconds=300)
    held = len(list(answers.glob("*/*.json")))
    assert 2 <= held < 6
    assert not (out / "long.md").exists() and not list(out.rglob("*.part"))  # nothing half-written
    rep = tmp_path / "resume.json"
    resumed = docparse([str(docs), "-o", str(out), "--report", str(rep), *one, "--ray", cluster],
                       tiny_model_dir, cache)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert totals(rep)["model_calls"] == 6 - held and totals(rep)["pages_cached"] == held

    fresh = docparse([str(docs), "-o", str(tmp_path / "fresh"), *one], tiny_model_dir, tmp_path / "c2")
    assert fresh.returncode == 0, fresh.stderr
    assert outputs(out) == outputs(tmp_path / "fresh")


def test_urls_and_placement_options_without_ray_are_usage_errors(tmp_path: Path) -> None:
    for args in (["s3://bucket/docs", "-o", str(tmp_path / "out"), "--ray", "auto"],
                 [str(SAMPLE), "-o", "gs://bucket/out.md", "--ray", "local"],
                 [str(SAMPLE), "--workers", "2"]):  # fmt: skip
        proc = subprocess.run([sys.executable, "-m", "docparse", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == EXIT_USAGE, proc.stderr
        assert proc.stderr.startswith("docparse: error: ") and len(proc.stderr.splitlines()) == 1


def test_a_stopped_cluster_run_finishes_its_calls_in_flight_and_reports_the_rest_interrupted(
    cluster: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import threading

    from docparse.run.cluster import run_cluster

    sources = [many_pages(tmp_path / f"doc{i}.pdf", 3) for i in range(4)]
    options = convert_options(model=str(tiny_model_dir), device="cpu", dtype="float32", max_new_tokens=12,
                              max_pixels=200704, batch_size=1, max_retries=0)  # fmt: skip
    stop = threading.Event()
    done: list[FileDone] = []
    pages: list[PageDone] = []

    def on_event(event: Event) -> None:  # as Ctrl-C or --fail-fast do: set `stop` at the first document done
        if isinstance(event, FileDone):
            done.append(event)
            stop.set()
        elif isinstance(event, PageDone):
            pages.append(event)

    cache = PageCache(tmp_path / "cache")
    assert run_cluster(sources, options, ClusterOptions(workers=1), cache=cache, events=on_event, stop=stop)
    assert 2 <= len(done) <= 4 and done[0].document is not None  # an input never opened is not started, as locally
    assert all(d.interrupted and d.document is None for d in done[1:])
    answered = len(pages)
    assert 3 <= answered < 12  # the call in flight finished (and was cached); nothing new was started

    resumed: list[PageDone] = []
    run_cluster(sources, options, ClusterOptions(workers=1), cache=cache,
                events=lambda e: isinstance(e, PageDone) and resumed.append(e))  # fmt: skip
    assert len(resumed) == 12 and sum(p.cached for p in resumed) == answered
