"""A task's data as a Lightning data module: the splits of :func:`~dymn.train.tasks.read_task`, loaded in
deterministic, resumable order (every rank of a DDP run gets its own share)."""

from __future__ import annotations

import os

import lightning as L
import numpy as np
import torch

from ..datasets.common import EpochSampler, collate
from .config import DataConfig
from .recipes import data_config
from .tasks import TaskData, read_task


class TaskDataModule(L.LightningDataModule):
    """Training and validation clips of a task (``folder``, ``csv``, ``esc50``, ... see ``dymn.train.TASKS``).

    The data is read (and "auto" settings resolved) on construction, so that the classes and the number of
    training clips are known before the model is built and the training configuration resolved::

        data = TaskDataModule("folder", "my_sounds/")
        model = dymn.load("mn10_as", num_classes=data.num_classes)
        cfg = train_config("folder", model.info.arch, data.num_train)
        fit(model, data, cfg, "runs/mine")
    """

    def __init__(self, task: str, root: str | os.PathLike, cfg: DataConfig | None = None, seed: int = 0,
                 batch_size: int = 16, train: bool = True):  # fmt: skip
        super().__init__()
        self.task = task
        self.root = root
        self.seed = seed
        self.batch_size = batch_size  # fit() sets it from the TrainConfig
        self.data: TaskData = read_task(task, root, cfg or data_config(task), seed=seed, train=train)
        self._clips = (self.data.train, self.data.val)

    # what the rest of a run needs to know about the data
    @property
    def cfg(self) -> DataConfig:
        return self.data.cfg

    @property
    def labels(self) -> list[str]:
        return self.data.labels

    @property
    def num_classes(self) -> int:
        return len(self.data.labels)

    @property
    def num_train(self) -> int:
        return len(self.data.train) if self.data.train is not None else 0

    @property
    def multilabel(self) -> bool:
        return self.data.multilabel

    def _loader(self, dataset, train: bool) -> torch.utils.data.DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        weights = getattr(dataset, "sample_weights", None) if train else None
        sampler = EpochSampler(len(dataset), shuffle=train, seed=self.seed, weights=weights,
                               num_samples=getattr(dataset, "epoch_len", None) if train else None,
                               rank=rank, world_size=world)  # fmt: skip
        workers = int(self.cfg.num_workers or 0)
        return torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
            drop_last=False, persistent_workers=workers > 0,
        )  # fmt: skip

    def use_embeddings(self, model: torch.nn.Module, batch_size: int = 32) -> None:
        """Replace the clips by ``model``'s embeddings, computed once, without augmentation: with a frozen
        backbone, the classifier then trains on them in seconds rather than re-running the network each step."""
        train, val = self._clips
        workers = int(self.cfg.num_workers or 0)
        self.data.train = EmbeddingDataset.of(model, train, batch_size, workers) if train is not None else None
        self.data.val = EmbeddingDataset.of(model, val, batch_size, workers) if val is not None else None

    def use_clips(self) -> None:
        """Back to the clips (after :meth:`use_embeddings`)."""
        self.data.train, self.data.val = self._clips

    def steps_per_epoch(self) -> int:
        """Optimizer steps in one training epoch (on this rank)."""
        return max(1, len(self._loader(self.data.train, True)))

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self.data.train, True)

    def val_dataloader(self):
        return self._loader(self.data.val, False) if self.data.val is not None else []


class EmbeddingDataset(torch.utils.data.Dataset):
    """Clips as a frozen network's pooled embeddings, with their targets (and masks)."""

    def __init__(self, items: list[dict], labels: list[str]):
        self.items = items
        self.labels = labels

    @classmethod
    @torch.inference_mode()
    def of(cls, model: torch.nn.Module, dataset, batch_size: int = 32, num_workers: int = 0) -> EmbeddingDataset:
        from ..audio.frontend import MelFrontend

        frontend = MelFrontend.from_config(model.info.frontend).eval()
        was_training = model.training
        model.eval()
        plain = dataset.plain() if hasattr(dataset, "plain") else dataset
        loader = torch.utils.data.DataLoader(plain, batch_size=batch_size, collate_fn=collate,
                                             num_workers=num_workers)  # fmt: skip
        items: list[dict] = []
        try:
            for batch in loader:
                if batch["empty"]:
                    continue
                _, emb = model(frontend(batch["wave"]).unsqueeze(1))
                for i in range(len(emb)):
                    item = {"embedding": emb[i].float().numpy(), "target": batch["target"][i].numpy(),
                            "id": batch["id"][i], "index": int(batch["index"][i])}  # fmt: skip
                    if "mask" in batch:
                        item["mask"] = batch["mask"][i].numpy()
                    items.append(item)
        finally:
            model.train(was_training)
        return cls(items, list(getattr(dataset, "labels", [])))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[int(i)]

    def set_epoch(self, epoch: int) -> None:  # the embeddings do not change between epochs
        pass

    def targets(self) -> np.ndarray:
        return np.stack([it["target"] for it in self.items]) if self.items else np.zeros((0, len(self.labels)))
