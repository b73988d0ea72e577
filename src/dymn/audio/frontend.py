"""Log-mel frontend of the released models (EfficientAT ``AugmentMelSTFT``), exact in eval mode."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FrontendConfig:
    """What a model expects from its input; stored with every registry entry and checkpoint."""

    sample_rate: int = 32000
    n_mels: int = 128
    win_length: int = 800
    hop_length: int = 320
    n_fft: int = 1024
    fmin: float = 0.0
    fmax: float | None = None
    # None: log(mel + 1e-5) (EfficientAT); a value: log(max(mel, value)) (the 16 kHz SED models: 1e-7)
    log_floor: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values) -> FrontendConfig:
        """A config from a file's metadata (a checkpoint's or an ONNX file's), checked first: types, sane ranges,
        and the work and memory they imply (a hostile file must not make us allocate gigabytes), else a
        ValueError that names the value."""
        if not isinstance(values, dict):
            raise ValueError("the frontend must be a mapping")
        names = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in values if k not in names)
        if unknown:
            raise ValueError(f"unknown frontend option(s): {', '.join(unknown)[:200]}")
        for key, (lo, hi) in FRONTEND_RANGES.items():
            if key in values:
                _bounded(values[key], lo, hi, key, integer=True)
        for key in ("fmin", "fmax"):
            if values.get(key) is not None:
                _bounded(values[key], 0, 192000, key)
        if values.get("log_floor") is not None:
            _bounded(values["log_floor"], 1e-30, 1.0, "log_floor")
        cfg = cls(**values)
        if cfg.win_length > cfg.n_fft:
            raise ValueError(f"win_length {cfg.win_length} is longer than n_fft {cfg.n_fft}")
        bins = cfg.sample_rate / cfg.hop_length * (cfg.n_fft // 2 + 1)
        if bins > MAX_BINS_PER_SECOND:
            raise ValueError(
                f"hop_length {cfg.hop_length} with n_fft {cfg.n_fft} at {cfg.sample_rate} Hz means "
                f"{bins:.3g} STFT values per second of audio (at most {MAX_BINS_PER_SECOND:.0e})"
            )
        return cfg

    def frames(self, samples: int) -> int:
        """Spectrogram frames of ``samples`` samples of audio (centred STFT: one frame per hop, plus one)."""
        return 1 + (int(samples) - 1) // self.hop_length


# what a file may ask for: the released models use 16/32 kHz, 128 mels, n_fft 1024 (at most 512 STFT frames and
# 51,300 values per second); these bounds are 10-20x beyond any of them
FRONTEND_RANGES = {"sample_rate": (1000, 384000), "n_mels": (8, 512), "win_length": (16, 16384),
                   "hop_length": (16, 16384), "n_fft": (16, 16384)}  # fmt: skip
MAX_BINS_PER_SECOND = 1e6


def _bounded(value, lo: float, hi: float, what: str, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number, got {value!r:.60}")
    if integer and value != int(value):
        raise ValueError(f"{what} must be a whole number, got {value!r:.60}")
    if not lo <= value <= hi:
        raise ValueError(f"{what} = {value} is outside the sane range {lo}..{hi}")


def _mel_scalar(f: float) -> float:
    return 1127.0 * math.log(1.0 + f / 700.0)


@lru_cache(maxsize=256)
def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi-style triangular filters (linear in mel), (n_mels, n_fft // 2 + 1), Nyquist column zero.

    Computed in float32 in the same order as the released preprocessing (torchaudio's
    ``get_mel_banks``): float64 filters differ by ~1e-5, which the log makes visible.
    """
    nyquist = 0.5 * sample_rate
    if not (0.0 <= fmin < nyquist and 0.0 < fmax <= nyquist and fmin < fmax):
        raise ValueError(f"need 0 <= fmin < fmax <= {nyquist:g} Hz, got fmin={fmin}, fmax={fmax}")
    m_lo, m_hi = _mel_scalar(fmin), _mel_scalar(fmax)
    delta = (m_hi - m_lo) / (n_mels + 1)
    b = torch.arange(n_mels).unsqueeze(1)
    left, centre, right = m_lo + b * delta, m_lo + (b + 1.0) * delta, m_lo + (b + 2.0) * delta
    freqs = (sample_rate / n_fft) * torch.arange(n_fft // 2, dtype=torch.float32)
    m_k = (1127.0 * (1.0 + freqs / 700.0).log()).unsqueeze(0)
    up = (m_k - left) / (centre - left)
    down = (right - m_k) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    banks = torch.nn.functional.pad(banks, (0, 1)).numpy()
    banks.setflags(write=False)
    return banks


def _mask_along_axis(x: torch.Tensor, max_width: int, axis: int) -> torch.Tensor:
    """Zero a random band per example (torchaudio's iid masking): width ~ U[0, max_width)."""
    b, size = x.shape[0], x.shape[axis]
    width = torch.rand(b, device=x.device) * max_width
    start = torch.rand(b, device=x.device) * (size - width)
    lo, hi = start.long()[:, None], (start + width).long()[:, None]
    pos = torch.arange(size, device=x.device)[None, :]
    mask = (pos >= lo) & (pos < hi)  # (B, size)
    mask = mask[:, :, None] if axis == 1 else mask[:, None, :]
    return x.masked_fill(mask, 0.0)


# eval-mode batches on CPU are computed in pieces of about this many samples (one 10 s clip at 32 kHz)
_PIECE_SAMPLES = 320_000


class MelFrontend(nn.Module):
    """Waveform (B, N) at ``sample_rate`` -> normalised log-mel (B, n_mels, T), T = 1 + (N - 1) // hop.

    Eval mode reproduces the released models' preprocessing exactly (fmin, fmax = sr/2 - fmax_aug_range/2,
    no masking). Train mode draws fmin/fmax and frequency/time masks per example.
    """

    def __init__(
        self,
        n_mels: int = 128,
        sample_rate: int = 32000,
        win_length: int = 800,
        hop_length: int = 320,
        n_fft: int = 1024,
        freqm: int = 48,
        timem: int = 192,
        fmin: float = 0.0,
        fmax: float | None = None,
        fmin_aug_range: int = 10,
        fmax_aug_range: int = 2000,
        log_floor: float | None = None,
    ):
        super().__init__()
        self.log_floor = log_floor
        if fmin_aug_range < 1 or fmax_aug_range < 1:
            raise ValueError("fmin_aug_range and fmax_aug_range must be >= 1 (1 = no augmentation)")
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        if hop_length < 1 or n_mels < 1:
            raise ValueError("hop_length and n_mels must be positive")
        if fmax is None:
            fmax = sample_rate // 2 - fmax_aug_range // 2
        self.n_mels, self.sample_rate = n_mels, sample_rate
        self.win_length, self.hop_length, self.n_fft = win_length, hop_length, n_fft
        self.freqm, self.timem = freqm, timem
        self.fmin, self.fmax = float(fmin), float(fmax)
        self.fmin_aug_range, self.fmax_aug_range = fmin_aug_range, fmax_aug_range
        kaldi_mel_banks(n_mels, n_fft, sample_rate, self.fmin, self.fmax)  # validate early
        self.conv_stft = False  # True: STFT as a convolution (used for ONNX export)
        self.register_buffer("window", torch.hann_window(win_length, periodic=False), persistent=False)
        self.register_buffer(
            "mel_basis",
            torch.from_numpy(kaldi_mel_banks(n_mels, n_fft, sample_rate, self.fmin, self.fmax).copy()),
            persistent=False,
        )

    @classmethod
    def from_config(cls, cfg: FrontendConfig, **kwargs) -> MelFrontend:
        """Frontend for a model's :class:`FrontendConfig` (masking off unless given in ``kwargs``)."""
        kwargs.setdefault("freqm", 0)
        kwargs.setdefault("timem", 0)
        return cls(
            n_mels=cfg.n_mels,
            sample_rate=cfg.sample_rate,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            n_fft=cfg.n_fft,
            fmin=cfg.fmin,
            fmax=cfg.fmax,
            log_floor=cfg.log_floor,
            **kwargs,
        )

    @property
    def min_samples(self) -> int:
        # reflect padding needs more samples than n_fft // 2 after pre-emphasis
        return self.n_fft // 2 + 2

    def num_frames(self, num_samples: int) -> int:
        return 1 + (max(num_samples, self.min_samples) - 1) // self.hop_length

    def _dft_basis(self) -> torch.Tensor:
        """(2 * bins, 1, win_length): the window times cos / -sin of each bin, for a conv STFT."""
        bins = self.n_fft // 2 + 1
        offset = (self.n_fft - self.win_length) // 2  # torch centres a short window in n_fft
        n = torch.arange(self.win_length, dtype=torch.float64) + offset
        k = torch.arange(bins, dtype=torch.float64)[:, None]
        ang = 2 * math.pi * k * n / self.n_fft
        w = self.window.double()
        return torch.cat([w * torch.cos(ang), -w * torch.sin(ang)]).float().unsqueeze(1)

    def _conv_stft_power(self, x: torch.Tensor) -> torch.Tensor:
        # STFT as a strided convolution with the DFT basis: exports to any ONNX runtime
        if not hasattr(self, "_basis") or self._basis.device != x.device:
            self._basis = self._dft_basis().to(x.device)
        pad = self.n_fft // 2
        frames = 1 + (x.shape[1] - 1) // self.hop_length
        x = torch.nn.functional.pad(x.unsqueeze(1), (pad, pad), mode="reflect")
        offset = (self.n_fft - self.win_length) // 2
        x = x[:, :, offset : offset + (frames - 1) * self.hop_length + self.win_length]
        y = torch.nn.functional.conv1d(x, self._basis, stride=self.hop_length)
        bins = self.n_fft // 2 + 1
        return y[:, :bins].square() + y[:, bins:].square()

    def power_spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-emphasis + STFT power, (B, n_fft // 2 + 1, T)."""
        if x.dim() != 2:
            raise ValueError(f"expected a waveform batch of shape (B, N), got {tuple(x.shape)}")
        x = x.float()
        # zero-pad inputs too short for the reflect padding (unconditional, so it also exports)
        x = torch.nn.functional.pad(x, (0, max(0, self.min_samples - x.shape[1])))
        x = x[:, 1:] - 0.97 * x[:, :-1]
        if self.conv_stft:
            return self._conv_stft_power(x)
        spec = torch.stft(
            x,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            return_complex=True,
        )
        return spec.real.square() + spec.imag.square()

    def _train_banks(self, b: int, device: torch.device) -> torch.Tensor:
        fmins = torch.randint(self.fmin_aug_range, (b,)) + self.fmin
        fmaxs = self.fmax + self.fmax_aug_range // 2 - torch.randint(self.fmax_aug_range, (b,))
        nyq = self.sample_rate / 2
        banks = [
            kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, float(lo), float(min(hi, nyq)))
            for lo, hi in zip(fmins.tolist(), fmaxs.tolist())
        ]
        return torch.from_numpy(np.stack(banks)).to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = max(1, _PIECE_SAMPLES // max(1, x.shape[-1]))
        if (not self.training and x.dim() == 2 and x.shape[0] > rows and x.device.type == "cpu"
                and not self.conv_stft and not torch.jit.is_tracing()):  # fmt: skip
            # a few clips at a time: a whole batch's STFT (8 clips of 10 s: 33 MB) no longer fits the caches and
            # its elementwise passes then dominate; 4x faster per clip on CPU, the same values
            return torch.cat([self._forward(piece) for piece in x.split(rows)])
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        power = self.power_spectrogram(x)
        with torch.autocast(device_type=power.device.type, enabled=False):
            if self.training and (self.fmin_aug_range > 1 or self.fmax_aug_range > 1):
                mel = torch.bmm(self._train_banks(power.shape[0], power.device), power.float())
            elif self.conv_stft:  # (export: one dense product)
                mel = torch.matmul(self.mel_basis, power.float())
            else:
                power = power.float()
                mel = torch.cat([torch.matmul(w, power[..., lo:hi, :]) for lo, hi, w in self._mel_bands()], dim=-2)
            mel = self._log(mel)
        if self.training:
            if self.freqm > 0:
                mel = _mask_along_axis(mel, self.freqm, axis=1)
            if self.timem > 0:
                mel = _mask_along_axis(mel, self.timem, axis=2)
        return (mel + 4.5) / 5.0

    def _mel_bands(self) -> list[tuple[int, int, torch.Tensor]]:
        """The mel filters in groups of 16, each with the span of bins it covers: the filters are narrow
        triangles, so the product skips the zeros (8x fewer multiply-adds than the dense matrix, 5x faster)."""
        bands = getattr(self, "_bands", None)
        if bands is None or bands[0][2].device != self.mel_basis.device:
            nonzero = self.mel_basis != 0
            bands = []
            for s in range(0, self.n_mels, 16):
                cols = nonzero[s : s + 16].any(0).nonzero().flatten()
                lo, hi = (int(cols.min()), int(cols.max()) + 1) if len(cols) else (0, 1)
                bands.append((lo, hi, self.mel_basis[s : s + 16, lo:hi].contiguous()))
            self._bands = bands
        return bands

    def _log(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.log(mel + 1e-5) if self.log_floor is None else torch.log(mel.clamp(min=self.log_floor))

    def _log_mel(self, mel: torch.Tensor) -> torch.Tensor:
        return (self._log(mel) + 4.5) / 5.0

    def padded(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        """``forward`` of ``x`` zero-padded at the end to ``samples`` samples (eval mode), without computing
        the frames that see only the padding: those are the log-mel of silence, a constant. For a short clip
        padded to 10 s this skips most of the work, with the same values."""
        # n_fft // 2 + 2 zeros after the clip: every frame of that input sees what it sees in the fully padded
        # one (its right reflection mirrors only zeros), and every later frame sees only zeros
        keep = x.shape[1] + self.n_fft // 2 + 2
        if self.training or keep >= samples:
            return self(torch.nn.functional.pad(x, (0, max(0, samples - x.shape[1]))))
        head = self(torch.nn.functional.pad(x, (0, keep - x.shape[1])))
        silence = self._log_mel(torch.zeros((), device=x.device))  # the same float32 ops as a silent frame
        out = silence.expand(*head.shape[:-1], self.num_frames(samples)).clone()
        out[..., : head.shape[-1]] = head
        return out

    def extra_repr(self) -> str:
        return (
            f"n_mels={self.n_mels}, sample_rate={self.sample_rate}, hop_length={self.hop_length}, "
            f"win_length={self.win_length}, n_fft={self.n_fft}, fmin={self.fmin:g}, fmax={self.fmax:g}"
        )
