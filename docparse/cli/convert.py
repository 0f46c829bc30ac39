"""The convert command, `docparse INPUT...`: its options checked and turned into records, then the run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from docparse.cli.batch import run_jobs
from docparse.cli.destination import check_output, output_format, output_options, writable_folder
from docparse.cli.engine_options import (
    ApiBaseOption,
    ApiKeyEnvOption,
    AttnOption,
    BatchSizeOption,
    ConcurrencyOption,
    DeviceOption,
    DtypeOption,
    EngineOption,
    GpuMemoryUtilizationOption,
    GpusPerWorkerOption,
    MaxNewTokensOption,
    MaxPixelsOption,
    MinPixelsOption,
    MmprojOption,
    ModelOption,
    PromptOption,
    QuantizeOption,
    QuantOption,
    RayOption,
    RevisionOption,
    ServedModelOption,
    SystemPromptOption,
    TensorParallelOption,
    ThreadsOption,
    TimeoutOption,
    WorkersOption,
)
from docparse.cli.help import PanelCommand
from docparse.cli.options import (
    EXIT_CODES_HELP,
    CacheDirOption,
    ExcludeOption,
    FailFastOption,
    FallbackOption,
    GlobOption,
    ImagesOption,
    InputsArgument,
    KeepFurnitureOption,
    KeepRawOption,
    MaxPageErrorRateOption,
    MaxRetriesOption,
    MinLayerCoverageOption,
    NoCacheOption,
    NoMergeOption,
    OnlineAssetsOption,
    OutputPathOption,
    PageBreaksOption,
    PageMarkersOption,
    PagesOption,
    PageTimeoutOption,
    PasswordOption,
    QuietOption,
    ReportOption,
    SnapBoxesOption,
    ToOption,
    VersionOption,
    command_app,
)
from docparse.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    ClusterOptions,
    parse_batch_size,
)
from docparse.engines.gguf import DEFAULT_QUANT
from docparse.errors import UsageError
from docparse.formats import SUFFIX_FORMATS, Format
from docparse.keywords import ConvertKeywords, convert_options, option_names
from docparse.prompt import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    DEFAULT_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
)
from docparse.run.batch import BatchPolicy

convert_app = command_app(add_completion=True)  # --install-completion / --show-completion (of convert's options)


@convert_app.command(
    cls=PanelCommand,
    help=(
        "Convert PDFs and images (PNG, JPEG, TIFF, WebP, BMP, GIF) to Markdown, HTML or JSON with Qwen2.5-VL. "
        "One file: Markdown goes to stdout unless -o names a file. Folders (walked recursively) and several "
        "inputs: -o names an output folder, where the inputs' tree is mirrored. Model answers are cached per "
        "page, so a re-run resumes where the last one stopped and another output format costs no model call. "
        "Progress and warnings go to stderr. "
        "To re-render saved raw model answers without a model: docparse render --help. "
        "Cache: docparse cache --help."
    ),
    epilog=EXIT_CODES_HELP,
)
def convert(
    inputs: InputsArgument,
    output_text: OutputPathOption = None,
    to: ToOption = None,
    globs: GlobOption = None,
    excludes: ExcludeOption = None,
    pages: PagesOption = None,
    password: PasswordOption = None,
    model: ModelOption = None,
    revision: RevisionOption = None,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    attn: AttnOption = "auto",
    min_pixels: MinPixelsOption = DEFAULT_MIN_PIXELS,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    max_new_tokens: MaxNewTokensOption = DEFAULT_MAX_NEW_TOKENS,
    prompt: PromptOption = DEFAULT_PROMPT,
    system_prompt: SystemPromptOption = DEFAULT_SYSTEM_PROMPT,
    batch_size: BatchSizeOption = "auto",
    keep_raw: KeepRawOption = None,
    keep_furniture: KeepFurnitureOption = False,
    no_merge: NoMergeOption = False,
    page_markers: PageMarkersOption = False,
    page_breaks: PageBreaksOption = False,
    images: ImagesOption = None,
    online_assets: OnlineAssetsOption = False,
    max_retries: MaxRetriesOption = 3,
    page_timeout: PageTimeoutOption = None,
    cache_dir: CacheDirOption = None,
    no_cache: NoCacheOption = False,
    report: ReportOption = None,
    fail_fast: FailFastOption = False,
    max_page_error_rate: MaxPageErrorRateOption = 0.0,
    min_layer_coverage: MinLayerCoverageOption = None,
    fallback: FallbackOption = "none",
    snap_boxes: SnapBoxesOption = False,
    engine: EngineOption = "auto",
    api_base: ApiBaseOption = None,
    api_key_env: ApiKeyEnvOption = None,
    served_model: ServedModelOption = None,
    concurrency: ConcurrencyOption = DEFAULT_CONCURRENCY,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
    ray: RayOption = None,
    workers: WorkersOption = None,
    gpus_per_worker: GpusPerWorkerOption = None,
    quant: QuantOption = DEFAULT_QUANT,
    mmproj: MmprojOption = None,
    threads: ThreadsOption = None,
    quantize: QuantizeOption = None,
    tensor_parallel: TensorParallelOption = 1,
    gpu_memory_utilization: GpuMemoryUtilizationOption = None,
    quiet: QuietOption = False,
    version: VersionOption = False,
) -> int:
    given = dict(locals())  # the parameters by name, as convert_options and WriteOptions name their fields
    from docparse.inputs.plan import check_inputs, into_folder, plan

    check_inputs(inputs)
    cluster = cluster_options(ray, workers, gpus_per_worker, [*inputs, *([Path(output_text)] if output_text else [])])
    batch = len(inputs) > 1 or any(p.is_dir() for p in inputs)
    output = None if output_text is None else Path(output_text)
    if not batch:
        output = into_folder(inputs[0], output_text, to) or output
    if batch:
        if to is None and output is not None and output.suffix.lower() in SUFFIX_FORMATS and not output.is_dir():
            raise UsageError(f"-o {output} looks like a file: folders and several inputs need an output folder")
        fmt: Format = to or "md"
    else:
        fmt = output_format(output, to)
        check_output(output)
    if keep_raw is not None:
        writable_folder(keep_raw, "--keep-raw")
    options = convert_options(engine, **keywords(given))
    write_options = output_options(given, fmt, output)
    if batch:  # --pages applies to each file: pages a shorter one lacks are skipped, with a warning
        options = replace(options, raster=replace(options.raster, skip_missing_pages=True))
    work = plan(inputs, output, fmt, globs or (), excludes or ())
    if batch and not work.jobs:
        raise UsageError(f"nothing to convert in {', '.join(map(str, inputs))} (no PDF or image files matched)")
    if batch and output is not None:
        writable_folder(output, "-o")
    if keep_raw is not None:
        stems: dict[str, Path] = {}
        for job in work.jobs:
            other = stems.setdefault(job.source.stem, job.source)
            if other != job.source:
                raise UsageError(
                    f"--keep-raw: {other} and {job.source} would save their raw answers under the same "
                    f"name ({job.source.stem}.page-N.html); convert them in separate runs"
                )
    if report is not None:
        writable_folder(report.parent, "--report")
    policy = BatchPolicy(fail_fast, max_page_error_rate, min_layer_coverage)
    return run_jobs(work.jobs, options, write_options, batch=batch, quiet=quiet, policy=policy,
                    root=output if batch else None, cluster=cluster, warnings=work.warnings, cache_dir=cache_dir,
                    no_cache=no_cache, report=report)  # fmt: skip


def keywords(given: Mapping[str, Any]) -> ConvertKeywords:
    """convert_options' keywords from the command's parameters by name (--no-merge is merge=False, and
    --batch-size is parsed)."""
    names = set(option_names())
    chosen = {k: v for k, v in given.items() if k in names}
    return cast(
        ConvertKeywords, chosen | {"batch_size": parse_batch_size(given["batch_size"]), "merge": not given["no_merge"]}
    )


def cluster_options(
    address: str | None, workers: int | None, gpus_per_worker: float | None, paths: Sequence[Path]
) -> ClusterOptions | None:
    """--ray and its placement options, checked: None without --ray (where the others are an error)."""
    if address is None:
        if workers is not None or gpus_per_worker is not None:
            raise UsageError("--workers and --gpus-per-worker only apply with --ray")
        return None
    from docparse.run.cluster import check_paths

    check_paths(paths)
    return ClusterOptions(address=address, workers=workers, gpus_per_worker=gpus_per_worker)
