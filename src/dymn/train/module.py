"""The LightningModule: frontend augmentation, mixup, label + distillation losses, schedules, metrics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..audio.frontend import MelFrontend
from .config import TrainConfig
from .losses import kd_loss, label_loss, mix, mixup_lambdas
from .metrics import summarize
from .schedule import exp_warmup_linear_down


def _step_seed(*parts: int) -> int:
    digest = hashlib.sha256(":".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


class TaggingModule(L.LightningModule):
    """Trains ``model`` on waveforms: frontend (train-mode fmin/fmax and masking) -> mixup -> losses."""

    def __init__(self, model: torch.nn.Module, multilabel: bool, cfg: TrainConfig, teacher=None,
                 has_mask: bool = False):  # fmt: skip
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.multilabel = multilabel
        self.has_mask = has_mask
        self.teacher = teacher
        # a frame-level detector: strong logits (B, C, T) against targets per frame (B, T, C)
        self.frame_level = getattr(model.info, "level", "clip") == "frame"
        self.frontend = MelFrontend.from_config(
            model.info.frontend, freqm=cfg.freqm, timem=cfg.timem,
            fmin_aug_range=cfg.fmin_aug_range, fmax_aug_range=cfg.fmax_aug_range,
        )  # fmt: skip
        if cfg.bn_momentum is not None:
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.momentum = cfg.bn_momentum
        if cfg.freeze_backbone:
            for name, p in model.named_parameters():
                p.requires_grad_(not self._in_backbone(name))
        self.model.train()  # factories return eval-mode models; Lightning keeps whatever mode it gets
        self._freeze_modes()
        self.frontend.train()
        self.skipped = 0
        self._val: list = []

    def _in_backbone(self, name: str) -> bool:
        """Whether a parameter or module belongs to the feature extractor (what a frozen backbone keeps)."""
        if self.frame_level:  # detectors: the MobileNet; the sequence model and heads train
            return name == "model" or name.startswith("model.")
        return not name.startswith("classifier")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of spectrograms: (B, C), or (B, T, C) per frame for a detector."""
        out = self.model(x)[0]
        return out.transpose(1, 2) if self.frame_level else out

    def head(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits from the pooled embedding (the MLP head after its pooling): a frozen backbone's fast path."""
        return self.model.classifier[2:](embedding)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            self._freeze_modes()
        return self

    def _freeze_modes(self) -> None:
        if self.cfg.freeze_backbone:  # frozen features keep their BatchNorm statistics too
            for name, m in self.model.named_modules():
                if name and self._in_backbone(name):
                    m.eval()

    # --- training -----------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        data = getattr(self.trainer, "datamodule", None)
        if data is not None and data.data.train is not None:  # augmentation draws depend on the epoch
            data.data.train.set_epoch(self.current_epoch)
        if self.cfg.temperature_schedule and self.model.info.arch == "dymn":
            t = self.model.update_temperature(self.current_epoch)
            self.log("train/dyconv_temperature", t, on_epoch=True, on_step=False)

    def training_step(self, batch, batch_idx):
        self.skipped += int(batch["skipped"])
        if batch["empty"]:
            return None
        # every random draw of this step depends only on (seed, epoch, step, rank): resumable, reproducible
        seed = _step_seed(self.cfg.seed, self.current_epoch, batch_idx, self.global_rank)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        y, mask = batch["target"], batch.get("mask")
        wave = batch.get("wave")
        perm = lam = None
        with self.trainer.profiler.profile("[dymn] frontend and spectrogram augmentation"):
            # a frozen backbone's clips come as its embeddings (computed once): mixup mixes those
            x = batch["embedding"] if "embedding" in batch else self.frontend(wave).unsqueeze(1)
            if self.cfg.mixup_alpha > 0 and len(x) > 1:
                perm, lam = mixup_lambdas(len(x), self.cfg.mixup_alpha, gen)
                perm, lam = perm.to(self.device), lam.to(self.device)
                x, y = mix(x, perm, lam), mix(y, perm, lam)
                if mask is not None:
                    mask = torch.maximum(mask, mask[perm])
        logits = self.head(x) if "embedding" in batch else self.logits(x)
        loss = lab = label_loss(logits, y, self.multilabel, mask)
        if self.teacher is not None:
            t_probs, valid = self.teacher(batch["id"], wave)
            t_probs = t_probs.to(logits.dtype)
            if perm is not None:
                t_probs, valid = mix(t_probs, perm, lam), valid & valid[perm]
            kd = kd_loss(logits, t_probs, valid)
            loss = self.cfg.kd_lambda * lab + (1 - self.cfg.kd_lambda) * kd
            self.log("train/kd_loss", kd, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        self.log("train/label_loss", lab, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/skipped_clips", float(self.skipped), on_epoch=True, sync_dist=True)

    # --- evaluation -----------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        if batch["empty"]:
            return
        if "embedding" in batch:
            logits = self.head(batch["embedding"])
        else:
            logits = self.logits(self.frontend(batch["wave"]).unsqueeze(1))
        probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)
        mask, target = batch.get("mask"), batch["target"]
        loss = label_loss(logits, target, self.multilabel, mask)
        self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=len(probs))
        if self.frame_level:  # every frame is a sample of the metrics (frame-level mAP)
            probs, target = probs.flatten(0, 1), target.flatten(0, 1)
        self._val.append((probs.float(), target.float(), None if mask is None else mask.float()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        probs = torch.cat([p for p, _, _ in self._val])
        targets = torch.cat([t for _, t, _ in self._val])
        mask = torch.cat([m for _, _, m in self._val]) if self._val[0][2] is not None else None
        self._val.clear()
        if self.trainer.world_size > 1:
            probs = self.all_gather(probs).flatten(0, 1)
            targets = self.all_gather(targets).flatten(0, 1)
            mask = self.all_gather(mask).flatten(0, 1) if mask is not None else None
        metrics = summarize(targets.cpu().numpy(), probs.cpu().numpy(), self.multilabel,
                            None if mask is None else mask.cpu().numpy())  # fmt: skip
        for k, v in metrics.items():
            self.log(f"val/{k}", v, prog_bar=k in ("mAP", "accuracy"), rank_zero_only=True)

    # --- optimisation ---------------------------------------------------------------------------------
    def configure_optimizers(self):
        c = self.cfg
        opt_cls = torch.optim.AdamW if c.adamw else torch.optim.Adam
        opt = opt_cls(layer_groups(self.model, c.lr, c.lr_decay), lr=c.lr, weight_decay=c.weight_decay)
        sched = exp_warmup_linear_down(c.warm_up_len, c.ramp_down_start, c.ramp_down_len, c.last_lr_value)
        if c.lr_per_step:
            steps = self.trainer.datamodule.steps_per_epoch()
            lam = lambda step: sched(step / steps)  # noqa: E731
            return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lam),
                                                       "interval": "step"}}  # fmt: skip
        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, sched),
                                                   "interval": "epoch"}}  # fmt: skip

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        from ..models.checkpoint import checkpoint_meta

        checkpoint["dymn"] = {"meta": checkpoint_meta(self.model), "train_config": self.cfg.to_dict(),
                              "multilabel": self.multilabel}  # fmt: skip

    def state_dict(self, *args, **kwargs):
        # the teacher is not part of a run's state (a table is re-read, online models re-downloaded)
        sd = super().state_dict(*args, **kwargs)
        return {k: v for k, v in sd.items() if not k.startswith("teacher.")}

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        own_teacher = {k: v for k, v in super().state_dict().items() if k.startswith("teacher.")}
        return super().load_state_dict({**state_dict, **own_teacher}, strict=strict, **kwargs)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a crash or a full disk never leaves a
    half-written file, and the previous checkpoint stays intact."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        from ..util.atomic import atomic_write

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        # run checkpoints hold plain containers, tensors and numbers: never unpickle anything else
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def layer_groups(model: torch.nn.Module, lr: float, decay: float = 1.0) -> list[dict]:
    """Optimizer parameter groups with layer-wise LR decay: the classifier gets ``lr``, the block below it
    ``lr * decay``, the one below that ``lr * decay**2``, ... (``decay=1``: one LR for all)."""

    def depth(name: str) -> int:  # 0 = stem ... top = classifier
        parts = name.split(".")
        if parts[:2] == ["model", "fmn"]:  # a detector's MobileNet
            parts = parts[2:]
        if parts[0] in ("features", "layers"):
            return 1 + int(parts[1])
        heads = {"in_c": 0, "out_c": 10_000, "classifier": 10_001, "strong_head": 10_001, "weak_head": 10_001}
        return heads.get(parts[0], 10_000)

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    levels = sorted({depth(n) for n, _ in named})
    rank = {d: len(levels) - 1 - i for i, d in enumerate(levels)}  # 0 for the top
    groups: dict[int, list] = {}
    for n, p in named:
        groups.setdefault(rank[depth(n)], []).append(p)
    return [{"params": ps, "lr": lr * decay**r} for r, ps in sorted(groups.items())]


def seed_all(seed: int) -> None:
    L.seed_everything(seed, workers=True, verbose=False)
    np.random.seed(seed % (2**32))
