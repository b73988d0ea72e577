"""``dymn.load``: the one way to turn a name, a file or an ensemble into a model.

Every command and API goes through here, so a registry name means the same thing everywhere: its
released weights (downloaded once and cached). Random weights only when asked for (``pretrained=False``
or an architecture name, ``"mn"`` / ``"dymn"``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..audio.frontend import FrontendConfig
from ..models.checkpoint import Checkpoint, load_checkpoint
from ..models.info import AudioModel
from ..models.network import is_network
from ..models.pretrained import PretrainedCfg
from ..models.repo import CONFIG_NAME, WEIGHTS_NAME, read_repo
from ..runtime.api import optimize
from ..runtime.backends import canonical
from ..util.errors import UnknownModelError, UsageError, WeightsError
from .factory import ARCHS, build_network, fitting_models
from .huggingface import LOCAL_PREFIX, download, is_repo_spec, repo_hint
from .registry import get_pretrained_cfg, is_registered

DEFAULT_MODEL = "dymn10_as"
_FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".onnx")


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.endswith(_FILE_SUFFIXES) or Path(spec).exists()


def load(
    spec: str | os.PathLike | Sequence[str] | AudioModel | None = None,
    *,
    weights: str | os.PathLike | Checkpoint | None = None,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
    backend: str = "torch",
    **overrides,
) -> AudioModel:
    """A model from a registry name, a weights file, an ONNX export or an ensemble, in eval mode.

    ``spec`` forms:
      - a registry name (``"dymn10_as"``, see ``dymn models``): the released weights, or random weights
        with ``pretrained=False``;
      - ``"mn"`` / ``"dymn"``: a randomly initialised architecture (options as ``**overrides``);
      - a weights file: a self-describing dymn checkpoint or ``.safetensors`` (no name needed), an
        official plain state dict (give the architecture as ``spec`` and the file as ``weights=``),
        or an ``.onnx`` file written by ``dymn export onnx``;
      - ``"a,b,c"`` or a list: an ensemble averaging its members' logits;
      - a model object: returned as it is.

    ``**overrides`` change architecture options, e.g. ``num_classes=10`` re-initialises the classifier's
    last layer for fine-tuning.
    """
    backend = canonical(backend)  # "onnx" is onnxruntime everywhere: here, the runtime of an .onnx file
    if backend not in ("torch", "onnxruntime"):
        raise UsageError(f"load() runs networks in PyTorch or .onnx files in onnxruntime, not backend {backend!r}; "
                         "dymn.optimize or Tagger(backend=...) choose the runtime of a network")  # fmt: skip
    if spec is None and weights is None:
        spec = DEFAULT_MODEL
    if spec is not None and not isinstance(spec, (str, os.PathLike, list, tuple)):
        if weights is not None or overrides:
            raise UsageError("a ready model object takes no weights or options")
        return spec.to(device).eval()
    if isinstance(spec, (list, tuple)) or (isinstance(spec, str) and "," in spec):
        names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
        if weights is not None:
            raise UsageError("an ensemble (a,b,c) takes no single weights file; save members and list their files")
        from ..models.ensemble import Ensemble

        for name in names:  # every name checked before anything is downloaded
            if isinstance(name, str) and not name:
                raise UsageError(f"empty name in the ensemble {spec!r}")
            if isinstance(name, str) and not is_repo_spec(name) and not _looks_like_path(name) and name not in ARCHS:
                get_pretrained_cfg(name)
        members = [load(n, pretrained=pretrained, device=device, **overrides) for n in names]
        members = [optimize(m) if is_network(m) else m for m in members]  # members run for inference
        return Ensemble(members).to(device).eval()

    if isinstance(spec, (str, os.PathLike)) and weights is None and Path(spec).is_dir():
        spec = _folder_model(Path(spec))
    if is_repo_spec(spec) or is_repo_spec(weights):
        if spec is not None and weights is not None:
            raise UsageError(f"{spec if is_repo_spec(spec) else weights} is a whole model: give no other name or "
                             "weights with it")  # fmt: skip
        where = spec or weights
        spec, weights = None, read_repo(download(where), where=where)
    if spec is not None and weights is None and isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if not is_registered(text) and text not in ARCHS and _looks_like_path(text):
            if not Path(text).exists():
                raise WeightsError(f"{text}: no such weights file{repo_hint(text)}")
            spec, weights = None, text
    if weights is not None and not isinstance(weights, Checkpoint) and os.fspath(weights).endswith(".onnx"):
        from ..runtime.api import open_onnx

        if spec is not None or overrides:
            raise UsageError("an .onnx file is loaded as it is: give no model name or options with it")
        return open_onnx(weights)
    if backend == "onnxruntime":
        raise UsageError("backend 'onnx' runs a file written by `dymn export onnx`: pass that .onnx file")
    model = _load_network(None if spec is None else os.fspath(spec), weights, pretrained, overrides)
    return model.to(device)


def _folder_model(folder: Path) -> str:
    """What a folder holds: a model repo (``config.json`` and ``model.safetensors``) or a run of ``dymn finetune``
    (its final ``model.pt``)."""
    if (folder / WEIGHTS_NAME).is_file() or not (folder / "model.pt").is_file() and (folder / CONFIG_NAME).is_file():
        return f"{LOCAL_PREFIX}{folder}"
    if (folder / "model.pt").is_file():  # a run folder also holds a config.json: the run's configuration
        return str(folder / "model.pt")
    raise UsageError(f"{folder}: a folder, but neither a model repo (config.json, model.safetensors) nor a run of "
                     "dymn finetune (model.pt)")  # fmt: skip


def _load_network(name: str | None, weights, pretrained: bool, overrides: dict):
    entry: PretrainedCfg | None = None
    if name is not None and name not in ARCHS:
        try:
            entry = get_pretrained_cfg(name)
        except UnknownModelError as exc:
            if _looks_like_path(name):
                raise UsageError(f"{name}: no such file{repo_hint(name)}") from None
            raise UnknownModelError(f"{exc}{repo_hint(name)}") from None
    ckpt: Checkpoint | None = None
    if weights is not None:
        ckpt = weights if isinstance(weights, Checkpoint) else load_checkpoint(weights)
        source = ckpt.path if is_repo_spec(ckpt.path) else f"file {ckpt.path}"
    elif entry is not None and pretrained:
        from .downloads import fetch_pretrained

        path = fetch_pretrained(entry)
        try:
            ckpt = load_checkpoint(path)
        except WeightsError as exc:
            damaged = f"the cached copy of {entry.name} is damaged: delete it to download it again"
            raise WeightsError(f"{exc} ({damaged})") from None
        source = f"released weights {entry.url}"
    else:
        source = "random initialisation"

    meta = ckpt.meta if ckpt is not None and ckpt.self_describing else None
    if meta is not None:
        arch = meta["arch"]
        if name is not None and (entry.arch if entry is not None else name) != arch:
            raise UsageError(f"{ckpt.path} holds a self-describing {arch} model; load it without naming "
                             f"another architecture ({name} is {entry.arch if entry else name})")  # fmt: skip
        model = build_network(arch, dict(meta["arch_config"]), overrides, ckpt, source,
                              meta.get("labels") or "audioset", FrontendConfig(**meta.get("frontend", {})),
                              meta.get("task", "multilabel"), meta.get("temperature", 1.0))  # fmt: skip
        model_name = meta.get("name") or Path(ckpt.path).stem
        model.info = model.info.replace(clip_seconds=meta.get("clip_seconds", 10.0), results=meta.get("results", {}),
                                        base_model=meta.get("base_model"))  # fmt: skip
    elif entry is not None:
        model = build_network(entry.arch, dict(entry.arch_config), overrides, ckpt, source, entry.labels,
                              entry.frontend, "multilabel", entry.temperature)  # fmt: skip
        model_name = entry.name
    elif name in ARCHS:
        from .registry import SED_FRONTEND

        frontend = SED_FRONTEND if name == "fmn" else FrontendConfig()
        model = build_network(name, {}, overrides, ckpt, source, "audioset", frontend, "multilabel",
                              1.0 if ckpt is not None else None)  # fmt: skip
        model_name = name
    else:  # a plain state dict and no architecture
        fits = fitting_models(ckpt.state_dict)
        hint = (
            (f"it fits {', '.join(fits[:6])}" + (" ..." if len(fits) > 6 else ""))
            if fits
            else ("no registered architecture fits it; give the architecture as mn or dymn with its options")
        )
        raise UsageError(f"{ckpt.path} is a plain state dict without a description: name its architecture, "
                         f"e.g. --model NAME --weights FILE ({hint})")  # fmt: skip
    model.info = model.info.replace(name=model_name, source=source, pretrained_cfg=entry)
    return model
