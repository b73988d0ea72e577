"""Recipes and runs: datasets per task, a Lightning Trainer, resumable checkpoints, the final model."""

from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..datasets.common import DataError, WaveAugment, class_weights_from_targets
from ..datasets.sets import FileListDataset, HDF5Dataset, csv_split, dcase20_split, esc50_split, folder_split
from .config import TrainConfig
from .recipes import RECIPES, TASKS, make_config, recipe_defaults  # noqa: F401 (re-exported)


@dataclass
class TaskData:
    train: torch.utils.data.Dataset | None
    val: torch.utils.data.Dataset | None
    labels: list[str]
    multilabel: bool
    has_mask: bool = False
    clip_seconds: float | None = None
    skipped: list[str] = field(default_factory=list)  # files left out before training: why each


def _auto_clip_seconds(paths: list[Path]) -> float:
    """Longest training clip, capped at 10 s, rounded up to 0.1 s (padding short clips is cheap)."""
    import soundfile as sf

    longest = 0.0
    for p in paths:
        try:
            info = sf.info(str(p))
            longest = max(longest, info.frames / info.samplerate)
        except Exception:
            continue
    return float(min(10.0, max(0.1, np.ceil(longest * 10) / 10)))


def build_task(task: str, data: str | os.PathLike, settings: dict, seed: int = 0, train: bool = True,
               cache_dir: str | None = None) -> TaskData:  # fmt: skip
    """Datasets for a task: ``settings`` carries clip_seconds, augmentation and split options."""
    root = Path(data)
    if not root.exists():
        raise DataError(f"{root}: no such data path")
    aug = WaveAugment(gain_db=int(settings.get("gain", 0)), roll=int(settings.get("roll", 0)))
    kw = dict(seed=seed, augment=aug, wavmix=float(settings.get("wavmix", 0.0)))
    clip = settings.get("clip_seconds")
    if task in ("audioset", "fsd50k", "openmic"):
        return _hdf5_task(task, root, clip, kw, settings, train)
    if task == "esc50":
        tr, te, labels = esc50_split(root, int(settings.get("fold", 1)))
        multilabel = False
    elif task == "dcase20":
        tr, te, labels = dcase20_split(root)
        multilabel = False
    elif task == "folder":
        tr, te, labels = folder_split(root, float(settings.get("val_fraction", 0.2)), seed)
        multilabel = False
    elif task == "csv":
        val_csv = settings.get("val_csv")
        tr, te, labels = csv_split(root, Path(val_csv) if val_csv else None,
                                   float(settings.get("val_fraction", 0.2)), seed, settings.get("labels"))  # fmt: skip
        multilabel = True
    else:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    skipped: list[str] = []
    if train:  # an unreadable file is named once, before training, not skipped silently every epoch
        tr, te = _readable(tr, skipped), _readable(te, skipped)
        if not len(tr["paths"]):
            raise DataError(f"{root}: none of the training files can be read ({skipped[0] if skipped else ''})")
    if clip == "auto":
        clip = _auto_clip_seconds(tr["paths"])
    common = dict(labels=labels, multilabel=multilabel, clip_seconds=clip, cache_dir=cache_dir)
    train_ds = FileListDataset(tr["paths"], tr["targets"], train=True, **common, **kw) if train else None
    val_ds = FileListDataset(te["paths"], te["targets"], train=False, **common, seed=seed)
    return TaskData(train_ds, val_ds, labels, multilabel, clip_seconds=clip, skipped=skipped)


def _readable(split: dict, skipped: list[str]) -> dict:
    from ..audio import audio_info
    from ..errors import AudioError

    keep = []
    for i, p in enumerate(split["paths"]):
        try:
            audio_info(p)
            keep.append(i)
        except AudioError as exc:
            skipped.append(str(exc))
    if len(keep) == len(split["paths"]):
        return split
    return {"paths": [split["paths"][i] for i in keep], "targets": split["targets"][keep]}


def _hdf5_task(task, root: Path, clip, kw, settings, train) -> TaskData:
    from ..labels import audioset_names

    if task == "audioset":
        files = [root / "balanced_train_segments_mp3.hdf", root / "unbalanced_train_segments_mp3.hdf"]
        if settings.get("balanced_only") or not files[1].exists():
            files = files[:1]
        val_files, labels, packed, openmic = [root / "eval_segments_mp3.hdf"], audioset_names(), True, False
    elif task == "fsd50k":
        files, val_files = [root / "FSD50K.train_mp3.hdf"], [root / "FSD50K.val_mp3.hdf"]
        vocab = root / "vocabulary.csv"
        labels = ([line.split(",")[1] for line in vocab.read_text().splitlines() if line.strip()]
                  if vocab.is_file() else [f"class_{i}" for i in range(200)])  # fmt: skip
        packed, openmic = True, False
    else:
        files, val_files = [root / "openmic_train.csv_mp3.hdf"], [root / "openmic_test.csv_mp3.hdf"]
        labels = [f"instrument_{i}" for i in range(20)]
        packed, openmic = False, True
    common = dict(labels=labels, packed=packed, openmic=openmic)
    train_ds = None
    if train:
        train_ds = HDF5Dataset(files, clip_seconds=clip, train=True, random_crop=bool(settings.get("random_crop")),
                               **common, **kw)  # fmt: skip
        if task == "audioset":
            train_ds.sample_weights = class_weights_from_targets(train_ds.targets())
            train_ds.epoch_len = int(settings.get("epoch_len") or len(train_ds))
    val_ds = HDF5Dataset(val_files, clip_seconds=clip, train=False, seed=kw["seed"], **common)
    return TaskData(train_ds, val_ds, labels, True, has_mask=openmic, clip_seconds=clip)


def fit(
    task: str,
    data: str | os.PathLike,
    model: torch.nn.Module,
    out_dir: str | os.PathLike,
    cfg: TrainConfig,
    settings: dict | None = None,
    teacher=None,
    resume: bool = False,
    devices="auto",
    accelerator: str = "auto",
    precision: str | None = None,
    num_nodes: int = 1,
    wandb: bool = False,
    progress: bool = True,
    cache_dir: str | None = None,
    max_epochs: int | None = None,
    export_plain: bool = False,
    task_data: TaskData | None = None,
    max_time: float | None = None,
    strategy: str = "auto",
):
    """Train ``model`` on a task; returns (LightningModule, path of the final self-describing model)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from ..checkpoint import save_checkpoint
    from .module import AtomicCheckpointIO, TaggingModule, seed_all

    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if resume and not last.is_file():
        raise DataError(f"--resume: no checkpoint to resume from at {last}")
    if not resume and last.is_file():
        raise DataError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    resumed_epoch = _check_resume(last) if resume else None
    seed_all(cfg.seed)
    td = task_data or build_task(task, data, settings or {}, seed=cfg.seed, cache_dir=cache_dir)
    if len(td.train) == 0:
        raise DataError(f"{data}: the training split is empty")
    if model.config.num_classes != len(td.labels):
        raise DataError(f"the model has {model.config.num_classes} outputs but the data {len(td.labels)} classes")
    # the task decides the activation at inference: softmax for single-label (cross-entropy) training
    model.info = model.info.replace(labels=tuple(td.labels), task="multilabel" if td.multilabel else "singlelabel",
                                    clip_seconds=td.clip_seconds)  # fmt: skip
    module = TaggingModule(model, td.multilabel, cfg, teacher=teacher, has_mask=td.has_mask)
    module.train_dataset, module.val_dataset = td.train, td.val
    if resume:
        run_labels = resumed_epoch[1]
        if run_labels is not None and list(run_labels) != list(td.labels):
            raise DataError(f"cannot resume {out}: its classes ({', '.join(run_labels)[:200]}) differ from the "
                            f"data's ({', '.join(td.labels)[:200]})")  # fmt: skip
    from .report import ResumableCSVLogger

    loggers = [ResumableCSVLogger(out, resumed_epoch[0] if resume else None)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    except ImportError:
        pass
    if wandb:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(save_dir=str(out)))
    # Lightning-internal deprecation notices and its start-up banners (hardware, tips) are not the user's business
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from ..atomic import write_text
    from .report import EpochReport, describe_run, run_config, trainer_is_rank_zero

    report = EpochReport(td.multilabel, out, cfg.val_every)
    steps = max(1, len(td.train) // max(1, cfg.batch_size))
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:03d}", auto_insert_metric_name=False,
                                 save_last=True, save_top_k=1, every_n_epochs=cfg.val_every)  # fmt: skip
    if trainer_is_rank_zero():
        print(describe_run(td, cfg, model), file=sys.stderr, flush=True)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.json", json.dumps(run_config(cfg, settings, td), indent=1) + "\n")
    trainer = L.Trainer(
        max_epochs=max_epochs or cfg.epochs, accelerator=accelerator, devices=devices, num_nodes=num_nodes,
        strategy=strategy,
        precision=precision, logger=loggers, callbacks=[checkpoint, report], plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False, deterministic=True, enable_progress_bar=progress,
        num_sanity_val_steps=0, enable_model_summary=False, log_every_n_steps=min(10, steps),
        check_val_every_n_epoch=cfg.val_every,
        max_time=None if max_time is None else {"seconds": max_time},
    )  # fmt: skip
    trainer.fit(module, ckpt_path=str(last) if resume else None)
    final = out / "model.pt"
    if trainer.is_global_zero:
        save_checkpoint(module.model, final, extra={"train_config": run_config(cfg, settings, td)})
        if export_plain:
            save_checkpoint(module.model, out / "model_plain.pt", plain=True)
        print(report.summary(final), file=sys.stderr, flush=True)
    return module, final


def _check_resume(last: Path) -> tuple[int, list[str] | None]:
    """The epoch a run's last checkpoint finished and its classes; a clear error if it cannot be read."""
    from ..errors import first_line

    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise DataError(f"{last}: refused: it holds pickled Python objects that could run code; "
                            "it was not written by dymn") from None  # fmt: skip
        raise DataError(f"{last}: cannot resume: the checkpoint is unreadable, perhaps cut off "
                        f"({first_line(exc)}); start a new run with another --out") from None  # fmt: skip
    if not isinstance(state, dict) or "state_dict" not in state or "epoch" not in state:
        raise DataError(f"{last}: not a checkpoint of a dymn run; start a new run with another --out")
    meta = (state.get("dymn") or {}).get("meta") or {}
    return int(state["epoch"]), meta.get("labels")


@torch.inference_mode()
def evaluate(task: str, data: str | os.PathLike, model: torch.nn.Module, settings: dict | None = None,
             batch_size: int = 16, device: str = "cpu", progress: bool = False) -> dict[str, float]:  # fmt: skip
    """Metrics of ``model`` on a task's evaluation split (mAP / ROC-AUC / d-prime, or accuracy)."""
    from tqdm.auto import tqdm

    from ..datasets.common import EpochSampler, collate
    from ..inference import Tagger
    from ..model import ModelInfo
    from .metrics import summarize

    merged = {k: v for k, v in recipe_defaults(task, "dymn" if model.info.arch == "dymn" else "mn").items()
              if k in ("clip_seconds", "fold", "val_fraction", "epoch_len")}  # fmt: skip
    merged.update(settings or {})
    td = build_task(task, data, merged, train=False)
    if model.info.num_classes != len(td.labels):
        raise DataError(f"the model has {model.info.num_classes} outputs but {task} has {len(td.labels)} classes")
    # clips come padded or cropped to the recipe's length: scored as they are, with the dataset's activation
    tagger = Tagger(model, device=device, batch_size=batch_size, pad=False)
    activation = ModelInfo("eval", "eval", td.labels, task="multilabel" if td.multilabel else "singlelabel")
    loader = torch.utils.data.DataLoader(td.val, batch_size=batch_size, collate_fn=collate,
                                         sampler=EpochSampler(len(td.val), shuffle=False))  # fmt: skip
    probs, targets, masks, skipped = [], [], [], 0
    for b in tqdm(loader, disable=not progress, desc=f"evaluating {task}"):
        skipped += b["skipped"]
        if b["empty"]:
            continue
        logits, _ = tagger.run_batch(b["wave"])
        probs.append(activation.probabilities(logits))
        targets.append(b["target"].numpy())
        if "mask" in b:
            masks.append(b["mask"].numpy())
    if not probs:
        raise DataError(f"{data}: no evaluation clip could be decoded")
    metrics = summarize(np.concatenate(targets), np.concatenate(probs), td.multilabel,
                        np.concatenate(masks) if masks else None)  # fmt: skip
    metrics["clips"] = float(sum(len(p) for p in probs))
    metrics["skipped"] = float(skipped)
    return metrics
