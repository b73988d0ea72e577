"""A model as a folder in the layout of a Hugging Face Hub model repo, what ``save_pretrained`` writes and
``dymn.load("local-dir:...")`` / ``"hf-hub:..."`` read:

- ``config.json``: a format version and everything :class:`~dymn.ModelInfo` holds (architecture and options,
  labels and their AudioSet ids, frontend, task, clip or frame output, training clip length, provenance, measured
  results), so no code default decides how audio is prepared;
- ``model.safetensors``: the weights only (loaded strictly; a pickle is never read from a repo);
- ``README.md``: the model card (:mod:`.card`);
- optionally ``onnx/model.onnx``: the export with the frontend (written by :func:`dymn.hub.publish.save_pretrained`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .._version import __version__
from ..util.atomic import atomic_write, write_text
from ..util.errors import DownloadError, UsageError, WeightsError, first_line, require
from .card import model_card, provenance_of, results_of
from .checkpoint import Checkpoint, checkpoint_meta, validate_meta
from .configs import FRAME_SECONDS
from .labels import audioset_labels, audioset_strong_labels

REPO_FORMAT = "dymn"
REPO_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
ONNX_NAME = "onnx/model.onnx"


def audioset_ids(labels: tuple[str, ...]) -> list[str] | None:
    """The AudioSet ids (MIDs) of ``labels`` when they are AudioSet's (or AudioSet-Strong's) own label list."""
    for table in (audioset_labels(), audioset_strong_labels()):
        if list(labels) == [lab.name for lab in table]:
            return [lab.mid for lab in table]
    return None


def repo_config(model: torch.nn.Module) -> dict:
    """``config.json`` of a network: its self-describing checkpoint metadata and what a reader needs besides."""
    info = model.info
    meta = checkpoint_meta(model)
    meta.pop("version")
    config = {"format": REPO_FORMAT, "format_version": REPO_VERSION, **meta, "level": info.level,
              "output": "frame" if info.level == "frame" else "clip", "activation": info.activation,
              "embed_dim": int(info.embed_dim), "provenance": provenance_of(info, __version__),
              "results": results_of(info)}  # fmt: skip
    if info.level == "frame":
        config["frame_seconds"] = FRAME_SECONDS
    ids = audioset_ids(info.labels)
    if ids is not None:
        config["audioset_ids"] = ids
    return config


def write_repo(model: torch.nn.Module, folder: str | os.PathLike, *, card: bool = True,
               repo_id: str | None = None) -> Path:  # fmt: skip
    """Write ``model`` (an MN, DyMN or FrameMN network: callers check, :func:`dymn.hub.publish.model_of`) as a repo
    folder; each file replaced whole. ``card=False`` leaves an existing ``README.md`` as it is; ``repo_id`` names the
    Hub repo in the card's usage example."""
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder for a model repo")
    folder.mkdir(parents=True, exist_ok=True)
    config = repo_config(model)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(sd, tmp, metadata={"format": "pt"}))
    write_text(folder / CONFIG_NAME, json.dumps(config, indent=1) + "\n")
    if card or not (folder / CARD_NAME).exists():
        write_text(folder / CARD_NAME, model_card(model.info, config, repo_id))
    return folder


def read_repo(folder: str | os.PathLike, where: str | None = None) -> Checkpoint:
    """The weights and description of a repo folder, checked before anything is built (``where`` names it in
    errors, e.g. ``hf-hub:org/name``)."""
    folder = Path(folder)
    where = where or str(folder)
    cfg_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not cfg_path.is_file():
        raise WeightsError(f"{where}: no {CONFIG_NAME}: not a dymn model repo")
    if not weights.is_file():
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        hint = f" (it has {', '.join(sorted(pickles))}: dymn never loads pickles from a repo)" if pickles else ""
        raise WeightsError(f"{where}: no {WEIGHTS_NAME}{hint}")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{where}: {CONFIG_NAME} is not valid JSON ({first_line(exc)})") from None
    if not isinstance(config, dict) or config.get("format") != REPO_FORMAT:
        raise WeightsError(f'{where}: {CONFIG_NAME} is not a dymn model config (no "format": "dymn")')
    version = config.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= REPO_VERSION:
        raise WeightsError(f"{where}: {CONFIG_NAME} format_version {version!r:.40} is not one this dymn reads "
                           f"(1..{REPO_VERSION}): upgrade dymn")  # fmt: skip
    keys = ("arch", "arch_config", "frontend", "labels", "task", "clip_seconds", "name", "temperature", "results",
            "base_model")  # fmt: skip
    meta = validate_meta({k: config[k] for k in keys if k in config}, where)
    if not meta.get("labels"):
        raise WeightsError(f"{where}: {CONFIG_NAME} lists no labels")
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as exc:
        raise WeightsError(f"{where}: {WEIGHTS_NAME} is not a valid safetensors file ({first_line(exc)})") from None
    return Checkpoint(sd, meta, where)


def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
                card: bool = False, token: str | None = None) -> str:  # fmt: skip
    """Upload a repo folder to the Hub as ``repo_id`` (created if needed; ``revision``: a branch, created if
    needed). The card goes up only when the repo has none, unless ``card``. Returns the commit's URL."""
    hub = require("huggingface_hub", "hub", "pushing to the Hugging Face Hub")
    api = hub.HfApi(token=token, library_name="dymn", library_version=__version__)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        keep_card = not card and api.file_exists(repo_id, CARD_NAME, revision=revision)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), revision=revision,
                                   ignore_patterns=[CARD_NAME] if keep_card else None,
                                   commit_message=f"Upload {Path(folder).name} with dymn {__version__}")  # fmt: skip
    except hub.errors.HfHubHTTPError as exc:
        raise DownloadError(f"pushing to {repo_id} failed: {first_line(exc)} (a token with write access: "
                            "`huggingface-cli login` or HF_TOKEN)") from None  # fmt: skip
    return str(getattr(commit, "commit_url", commit))


def push_model(model: torch.nn.Module, repo_id: str, *, private: bool = False, revision: str | None = None,
               card: bool = False, token: str | None = None) -> str:  # fmt: skip
    """:func:`write_repo` into a temporary folder, then :func:`push_folder`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dymn-push-") as tmp:
        folder = write_repo(model, Path(tmp) / repo_id.split("/")[-1], repo_id=repo_id)
        return push_folder(folder, repo_id, private=private, revision=revision, card=card, token=token)
