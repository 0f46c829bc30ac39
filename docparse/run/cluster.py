"""The batch on a Ray cluster (--ray): pages rendered in tasks, answered by engine actors, assembled in the driver.

The driver (this process) opens each input to list its pages and hash it, and rebuilds from the
page cache every page it can, as the local scheduler does. Every other page is rendered by a Ray
task on any CPU of the cluster (the task and the actor are in docparse.run.cluster_workers); its
image stays in the object store and goes straight to an engine actor, which holds whatever
docparse.engines.open.open_engine gives (or `engine_factory`) and answers batches through the retry
ladder (docparse.run.pages.answer_pages). The driver hands each call the answers its cache
already holds for those pages and stores the new ones the call returns, so the cache stays with
the driver and is keyed as in a local run. Pages are batched in input order, as locally (the
same inputs make the same batches, so the same answers), each actor gets up to its engine's
`concurrency` calls at once, and at most the actors' `batch_size * (concurrency + 1)` pages are
in flight: the driver's memory is bounded however large the corpus. A document is assembled and
handed to `events` as its last page arrives. An actor that dies (killed, out of memory, its node
gone) loses no page: its calls go back to the queue and a new actor replaces it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from docparse.config import ClusterOptions, ConvertOptions
from docparse.engines.base import Answer
from docparse.errors import DocparseError, EngineError, ModelUnavailableError, UsageError
from docparse.inputs.rasterize import InputDocument
from docparse.run.cache import PageCache, RasterInfo, page_prefix, raster_key
from docparse.run.cluster_workers import EngineFactory, EngineWorker, render_task
from docparse.run.events import Event
from docparse.run.pages import (
    Documents,
    PageResult,
    first_key,
    open_source,
    replay_page,
)
from docparse.run.status import unrendered_page

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")
# Threads of an actor: its engine's concurrency (calls at once) is capped here, plus one for load/close.
MAX_CALLS_PER_ACTOR = 64


def check_paths(paths: Sequence[Path]) -> None:
    """Inputs and outputs must be paths on a filesystem every node sees: a URL is a usage error."""
    for path in paths:
        if _URL.match(str(path)):
            raise UsageError(
                f"{path}: --ray reads inputs and writes -o on a filesystem every node mounts (NFS, a cluster "
                "filesystem); URLs such as s3:// are not supported: mount the bucket or copy the files"
            )


def connect(address: str) -> None:
    """Join the cluster `address` names ("auto", "local", ray://host:port, host:port), unless already joined.

    The workers import the docparse this process runs (shipped to them), so every node runs the same code.
    Raises ModelUnavailableError when no cluster can be reached, UsageError when ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'docparse[ray]'") from None
    if ray.is_initialized():
        return
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the docparse package folder
    target = (os.environ.get("RAY_ADDRESS") or "auto") if address == "auto" else address
    extra: dict[str, Any] = {"include_dashboard": False} if target == "local" else {}
    try:
        ray.init(address=target, runtime_env={"py_modules": [package]}, log_to_driver=False,
                 logging_level=logging.ERROR, **extra)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailableError(f"--ray {address}: no Ray cluster could be reached ({message})") from None


@dataclass(slots=True)
class _Actor:
    handle: Any
    loading: Any  # the ObjectRef of load(), None once it is ready
    size: int = 1
    parallel: int = 1
    calls: int = 0


@dataclass(slots=True)
class _Render:
    index: int
    number: int
    sha: str
    started: float
    head: Any
    work: Any
    found: dict[str, Answer] = field(default_factory=dict)


@dataclass(slots=True)
class _Todo:
    seq: int  # the page's place in the run: batches are cut in this order
    index: int
    work: Any
    held: dict[str, Answer]


def placement(cluster: ClusterOptions, gpus_in_cluster: float) -> tuple[int, float]:
    """How many engine actors, and GPUs each: by default one per GPU, or one CPU worker on a cluster without."""
    gpus = cluster.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if gpus_in_cluster >= 1 else 0.0
    if gpus > gpus_in_cluster:
        raise UsageError(f"--gpus-per-worker {gpus:g}: the cluster has {gpus_in_cluster:g} GPUs")
    workers = cluster.workers
    if workers is None:
        workers = max(1, int(gpus_in_cluster // gpus)) if gpus > 0 else 1
    return workers, gpus


def run_cluster(
    sources: Sequence[Path],
    options: ConvertOptions,
    cluster: ClusterOptions,
    *,
    cache: PageCache | None = None,
    events: Callable[[Event], None] | None = None,
    stop: threading.Event | None = None,
    info: Callable[[str], None] | None = None,
    engine_factory: EngineFactory | None = None,
) -> bool:
    """Convert every input on the Ray cluster joined by `connect`, as docparse.run.scheduler.run_batch does here:
    the same events, the same stop semantics, the same page cache. Returns True when the run was stopped.
    Raises ModelUnavailableError when the engine cannot be had, EngineError when actors keep dying."""
    import ray
    from ray.exceptions import RayActorError, RayError, RayTaskError

    stop = stop or threading.Event()
    say = info or (lambda _text: None)
    if options.keep_raw is not None:  # the actors write it: the same folder whatever their working directory
        options = replace(options, keep_raw=options.keep_raw.absolute())
    model_name = options.model.model
    render: Any = ray.remote(num_returns=2)(render_task)
    workers, gpus = placement(cluster, float(ray.cluster_resources().get("GPU", 0)))
    actor_class: Any = ray.remote(EngineWorker).options(num_cpus=1 if gpus == 0 else 0, num_gpus=gpus,
                                                   max_concurrency=MAX_CALLS_PER_ACTOR + 1, max_restarts=0)  # fmt: skip
    options_ref = ray.put(options)
    actors: list[_Actor] = []
    deaths = 0
    model_id: list[str] = []
    docs = Documents(options, events or (lambda _event: None), lambda: model_id[0] if model_id else None)
    renders: deque[_Render] = deque()
    pending: list[_Todo] = []
    calls: dict[Any, tuple[_Actor, list[_Todo]]] = {}
    order = itertools.count()
    render_ahead = max(4, 2 * int(ray.cluster_resources().get("CPU", 1)))

    def start_actor() -> None:
        handle = actor_class.remote(options_ref, engine_factory)
        actors.append(_Actor(handle, handle.load.remote()))

    def window() -> int:
        return max(render_ahead, sum(a.size * (a.parallel + 1) for a in actors if a.loading is None))

    def in_flight() -> int:
        return len(renders) + len(pending) + sum(len(batch) for _, batch in calls.values())

    def pages() -> Iterator[tuple[int, Path, str, int, InputDocument]]:
        for index, path in enumerate(sources):
            started = time.monotonic()
            try:
                doc, sha = open_source(path, options)
            except DocparseError as exc:
                docs.failed(index, str(path), exc, started)
                continue
            with doc:  # open while its pages are handed over: a page replayed from the cache reads its text layer
                docs.opened(index, path, sha, doc.page_count, list(doc.page_numbers), started, doc.notes)
                for number in doc.page_numbers:
                    yield index, path, sha, number, doc
            docs.ended(index)

    def feed(todo: Iterator[tuple[int, Path, str, int, InputDocument]]) -> bool:
        """Hand over pages until the window is full; False once there are no more."""
        while in_flight() < window():
            item = next(todo, None)
            if item is None:
                return False
            index, path, sha, number, doc = item
            began = time.monotonic()
            found: dict[str, Answer] = {}
            if cache is not None:
                page = replay_page(cache, options, sha, number, str(path), model_name, found)
                if page is not None:
                    docs.add(index, PageResult(page, 0, time.monotonic() - began, doc.text_layer(number)))
                    continue
            head, work = render.remote(os.path.abspath(path), str(path), options_ref, sha, number)
            renders.append(_Render(index, number, sha, began, head, work, found))
        return True

    def rendered(job: _Render) -> None:
        try:
            done, raster = ray.get(job.head)
        except RayError as exc:  # a crash while rendering (retried by Ray first): this page fails, the rest go on
            where = f"{docs.docs[job.index].path}: page {job.number}"
            done = PageResult(
                unrendered_page(job.number, f"{where}: cannot render ({_first_line(_cause(exc))})"), 0, 0.0
            )
            raster = None
        if cache is not None and raster is not None:
            cache.put_raster(raster_key(options, job.sha, job.number), raster)
        if done is not None:
            docs.add(job.index, done if raster is not None else replace(done, seconds=time.monotonic() - job.started))
            return
        pending.append(_Todo(next(order), job.index, job.work, _held(cache, options, job, raster)))

    def answered(ref: Any) -> None:
        actor, batch = calls.pop(ref)
        actor.calls -= 1
        try:
            results, new, actor.size, actor.parallel = ray.get(ref)
        except RayActorError as exc:
            requeue(batch)
            replace_actor(actor, exc)
            return
        except RayTaskError as exc:
            raise _cause(exc) from None
        if cache is not None:
            for key, answer in new.items():
                cache.put_answer(key, answer)
        for todo, result in zip(batch, results, strict=True):
            docs.add(todo.index, result)

    def requeue(batch: list[_Todo]) -> None:
        """Pages of a lost call go back in their place: the same pages make the same batches on another actor."""
        pending.extend(batch)
        pending.sort(key=lambda todo: todo.seq)

    def replace_actor(actor: _Actor, exc: Exception) -> None:
        nonlocal deaths
        if actor not in actors:
            return
        actors.remove(actor)
        with contextlib.suppress(Exception):  # an actor only unreachable for now must not come back to answer
            ray.kill(actor.handle)
        for ref in [r for r, (a, _) in calls.items() if a is actor]:
            requeue(calls.pop(ref)[1])
        deaths += 1
        if deaths > 2 * workers + 2:
            raise EngineError(f"engine actors keep dying ({deaths} so far; last: {_first_line(exc)})")
        say(f"an engine actor died ({_first_line(exc)}): starting another")
        start_actor()

    def loaded(actor: _Actor) -> None:
        try:
            name, actor.size, actor.parallel = ray.get(actor.loading)
        except RayActorError as exc:
            replace_actor(actor, exc)
            return
        except RayTaskError as exc:
            raise _cause(exc) from None
        actor.loading = None
        if not model_id:
            model_id.append(name)
            say(f"{len(actors)} engine actors on the cluster, batch size {actor.size}, {actor.parallel} calls each")

    def dispatch(no_more: bool) -> None:
        for actor in actors:
            if actor.loading is not None:
                continue
            size, parallel = max(1, actor.size), min(MAX_CALLS_PER_ACTOR, max(1, actor.parallel))
            while pending and actor.calls < parallel and (len(pending) >= size or no_more):
                batch, pending[:] = pending[:size], pending[size:]
                held: dict[str, Answer] = {}
                for todo in batch:
                    held.update(todo.held)
                ref = actor.handle.answer.remote(held, *[todo.work for todo in batch])
                calls[ref] = (actor, batch)
                actor.calls += 1

    todo = pages()
    more = True
    try:
        while True:
            halted = stop.is_set()
            if halted:
                more = False
                renders.clear()
                pending.clear()
            else:
                more = more and feed(todo)
            while renders and ray.wait([renders[0].head], timeout=0)[0]:
                rendered(renders.popleft())
            if pending and not actors:
                say(f"starting {workers} engine actors ({options.engine}, {gpus:g} GPUs each) ...")
                for _ in range(workers):
                    start_actor()
            dispatch(no_more=not more and not renders)
            if not more and not renders and not pending and not calls:
                break
            waiting = [a.loading for a in actors if a.loading is not None] + list(calls)
            if renders:
                waiting.append(renders[0].head)
            if not waiting:
                continue
            ready, _ = ray.wait(waiting, num_returns=1, timeout=0.2)
            for ref in ready:
                if ref in calls:
                    answered(ref)
                for actor in [a for a in actors if a.loading is not None and a.loading == ref]:
                    loaded(actor)
        docs.interrupt_all()
    finally:
        for actor in actors:
            ray.kill(actor.handle)
    return halted


def _held(
    cache: PageCache | None, options: ConvertOptions, job: _Render, raster: RasterInfo | None
) -> dict[str, Answer]:
    """The answers the cache holds for a page about to go to an actor: its first answer, and any retries."""
    held = dict(job.found)
    if cache is not None and raster is not None:
        key = first_key(page_prefix(options, job.sha, job.number, raster.turn), options, raster.image_size)
        first = cache.get_answer(key)
        if first is not None:
            held[key] = first
    return held


def _cause(exc: Any) -> BaseException:
    """What a Ray task raised, as it was raised (a DocparseError keeps its exit code)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


__all__ = ["check_paths", "connect", "placement", "run_cluster"]
