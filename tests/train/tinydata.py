"""Tiny generated datasets in the real layouts (HDF5 with mp3 bytes, ESC-50, folders, CSV)."""

import csv
import io
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 32000


def tone(freq: float, seconds: float = 0.5, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.01
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def mp3_bytes(x: np.ndarray, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="MP3")
    return buf.getvalue()


def write_hdf5(path: Path, n: int, num_classes: int = 527, corrupt: int | None = None, packed: bool = True,
               prefix: str = "Y", seed: int = 0) -> list[str]:  # fmt: skip
    import h5py

    rng = np.random.default_rng(seed)
    ids = [f"clip{seed}_{i:04d}" for i in range(n)]
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", data=np.array([f"{prefix}{i}.mp3".encode() for i in ids], dtype="S20"))
        mp3 = f.create_dataset("mp3", (n,), dtype=h5py.vlen_dtype(np.uint8))
        width = (num_classes + 7) // 8 if packed else num_classes
        tgt = f.create_dataset("target", (n, width), dtype=np.uint8 if packed else np.float32)
        for i in range(n):
            c = int(rng.integers(0, 3))
            data = b"garbage, not mp3" if i == corrupt else mp3_bytes(tone(300 * (c + 1), 1.0, seed=i))
            mp3[i] = np.frombuffer(data, dtype=np.uint8)
            y = np.zeros(num_classes, bool)
            y[c] = True
            if packed:
                tgt[i] = np.packbits(y)
            else:
                tgt[i] = y.astype(np.float32)
    return ids


def write_folder(root: Path, per_class: int = 6, classes=("high", "low")) -> Path:
    for k, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            sf.write(d / f"{name}_{i}.wav", tone(2000 if name == "high" else 300, 0.5, seed=10 * k + i), SR)
    return root


def write_csv_set(root: Path, n: int = 8) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        labels = ["dog"] if i % 2 else ["cat", "bird"]
        sf.write(root / f"c{i}.wav", tone(500 + 200 * (i % 2), 0.5, seed=i), 16000)
        rows.append({"filename": f"c{i}.wav", "labels": ";".join(labels)})
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["filename", "labels"])
        w.writeheader()
        w.writerows(rows)
    return root / "labels.csv"


def write_esc50(root: Path, per_fold: int = 2) -> Path:
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(exist_ok=True)
    rows = []
    for fold in range(1, 6):
        for i in range(per_fold):
            target = i % 2
            name = f"{fold}-{i}-A-{target}.wav"
            sf.write(root / "audio" / name, tone(300 + 1500 * target, 0.5, 44100, seed=fold * 10 + i), 44100)
            rows.append({"filename": name, "fold": fold, "target": target, "category": ["dog", "rain"][target],
                         "esc10": "False", "src_file": "x", "take": "A"})  # fmt: skip
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root
