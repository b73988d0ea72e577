"""Runs: a Lightning Trainer over a task's data, resumable checkpoints, the final model; and evaluation."""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ..datasets.common import DataError
from .config import TrainConfig
from .recipes import data_config
from .tasks import read_task


def fit(model: torch.nn.Module, data, cfg: TrainConfig, out_dir: str | os.PathLike, *, teacher=None,
        resume: bool = False, progress: bool = True, export_plain: bool = False, wandb: bool = False,
        **trainer_kwargs):  # fmt: skip
    """Train ``model`` on ``data`` (a :class:`~dymn.train.datamodule.TaskDataModule`) with ``cfg``; the run
    folder ``out_dir`` gets checkpoints, logs, ``config.json``, ``model_best.pt`` and the final ``model.pt``.

    ``trainer_kwargs`` go to ``lightning.Trainer`` (devices, accelerator, precision, num_nodes, strategy,
    max_epochs, max_time, profiler, ...). Returns (LightningModule, path of the final self-describing model).
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from ..models.network import save_checkpoint
    from .module import AtomicCheckpointIO, TaggingModule, seed_all
    from .report import ResumableCSVLogger, trainer_is_rank_zero

    out = Path(out_dir)
    root = Path(data.root)
    if root.is_dir() and (out.resolve() == root.resolve() or root.resolve() in out.resolve().parents):
        # the run's folders would sit among the data's (a folder task would take them for classes next time)
        raise DataError(f"--out {out} is inside the data folder {root}; choose a folder outside it")
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if resume and not last.is_file():
        raise DataError(f"--resume: no checkpoint to resume from at {last}")
    if not resume and last.is_file():
        raise DataError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    resumed_epoch = _check_resume(last) if resume else None
    seed_all(cfg.seed)
    data.use_clips()  # a data module used by an earlier run with a frozen backbone holds embeddings
    td = data.data
    data.batch_size = cfg.batch_size
    if data.num_train == 0:
        raise DataError(f"{data.root}: the training split is empty")
    if model.config.num_classes != len(td.labels):
        raise DataError(f"the model has {model.config.num_classes} outputs but the data {len(td.labels)} classes")
    level = getattr(model.info, "level", "clip")
    if level != td.level:
        raise DataError(f"the strong task trains frame-level detectors (e.g. --model fmn10_tf256); {model.info.name} "
                        f"is a clip-level tagger" if td.level == "frame" else
                        f"{model.info.name} is a frame-level detector: train it on strongly labelled events with "
                        f"the strong task (a TSV of filename, onset, offset, event_label)")  # fmt: skip
    if level == "frame" and teacher is not None:
        raise DataError("knowledge distillation from a teacher is for clip-level taggers; detectors train on labels")
    # the task decides the activation at inference: softmax for single-label (cross-entropy) training
    model.info = model.info.replace(labels=tuple(td.labels), task="multilabel" if td.multilabel else "singlelabel",
                                    clip_seconds=td.clip_seconds)  # fmt: skip
    module = TaggingModule(model, td.multilabel, cfg, teacher=teacher, has_mask=td.has_mask)
    if resume:
        run_labels = resumed_epoch[1]
        if run_labels is not None and list(run_labels) != list(td.labels):
            raise DataError(f"cannot resume {out}: its classes ({', '.join(run_labels)[:200]}) differ from the "
                            f"data's ({', '.join(td.labels)[:200]})")  # fmt: skip

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
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")  # a resume
    # a frozen backbone is in eval mode on purpose (its BatchNorm statistics stay the released ones)
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from ..util.atomic import write_text
    from .report import EpochReport, describe_run, run_config

    report = EpochReport(td.multilabel, out, cfg.val_every)
    steps = data.steps_per_epoch()
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:03d}", auto_insert_metric_name=False,
                                 save_last=True, save_top_k=1, every_n_epochs=cfg.val_every)  # fmt: skip
    if trainer_is_rank_zero():
        print(describe_run(td, cfg, model), file=sys.stderr, flush=True)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.json", json.dumps(run_config(cfg, td), indent=1) + "\n")
    callbacks = [checkpoint, report]
    stopper = None
    if cfg.early_stop:
        from .report import EarlyStopOnceLearning

        # patience counts validations, from the end of the warm-up (or the first tenth of the run) on: a network
        # still near chance while its LR rises has not stopped improving
        start = max(math.ceil(cfg.warm_up_len) + 1, math.ceil(0.1 * cfg.epochs))
        stopper = EarlyStopOnceLearning(f"val/{report.key}", cfg.patience, start)
        callbacks.append(stopper)
    options = dict(max_epochs=cfg.epochs, logger=loggers, callbacks=callbacks,
                   plugins=[AtomicCheckpointIO()], use_distributed_sampler=False, deterministic=True,
                   enable_progress_bar=progress, num_sanity_val_steps=0, enable_model_summary=False,
                   log_every_n_steps=min(10, steps), check_val_every_n_epoch=cfg.val_every)  # fmt: skip
    options.update({k: v for k, v in trainer_kwargs.items() if v is not None})
    if isinstance(options.get("max_time"), (int, float)):
        options["max_time"] = {"seconds": options["max_time"]}
    if cfg.freeze_backbone and teacher is None and getattr(model.config, "head_type", None) == "mlp":
        # the frozen network gives each clip the same embedding every epoch: compute it once
        if trainer_is_rank_zero():
            print("frozen backbone: computing the embeddings of the clips once ...", file=sys.stderr, flush=True)
        data.use_embeddings(model)
    trainer = L.Trainer(**options)
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None)
    final = out / "model.pt"
    if trainer.is_global_zero:
        best = out / "model_best.pt"
        stopped = stopper is not None and stopper.stopped_epoch > 0 and best.is_file()
        if stopped:  # the best validation's weights (written when it was reached), not the last epoch's
            from ..models.checkpoint import load_checkpoint

            module.model.load_state_dict(load_checkpoint(best).state_dict)
            print(report.early_stop_note(cfg.patience, cfg.val_every), file=sys.stderr, flush=True)
        info = module.model.info
        # the final model says what it was trained from and what it measured (its card shows both)
        module.model.info = info.replace(
            results=report.results(td, best=stopped), base_model=info.base_model or info.name
        )
        save_checkpoint(module.model, final, extra={"train_config": run_config(cfg, td)})
        if export_plain:
            save_checkpoint(module.model, out / "model_plain.pt", plain=True)
        print(report.summary(final, kept_best=stopped), file=sys.stderr, flush=True)
    return module, final


def _check_resume(last: Path) -> tuple[int, list[str] | None]:
    """The epoch a run's last checkpoint finished and its classes; a clear error if it cannot be read."""
    from ..util.errors import first_line

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
def evaluate(task: str, data: str | os.PathLike, model, settings: dict | None = None, batch_size: int = 8,
             device: str = "cpu", progress: bool = False, weights: str | None = None) -> dict[str, float]:  # fmt: skip
    """Metrics of ``model`` (a network, or anything :func:`dymn.load` takes, with ``weights``) on a task's
    evaluation set (mAP / ROC-AUC / d-prime, or accuracy); ``settings``: :class:`~dymn.train.config.DataConfig`
    fields (clip_seconds, fold, val_fraction, val_csv). A folder or CSV without a held-out part is evaluated
    whole unless ``val_fraction`` (or ``val_csv``) asks for a split; the data is read before the model."""
    from tqdm.auto import tqdm

    from ..datasets.common import EpochSampler, collate
    from ..inference.tagging import Tagger
    from ..models.info import ModelInfo
    from .metrics import summarize

    settings = dict(settings or {})
    if task in ("folder", "csv") and settings.get("val_fraction") is None and not settings.get("val_csv"):
        settings["val_fraction"] = 1.0  # all of it: a user evaluating their folder means the folder
    td = read_task(task, data, data_config(task, settings), train=False)
    if len(td.val) == 0:
        raise DataError(f"{data}: the evaluation selection is empty ({task}, {settings or 'defaults'}): nothing "
                        "to score")  # fmt: skip
    if model is None or isinstance(model, (str, os.PathLike, list, tuple)) or weights is not None:
        from ..hub.loader import load

        model = load(model, weights=weights)
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
