"""Clip-level tagging: decode files, batch clips of equal length, return sorted tags."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .audio import AudioError, load_audio
from .frontend import MelFrontend

# Clips shorter than this give unreliable tags: the network downsamples time 32x (10 s training clips).
SHORT_CLIP_SECONDS = 1.0


@dataclass
class Tag:
    label: str
    index: int
    probability: float


@dataclass
class TagResult:
    file: str
    duration: float
    tags: list[Tag]

    def to_dict(self) -> dict:
        return asdict(self)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow warnings for large negative logits."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available to PyTorch")
    return dev


def top_tags(probs: np.ndarray, labels: Sequence[str], top_k: int = 10) -> list[Tag]:
    """Tags sorted by probability (stable for ties); ``top_k <= 0`` keeps all."""
    order = np.argsort(-probs, kind="stable")
    if top_k > 0:
        order = order[:top_k]
    return [Tag(labels[i], int(i), float(probs[i])) for i in order]


class Tagger:
    """Runs a model with its own frontend on waveforms or files.

    Clips are batched only with clips of exactly the same length, so batched results equal
    one-by-one results (zero padding would change the convolutions near the clip end).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device | None = "cpu",
        batch_size: int = 8,
        amp: bool | None = None,
        fast: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        if fast and getattr(model, "arch", None) in ("mn", "dymn"):
            from .optimize import optimize

            # same outputs (within 1e-4), faster; the caller's model is left untouched
            model = optimize(model, device=self.device)
        self.model = model.to(self.device).eval()
        self.takes_waveform = bool(getattr(model, "takes_waveform", False))
        self.frontend = MelFrontend.from_config(model.frontend_config).to(self.device).eval()
        self.labels: list[str] = list(model.labels)
        self.sample_rate = model.frontend_config.sample_rate
        self.batch_size = batch_size
        # the released models were trained under fp16 autocast on GPUs; fp32 on CPU
        self.amp = (self.device.type == "cuda") if amp is None else amp

    @classmethod
    def from_pretrained(
        cls, name: str | None = "dymn10_as", weights: str | os.PathLike | None = None, **kwargs
    ) -> Tagger:
        from .factory import create_model

        model = create_model(name, weights=weights, pretrained=weights is None)
        return cls(model, **kwargs)

    def _autocast(self):
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def run_batch(self, waves: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(logits, embeddings) for a (B, N) batch of equal-length waveforms."""
        x = torch.as_tensor(waves, dtype=torch.float32, device=self.device)
        if x.dim() == 1:
            x = x[None]
        with self._autocast():
            if self.takes_waveform:  # an ensemble or an exported model with its own frontend
                logits, emb = self.model(x)
            else:
                logits, emb = self.model(self.frontend(x).unsqueeze(1))
        return logits.float().cpu().numpy(), emb.float().cpu().numpy()

    def logits_batch(self, waves: np.ndarray | torch.Tensor) -> np.ndarray:
        """Logits for a (B, N) batch of equal-length waveforms."""
        return self.run_batch(waves)[0]

    def logits(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Logits (len(waves), C) for clips of any lengths, batched by equal length."""
        out = np.zeros((len(waves), len(self.labels)), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(waves):
            by_len.setdefault(len(w), []).append(i)
        for idx in by_len.values():
            for s in range(0, len(idx), self.batch_size):
                part = idx[s : s + self.batch_size]
                out[part] = self.logits_batch(np.stack([waves[i] for i in part]))
        return out

    def predict(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities (sigmoid of logits), (len(waves), C)."""
        return sigmoid(self.logits(waves))

    def tag_files(
        self,
        paths: Iterable[str | os.PathLike],
        top_k: int = 10,
        on_error: Callable[[str, str], None] | None = None,
        on_warning: Callable[[str, str], None] | None = None,
        progress: bool = False,
        chunk: int | None = None,
    ) -> Iterator[TagResult]:
        """Tag files in order; an unreadable file goes to ``on_error(path, message)`` and is skipped."""
        paths = [str(p) for p in paths]
        chunk = chunk or max(4 * self.batch_size, 16)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), unit="file", disable=not progress, desc="tagging")
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            decode = lambda p: _decode(p, self.sample_rate)  # noqa: E731
            for start in range(0, len(paths), chunk):
                part = paths[start : start + chunk]
                decoded = list(pool.map(decode, part))
                good = [(p, w) for p, w in zip(part, decoded) if not isinstance(w, str)]
                probs = self.predict([w for _, w in good]) if good else np.zeros((0, len(self.labels)))
                results = {p: (w, pr) for (p, w), pr in zip(good, probs)}
                for p, w in zip(part, decoded):
                    bar.update(1)
                    if isinstance(w, str):
                        if on_error:
                            on_error(p, w)
                        continue
                    wave, pr = results[p]
                    duration = len(wave) / self.sample_rate
                    if duration < SHORT_CLIP_SECONDS and on_warning:
                        on_warning(p, f"only {duration * 1000:.0f} ms long: tags of clips under "
                                      f"{SHORT_CLIP_SECONDS:g} s are unreliable")  # fmt: skip
                    yield TagResult(p, round(duration, 4), top_tags(pr, self.labels, top_k))
        bar.close()


def _decode(path: str, sample_rate: int) -> np.ndarray | str:
    try:
        return load_audio(Path(path), sample_rate)
    except AudioError as exc:
        return str(exc)
    except Exception as exc:  # a decoder crash on one file must not stop a batch
        return f"{path}: could not decode ({type(exc).__name__}: {exc})"
