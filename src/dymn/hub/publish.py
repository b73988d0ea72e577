"""Publishing models as Hugging Face Hub repos: a folder (``save_pretrained``, with the ONNX export if asked), a
push (``push_to_hub``), and every released model whose weights are cached (``save_all``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from torch import nn

from ..models.network import is_network
from ..models.repo import ONNX_NAME, push_folder, write_repo
from ..runtime.export import export_onnx
from ..util.cache import cache_dir
from ..util.errors import UsageError
from .loader import load
from .registry import get_pretrained_cfg, list_models


def model_of(spec) -> nn.Module:
    """A network to publish: anything :func:`dymn.load` takes (a registry name, a fine-tuned ``model.pt``, a run
    folder, a repo) or a network."""
    model = load(spec) if isinstance(spec, (str, os.PathLike)) else spec
    if not is_network(model):
        kind = getattr(getattr(model, "info", None), "arch", type(model).__name__)
        raise UsageError(f"only MN, DyMN and FrameMN networks go into a model repo, not {kind} (an ensemble: save "
                         "each member; an optimized or exported model: save the network it came from)")  # fmt: skip
    return model


def save_pretrained(model, folder: str | os.PathLike, *, with_onnx: bool = False, card: bool = True,
                    repo_id: str | None = None) -> Path:  # fmt: skip
    """``model`` as a repo folder (:mod:`dymn.models.repo`); ``with_onnx`` adds ``onnx/model.onnx``, the export
    with the frontend inside, as ``dymn export onnx --with-frontend`` writes it."""
    model = model_of(model)
    folder = write_repo(model, folder, card=card, repo_id=repo_id)
    if with_onnx:
        (folder / ONNX_NAME).parent.mkdir(exist_ok=True)
        export_onnx(model, folder / ONNX_NAME, with_frontend=True)
    return folder


def push_to_hub(model, repo_id: str, *, private: bool = False, revision: str | None = None,
                with_onnx: bool = False, card: bool = False, token: str | None = None) -> str:  # fmt: skip
    """``model`` uploaded as the Hub repo ``repo_id`` (see :func:`dymn.models.repo.push_folder`)."""
    with tempfile.TemporaryDirectory(prefix="dymn-push-") as tmp:
        folder = save_pretrained(model, Path(tmp) / repo_id.split("/")[-1], with_onnx=with_onnx, repo_id=repo_id)
        return push_folder(folder, repo_id, private=private, revision=revision, card=card, token=token)


def save_all(folder: str | os.PathLike, *, with_onnx: bool = False) -> tuple[list[Path], list[str]]:
    """A repo folder ``folder/NAME`` for every registry model whose released weights are in the cache (MN, DyMN,
    the frame-level detectors), ready to publish; returns (written folders, names skipped as not cached)."""
    written, skipped = [], []
    for name in list_models():
        cfg = get_pretrained_cfg(name)
        if not (cache_dir() / cfg.filename).is_file():
            skipped.append(name)
            continue
        written.append(save_pretrained(load(name), Path(folder) / name, with_onnx=with_onnx))
    return written, skipped
