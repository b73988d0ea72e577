"""What a training run tells its user: one line per epoch, a closing summary, and logs that survive a resume."""

from __future__ import annotations

import csv
import os
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

# the validation metric that decides the best epoch, per task type
MAIN_METRIC = {True: "mAP", False: "accuracy"}


def _value(metrics: dict, key: str) -> float | None:
    v = metrics.get(key)
    return None if v is None else float(v)


def trainer_is_rank_zero() -> bool:
    """True in the process that reports (before the trainer exists: from the launcher's environment)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0))) == 0


def run_config_found(td) -> dict:
    """What was found in the data: classes, clips per split, files left out."""
    return dict(classes=list(td.labels), multilabel=td.multilabel,
                train_clips=len(td.train) if td.train is not None else 0,
                val_clips=len(td.val) if td.val is not None else 0, skipped_files=len(td.skipped))  # fmt: skip


def run_config(cfg, td) -> dict:
    """The resolved configuration of a run, as saved in ``config.json`` and in ``model.pt``: the
    TrainConfig, the DataConfig, and what was found in the data."""
    return {"train": cfg.to_dict(), "data": td.cfg.to_dict(), "found": run_config_found(td)}


def describe_run(td, cfg, model) -> str:
    """What is about to happen: clips per class and split, files left out, the resolved settings."""
    lines = []
    n_tr, n_va = len(td.train), len(td.val) if td.val is not None else 0
    kind = "multi-label" if td.multilabel else "single-label"
    clip = f"{td.clip_seconds:g} s clips" if td.clip_seconds else "clips of their own length"
    lines.append(f"data: {len(td.labels)} classes ({kind}), {n_tr} training / {n_va} validation clips, {clip}")
    targets = getattr(td.train, "targets", None)
    val_targets = getattr(td.val, "targets", None)
    if callable(targets) and len(td.labels) <= 50:
        tr = targets().sum(axis=0)
        va = val_targets().sum(axis=0) if callable(val_targets) else [0] * len(td.labels)
        width = max(len(str(lab)) for lab in td.labels)
        lines.append(f"  {'class'.ljust(width)}  train  val")
        lines += [f"  {str(lab).ljust(width)}  {int(a):5d}  {int(b):3d}" for lab, a, b in zip(td.labels, tr, va)]
    for problem in td.skipped[:10]:
        lines.append(f"  left out: {problem}")
    if len(td.skipped) > 10:
        lines.append(f"  left out: {len(td.skipped) - 10} more unreadable files")
    c = cfg
    start = "frozen backbone, training the classifier" if c.freeze_backbone else "all layers"
    lines.append(
        f"settings (recipe {c.recipe}): {model.info.name}, {start}; {c.epochs} epochs of batch {c.batch_size} "
        f"(about {-(-n_tr // c.batch_size) * c.epochs} steps), peak lr {c.lr:g}"
        + (f" with layer decay {c.lr_decay:g}" if c.lr_decay != 1 else "")
        + f", warm-up {c.warm_up_len:g} epochs, ramp-down from epoch {c.ramp_down_start:g} over {c.ramp_down_len:g}"
        f"{' (per step)' if c.lr_per_step else ''}; mixup {c.mixup_alpha:g}; validation every {c.val_every} epoch(s)"
    )  # fmt: skip
    return "\n".join(lines)


class EpochReport(L.Callback):
    """After each validation: ``epoch 3/80  train loss 0.412  val accuracy 0.950 (best 0.950, epoch 3)  1.2 s``.

    Printed on stderr by rank 0, through the progress bar when one is shown (so lines and bar do not
    interleave), plainly otherwise (also in redirected logs). The best model on the validation split is
    kept as ``model_best.pt`` in the run folder.
    """

    def __init__(self, multilabel: bool, out_dir=None, every: int = 1, out=None):
        self.key = MAIN_METRIC[multilabel]
        self.out_dir = out_dir
        self.every = every
        self.out = out
        self.best: tuple[float, int] | None = None
        self.last: float | None = None
        self.last_epoch = 0
        self.started = time.monotonic()
        self._since = self.started

    def _print(self, trainer: L.Trainer, text: str) -> None:
        if not trainer.is_global_zero:
            return
        bar = trainer.progress_bar_callback
        if bar is not None and trainer.enable_progress_bar:
            bar.print(text)
        else:
            print(text, file=self.out or sys.stderr, flush=True)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if trainer.sanity_checking or (epoch % self.every and epoch != trainer.max_epochs):
            return
        m = trainer.callback_metrics
        loss = _value(m, "train/loss_epoch") or _value(m, "train/loss")
        val = _value(m, f"val/{self.key}")
        parts = [f"epoch {epoch}/{trainer.max_epochs}"]
        parts.append(f"train loss {loss:.4f}" if loss is not None else "train loss -")
        if val is not None:
            self.last = val
            if self.best is None or val > self.best[0]:
                self.best = (val, epoch)
                if self.out_dir is not None and trainer.is_global_zero:
                    from ..models.network import save_checkpoint

                    save_checkpoint(pl_module.model, self.out_dir / "model_best.pt")
            parts.append(f"val {self.key} {val:.4f} (best {self.best[0]:.4f}, epoch {self.best[1]})")
        skipped = _value(m, "train/skipped_clips")
        if skipped:
            parts.append(f"{int(skipped)} clip(s) skipped")
        span = epoch - self.last_epoch
        parts.append(f"{time.monotonic() - self._since:.1f} s for {'this epoch' if span == 1 else f'{span} epochs'}")
        self._since, self.last_epoch = time.monotonic(), epoch
        self._print(trainer, "  ".join(parts))

    def results(self, td, best: bool = False) -> dict:
        """What the run measured, for the final model's description and its model card: the final model's
        validation metric (the last epoch's, or with ``best`` the best's), the best, and the data it saw."""
        out = {}
        if self.last is not None:
            out[f"val_{self.key}"] = round(self.best[0] if best else self.last, 6)
            out[f"best_val_{self.key}"] = round(self.best[0], 6)
            out["best_epoch"] = self.best[1]
        found = run_config_found(td)
        out.update(train_clips=found["train_clips"], val_clips=found["val_clips"], classes=len(found["classes"]))
        return out

    def early_stop_note(self, patience: int, every: int) -> str:
        """Why the run stopped before its planned end."""
        return (f"stopped early after epoch {self.last_epoch}: val {self.key} has not improved for {patience} "
                f"validations ({patience * every} epochs) since {self.best[0]:.4f} at epoch {self.best[1]}; the "
                "final model is that epoch's (--no-early-stop runs every planned epoch)")  # fmt: skip

    def summary(self, final=None, kept_best: bool = False) -> str:
        wall = time.monotonic() - self.started
        kept = f"the best, epoch {self.best[1]}" if kept_best and self.best else "last epoch"
        where = f"; model: {final} ({kept})" if final is not None else ""
        if self.last is None:
            return f"trained for {wall:.0f} s (no validation split){where}"
        best = f", best {self.best[0]:.4f} at epoch {self.best[1]}"
        if final is not None:
            best += f" (kept as {final.parent / 'model_best.pt'})"
        return f"trained for {wall:.0f} s: last val {self.key} {self.last:.4f}{best}{where}"


class EarlyStopOnceLearning(EarlyStopping):
    """Lightning's EarlyStopping on a metric where higher is better, counting validations from ``start_epoch`` on
    and only once the metric has risen above its value there: a run that has not started learning (still at
    chance) has not stopped improving. A run without a validation split is not stopped (nothing to watch)."""

    def __init__(self, monitor: str, patience: int, start_epoch: int):
        super().__init__(monitor=monitor, mode="max", patience=patience, strict=False, check_on_train_epoch_end=False,
                         verbose=False)  # fmt: skip
        self.start_epoch, self.first, self.learning = start_epoch, None, False

    def _run_early_stopping_check(self, trainer) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.current_epoch + 1 < self.start_epoch or value is None:
            return
        if not self.learning:
            if self.first is None:
                self.first = float(value)
            self.learning = float(value) > self.first
            if not self.learning:
                return
        super()._run_early_stopping_check(trainer)


class _KeepingWriter(ExperimentWriter):
    """Keeps the rows of the epochs a resumed run had finished (Lightning deletes ``metrics.csv``)."""

    keep_epochs_through: int | None = None

    def _check_log_dir_exists(self) -> None:
        keep = self.keep_epochs_through
        if keep is None or not os.path.isfile(self.metrics_file_path):
            return super()._check_log_dir_exists()
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if not r.get("epoch") or int(float(r["epoch"])) <= keep]
        with open(self.metrics_file_path, "w", newline="") as f:  # rows of an epoch cut short go
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = keys


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that a resumed run keeps the metrics of its finished epochs."""

    def __init__(self, save_dir, keep_epochs_through: int | None = None):
        super().__init__(save_dir, name="logs", version="")
        self.keep_epochs_through = keep_epochs_through

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            writer = _KeepingWriter.__new__(_KeepingWriter)
            writer.keep_epochs_through = self.keep_epochs_through
            writer.__init__(log_dir=self.log_dir)
            self._experiment = writer
        return self._experiment
