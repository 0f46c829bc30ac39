"""Finding a Qwen2.5-VL checkpoint: a local folder, the Hugging Face cache, or a download from the hub."""

from __future__ import annotations

import json
from pathlib import Path

from docparse.engines.hub import hub_errors
from docparse.engines.oneline import one_line
from docparse.errors import ModelUnavailableError

MODEL_TYPE = "qwen2_5_vl"

# Files of a checkpoint that loading needs; README, .gitattributes and the like are not fetched.
_CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.model"]

_WAYS_OUT = (
    "use --model PATH (a local checkpoint folder), or set HF_HUB_OFFLINE=1 with a pre-filled "
    "Hugging Face cache, or use a server with --engine openai --api-base URL"
)
# The same, when HF_HUB_OFFLINE is what kept the download from happening.
_WAYS_OUT_OFFLINE = (
    "use --model PATH (a local checkpoint folder), unset HF_HUB_OFFLINE to let it download, or use a "
    "server with --engine openai --api-base URL"
)


def check_checkpoint(folder: Path, name: str) -> None:
    """Raise ModelUnavailableError unless `folder` holds a Qwen2.5-VL checkpoint's config.json."""
    config = folder / "config.json"
    if not config.is_file():
        raise ModelUnavailableError(f"model {name}: {folder} is not a model checkpoint (it has no config.json)")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelUnavailableError(f"model {name}: cannot read {config}: {exc}") from exc
    if model_type != MODEL_TYPE:
        raise ModelUnavailableError(
            f"model {name}: {folder} is a {model_type!r} checkpoint, not Qwen2.5-VL ({MODEL_TYPE!r})"
        )


def _looks_like_path(model: str) -> bool:
    """True for strings a user meant as a folder rather than a hub id `owner/name`."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model or Path(model).exists()


def _is_complete(folder: Path) -> bool:
    """True when `folder` has the configs loading reads and every safetensors weight file."""
    needed = ("config.json", "preprocessor_config.json", "tokenizer_config.json")
    if not all((folder / name).is_file() for name in needed):
        return False
    if (folder / "model.safetensors").is_file():
        return True
    try:
        index = json.loads((folder / "model.safetensors.index.json").read_text(encoding="utf-8"))
        shards = set(index["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return bool(shards) and all((folder / shard).is_file() for shard in shards)


def find_checkpoint(model: str, revision: str | None = None) -> Path | None:
    """The checkpoint folder `model` names if it is on this machine, else None (it must be fetched).

    An existing folder is used as is; a hub id is looked up in the local Hugging Face cache
    (configs and every weight file must be there). Touches no network. Raises
    ModelUnavailableError for a folder that is not a Qwen2.5-VL checkpoint, a path that does not
    exist, or a hub id that is not cached while HF_HUB_OFFLINE is set.
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        check_checkpoint(folder, model)
        return folder
    if _looks_like_path(model):
        raise ModelUnavailableError(f"model {model}: no such checkpoint folder")

    from huggingface_hub import constants, snapshot_download

    try:
        cached = Path(
            snapshot_download(model, revision=revision, allow_patterns=_CHECKPOINT_PATTERNS, local_files_only=True)
        )
    except hub_errors():
        cached = None
    if cached is not None and _is_complete(cached):
        check_checkpoint(cached, model)
        return cached
    if constants.HF_HUB_OFFLINE:
        state = "only partly" if cached is not None else "not"
        raise ModelUnavailableError(
            f"model {_named(model, revision)} cannot be loaded: it is {state} in the Hugging Face "
            f"cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set; {_WAYS_OUT_OFFLINE}"
        )
    return None


def _named(model: str, revision: str | None) -> str:
    return model + (f" (revision {revision})" if revision else "")


def _unavailable(model: str, revision: str | None, exc: BaseException) -> ModelUnavailableError:
    from huggingface_hub import constants

    return ModelUnavailableError(
        f"model {_named(model, revision)} could not be downloaded from {constants.ENDPOINT} ({one_line(exc)}); "
        f"{_WAYS_OUT}"
    )


def check_hub(model: str, revision: str | None = None) -> None:
    """Raise ModelUnavailableError unless the hub answers for `model` (at `revision`).

    One metadata request, without retries, bounded by HF_HUB_ETAG_TIMEOUT seconds (default 10):
    a refused connection fails at once, a hub that never answers fails after that timeout (plus
    up to 3 s that huggingface_hub spends on its own telemetry request unless
    HF_HUB_DISABLE_TELEMETRY is set). Also fails for a repository or revision the hub lacks, or
    one it refuses (gated, private without a token).
    """
    from huggingface_hub import HfApi, constants

    try:
        HfApi().model_info(model, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except hub_errors() as exc:
        raise _unavailable(model, revision, exc) from exc


def download_checkpoint(model: str, revision: str | None = None) -> Path:
    """Download the checkpoint's files into the Hugging Face cache and return its snapshot folder.

    Call `check_hub` first: the download itself retries on network errors. Raises
    ModelUnavailableError (one line) when it fails or what it got is not a Qwen2.5-VL checkpoint.
    """
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(model, revision=revision, allow_patterns=_CHECKPOINT_PATTERNS))
    except hub_errors() as exc:
        raise _unavailable(model, revision, exc) from exc
    check_checkpoint(path, model)
    return path


def resolve_checkpoint(model: str, revision: str | None = None) -> Path:
    """The local folder of the checkpoint `model` names, downloading it if it must and may.

    `find_checkpoint`, then (when the model is not on this machine) `check_hub` and
    `download_checkpoint`. Every failure is a ModelUnavailableError with one line naming the
    model and the ways out: --model PATH, HF_HUB_OFFLINE=1 with a pre-filled cache, or a server.
    """
    folder = find_checkpoint(model, revision)
    if folder is None:
        check_hub(model, revision)
        folder = download_checkpoint(model, revision)
    return folder
