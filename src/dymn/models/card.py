"""The model card of a repo folder (``README.md``): Hub metadata in YAML front matter (with the evaluation results
in the Hub's machine-readable ``model-index``), what the model is, its labels, usage that runs, measured results,
and the licence and attribution of the weights."""

from __future__ import annotations

from ..util.errors import require
from .info import ModelInfo

# the released weights: EfficientAT (MN, DyMN), PretrainedSED and EfficientSED (the frame-level detectors)
UPSTREAM = {
    "fmn": (
        "PretrainedSED / EfficientSED by Florian Schmid et al. (https://github.com/fschmid56/PretrainedSED, "
        "https://github.com/theMoro/EfficientSED)"
    ),  # fmt: skip
    "default": "EfficientAT by Florian Schmid et al. (https://github.com/fschmid56/EfficientAT)",
}
WEIGHTS_LICENSE = "mit"  # every released file; a fine-tune of one inherits it


def provenance_of(info: ModelInfo, version: str) -> dict:
    """Where the weights came from: the original file (URL, sha256), the model they were trained from, dymn."""
    cfg = info.pretrained_cfg
    out = {"source": info.source, "dymn_version": version}
    if cfg is not None:
        out.update(url=cfg.url, sha256=cfg.sha256, registry_name=cfg.name)
    if info.base_model:
        out["base_model"] = info.base_model
    return out


def released(info: ModelInfo) -> bool:
    """Whether the weights are a released file as published (not random, not fine-tuned)."""
    return info.pretrained_cfg is not None and info.source.startswith("released weights") and not info.base_model


def results_of(info: ModelInfo) -> dict:
    """Measured results: the model's own (a fine-tune's validation split), else the published ones."""
    if info.results:
        return dict(info.results)
    cfg = info.pretrained_cfg
    if not released(info) or not cfg.tagger:
        return {}
    if cfg.psds1 is not None:
        return {"audioset_strong_psds1": cfg.psds1}
    return {"audioset_mAP": cfg.map} if cfg.map is not None else {}


def _eval_results(info: ModelInfo, results: dict):
    from huggingface_hub import EvalResult

    dataset = ("AudioSet", "audioset") if "audioset_mAP" in results or "audioset_strong_psds1" in results else (
        results.get("dataset", "validation split"), "custom")  # fmt: skip
    out = []
    for key, value in results.items():
        if isinstance(value, (int, float)) and key not in ("train_clips", "val_clips", "epochs", "best_epoch"):
            out.append(EvalResult(task_type="audio-classification", dataset_type=dataset[1], dataset_name=dataset[0],
                                  metric_type=key, metric_value=float(value)))  # fmt: skip
    return out


def model_card(info: ModelInfo, config: dict, repo_id: str | None = None) -> str:
    """The card's text (``repo_id``: the Hub name used in the usage example; default ``ORG/NAME``)."""
    hub = require("huggingface_hub", "hub", "writing a model card")
    results = config.get("results") or {}
    arch = {"mn": "MN (MobileNetV3-based)", "dymn": "DyMN (Dynamic MobileNet)", "fmn": "frame-level MobileNet"}
    data = hub.ModelCardData(
        library_name="dymn", pipeline_tag="audio-classification", license=WEIGHTS_LICENSE,
        tags=["audio", "audio-classification", "audio-tagging", "efficientat", "mobilenet", "dymn", info.arch],
        datasets=["audioset"] if released(info) else None, metrics=list(results) or None,
        base_model=info.base_model, model_name=info.name, eval_results=_eval_results(info, results) or None,
    )  # fmt: skip
    name = repo_id or "ORG/NAME"
    kind = "sound event detector (frame-level, 40 ms)" if info.level == "frame" else "audio tagger"
    task = ("multi-label: a sigmoid per class" if info.task == "multilabel" else "single-label: a softmax over the "
            "classes")  # fmt: skip
    fe = info.frontend
    labels = "\n".join(f"{i}. {lab}" for i, lab in enumerate(info.labels))
    shown = ", ".join(info.labels[:12]) + (", ..." if len(info.labels) > 12 else "")
    upstream = UPSTREAM["fmn" if info.arch == "fmn" else "default"]
    measured = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in results.items())
    command = "detect" if info.level == "frame" else "tag"
    usage = (f'print(dymn.detect("clip.wav", model="hf-hub:{name}").to_json())' if info.level == "frame" else
             f'print(dymn.TagResult.dumps(list(dymn.Tagger("hf-hub:{name}").tag_files(["clip.wav"]))))')  # fmt: skip
    trained = (f"Fine-tuned from `{info.base_model}` with dymn." if info.base_model
               else f"Released weights (`{info.pretrained_cfg.name}`), converted to safetensors unchanged."
               if released(info) else f"Weights: {info.source}.")  # fmt: skip
    body = f"""
# {info.name}

A {arch.get(info.arch, info.arch)} {kind} for [dymn](https://pypi.org/project/dymn/): {info.num_classes} classes
({task}), {fe.sample_rate} Hz audio, {info.clip_seconds or 10:g} s training clips. {trained}

## Usage

```python
import dymn
{usage}
```

```bash
dymn {command} clip.wav --model hf-hub:{name}
```

Everything needed to prepare audio is in `config.json` (frontend: {fe.n_mels} mel bins, window {fe.win_length},
hop {fe.hop_length}, n_fft {fe.n_fft}); the weights are in `model.safetensors`.

## Results

{"| metric | value |" + chr(10) + "|---|---|" + chr(10) + measured if measured else "No measured results recorded."}

## Labels

{shown}

<details><summary>All {info.num_classes} labels</summary>

{labels}

</details>

## Licence and attribution

The weights are under the MIT licence. The architecture and the released checkpoints are the work of {upstream}.
AudioSet label names: Google LLC, CC BY-SA 4.0.
"""
    # no template engine: labels come from files and may hold anything
    return f"---\n{data.to_yaml()}\n---\n{body}"
