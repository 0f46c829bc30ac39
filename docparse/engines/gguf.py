"""GGUF models for --engine llamacpp: telling a GGUF model from a checkpoint, picking its files, fetching them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from docparse.errors import ModelUnavailableError, UsageError
from docparse.prompt import DEFAULT_MODEL

DEFAULT_QUANT = "Q4_K_M"
# The published GGUF release of the default model (llama.cpp's own docs and tests use it).
DEFAULT_GGUF_REPO = "ggml-org/Qwen2.5-VL-3B-Instruct-GGUF"
# When a repository holds several vision projectors and none has the --quant in its name: the most precise.
_MMPROJ_PREFERENCE = ("f32", "f16", "bf16", "q8_0")
GGUF_MAGIC = b"GGUF"

_WAYS_OUT = (
    "use local files with --model MODEL.gguf --mmproj MMPROJ.gguf, or fill the Hugging Face cache first "
    "(`hf download REPO FILE...`) and set HF_HUB_OFFLINE=1"
)


@dataclass(frozen=True, slots=True)
class GGUFFiles:
    """The two files llama.cpp loads: the language model and the vision projector (mmproj)."""

    model: Path
    mmproj: Path


def hub_name(model: str) -> str:
    """The GGUF repository or file `--model` means for llama.cpp: docparse's default model is its GGUF release."""
    return DEFAULT_GGUF_REPO if model == DEFAULT_MODEL else model


def is_gguf_model(model: str, mmproj: str | None = None) -> bool:
    """True when `model` names a GGUF model: a .gguf file (or any file starting with GGUF's magic bytes),
    a hub repository whose name ends in "GGUF" (the naming every GGUF release follows), or any model given
    with an --mmproj file. For `--engine auto`; touches no network."""
    if mmproj is not None:
        return True
    path = Path(model).expanduser()
    if path.is_file():
        try:
            with path.open("rb") as fh:
                return fh.read(4) == GGUF_MAGIC
        except OSError:
            return path.suffix.lower() == ".gguf"
    return model.lower().endswith(".gguf") or bool(re.search(r"[-_.]gguf$", model.strip("/"), re.IGNORECASE))


def _quant_in(name: str, quant: str) -> bool:
    """True when the file name carries `quant` as a whole word: Q4_K_M matches "x-Q4_K_M.gguf", not "x-Q4_K_M_L"."""
    stem = name.rsplit("/", 1)[-1]
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9_])", stem, re.IGNORECASE) is not None


def _is_mmproj(name: str) -> bool:
    return "mmproj" in name.rsplit("/", 1)[-1].lower()


def pick_files(names: list[str], quant: str, repo: str) -> tuple[str, str]:
    """The language-model file and the vision-projector file among a repository's `names`.

    The model is the one .gguf file (not an mmproj) whose name carries `quant`; the projector is the
    mmproj file carrying `quant`, else the most precise one (f32, f16, bf16, q8_0). Raises
    ModelUnavailableError naming what the repository offers when either is missing or ambiguous.
    """
    ggufs = sorted(n for n in names if n.lower().endswith(".gguf"))
    models = [n for n in ggufs if not _is_mmproj(n) and _quant_in(n, quant)]
    projectors = [n for n in ggufs if _is_mmproj(n)]
    offered = sorted({re.split(r"[-.]", n.rsplit("/", 1)[-1][:-5])[-1] for n in ggufs if not _is_mmproj(n)})
    if len(models) != 1:
        what = "no" if not models else "several"
        raise ModelUnavailableError(
            f"model {repo}: {what} GGUF file{'s' if models else ''} for --quant {quant}"
            f"{' (' + ', '.join(models) + ')' if models else ''}; the repository offers: {', '.join(offered) or 'none'}"
        )
    if not projectors:
        raise ModelUnavailableError(
            f"model {repo}: the repository has no vision projector (an mmproj .gguf file); give one with --mmproj"
        )
    same = [n for n in projectors if _quant_in(n, quant)]
    if not same:
        for kind in _MMPROJ_PREFERENCE:
            same = [n for n in projectors if _quant_in(n, kind)]
            if same:
                break
    return models[0], (same or projectors)[0]


def resolve_gguf(model: str, mmproj: str | None, quant: str, revision: str | None = None) -> GGUFFiles:
    """The local GGUF files `--model` (and `--mmproj`) name, downloaded from the hub when they must and may.

    A local .gguf needs --mmproj (a local file too). A hub repository is listed (or, offline, its cached
    snapshot is), the files are picked by `quant` (pick_files), and downloaded with progress into the
    Hugging Face cache. Raises ModelUnavailableError (one line, with the ways out) when they cannot be had,
    UsageError for --mmproj with a hub repository that is not a file.
    """
    model = hub_name(model)
    path = Path(model).expanduser()
    if path.is_file() or model.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelUnavailableError(f"model {model}: no such file")
        if mmproj is None:
            raise UsageError(f"--model {model} is a GGUF file: give its vision projector with --mmproj MMPROJ.gguf")
        projector = Path(mmproj).expanduser()
        if not projector.is_file():
            raise ModelUnavailableError(f"--mmproj {mmproj}: no such file")
        return GGUFFiles(_checked(path, model), _checked(projector, mmproj))
    if path.is_dir():
        raise ModelUnavailableError(
            f"model {model}: a folder is not a GGUF model; give the file with --model MODEL.gguf --mmproj MMPROJ.gguf"
        )
    if mmproj is not None and not Path(mmproj).expanduser().is_file():
        raise UsageError(f"--mmproj {mmproj}: no such file (with a hub repository, leave --mmproj out)")
    names = _repo_files(model, revision)
    model_name, mmproj_name = pick_files(names, quant, model)
    model_path = _download(model, model_name, revision)
    projector = Path(mmproj).expanduser() if mmproj is not None else _download(model, mmproj_name, revision)
    return GGUFFiles(_checked(model_path, model_name), _checked(projector, mmproj or mmproj_name))


def _checked(path: Path, name: str) -> Path:
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelUnavailableError(f"model file {name}: cannot read it ({exc.strerror or exc})") from exc
    if magic != GGUF_MAGIC:
        raise ModelUnavailableError(f"model file {name}: not a GGUF file")
    return path


def _repo_files(repo: str, revision: str | None) -> list[str]:
    from huggingface_hub import HfApi, constants, snapshot_download

    from docparse.engines.hub import hub_errors
    from docparse.engines.oneline import one_line

    if constants.HF_HUB_OFFLINE:
        try:
            folder = Path(snapshot_download(repo, revision=revision, allow_patterns=["*.gguf"], local_files_only=True))
        except hub_errors():
            folder = None
        names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.gguf")) if folder else []
        if not names:
            raise ModelUnavailableError(
                f"model {repo} could not be had: no GGUF file of it is in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set; {_WAYS_OUT}"
            )
        return names
    try:  # one request, no retries (as the transformers engine's hub check): offline fails within seconds
        info = HfApi().model_info(repo, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
        return [s.rfilename for s in info.siblings or ()]
    except hub_errors() as exc:
        raise ModelUnavailableError(
            f"model {repo} could not be had from {constants.ENDPOINT} ({one_line(exc)}); {_WAYS_OUT}"
        ) from exc


def _download(repo: str, name: str, revision: str | None) -> Path:
    from huggingface_hub import constants, hf_hub_download

    from docparse.engines.hub import hub_errors
    from docparse.engines.oneline import one_line

    try:
        return Path(hf_hub_download(repo, name, revision=revision, local_files_only=bool(constants.HF_HUB_OFFLINE)))
    except hub_errors() as exc:
        raise ModelUnavailableError(f"model {repo}: cannot fetch {name} ({one_line(exc)}); {_WAYS_OUT}") from exc


def gguf_identity(model: str, mmproj: str | None, quant: str, revision: str | None) -> dict[str, str | None]:
    """What names a GGUF model's answers, for the page cache, without loading it.

    Local files: their SHA-256 (read once per process and file). A hub repository: its name, revision and
    the quant (which picks the file); an --mmproj file given beside it: its SHA-256.
    """
    from docparse.files import sha256_file

    model = hub_name(model)
    path = Path(model).expanduser()
    projector = None
    if mmproj is not None and Path(mmproj).expanduser().is_file():
        projector = sha256_file(Path(mmproj).expanduser())
    if path.is_file():
        return {"engine": "llamacpp", "gguf": sha256_file(path), "mmproj": projector}
    return {"engine": "llamacpp", "model": model, "revision": revision, "quant": quant.upper(), "mmproj": projector}
