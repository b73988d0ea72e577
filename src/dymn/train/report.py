"""What a training run tells its user: one line per epoch, a closing summary, and logs that survive a resume."""

from __future__ import annotations

import csv
import os
import sys
import time

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

# the validation metric that decides the best epoch, per task type
MAIN_METRIC = {True: "mAP", False: "accuracy"}


def _value(metrics: dict, key: str) -> float | None:
    v = metrics.get(key)
    return None if v is None else float(v)


class EpochReport(L.Callback):
    """After each validation: ``epoch 3/80  train loss 0.412  val accuracy 0.950 (best 0.950, epoch 3)  12 s``.

    Printed on stderr by rank 0, through the progress bar when one is shown (so lines and bar do not
    interleave), plainly otherwise (also in redirected logs).
    """

    def __init__(self, multilabel: bool, out=None):
        self.key = MAIN_METRIC[multilabel]
        self.out = out
        self.best: tuple[float, int] | None = None
        self.last: float | None = None
        self.started = time.monotonic()
        self._epoch_start = self.started

    def _print(self, trainer: L.Trainer, text: str) -> None:
        if not trainer.is_global_zero:
            return
        bar = trainer.progress_bar_callback
        if bar is not None and trainer.enable_progress_bar:
            bar.print(text)
        else:
            print(text, file=self.out or sys.stderr, flush=True)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        loss = _value(m, "train/loss_epoch") or _value(m, "train/loss")
        val = _value(m, f"val/{self.key}")
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        parts.append(f"train loss {loss:.4f}" if loss is not None else "train loss -")
        if val is not None:
            self.last = val
            if self.best is None or val > self.best[0]:
                self.best = (val, trainer.current_epoch + 1)
            parts.append(f"val {self.key} {val:.4f} (best {self.best[0]:.4f}, epoch {self.best[1]})")
        skipped = _value(m, "train/skipped_clips")
        if skipped:
            parts.append(f"{int(skipped)} clip(s) skipped")
        parts.append(f"{time.monotonic() - self._epoch_start:.1f} s")
        self._print(trainer, "  ".join(parts))

    def summary(self) -> str:
        wall = time.monotonic() - self.started
        if self.last is None:
            return f"trained for {wall:.0f} s (no validation split)"
        return (f"trained for {wall:.0f} s: final val {self.key} {self.last:.4f}, "
                f"best {self.best[0]:.4f} at epoch {self.best[1]}")  # fmt: skip


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
