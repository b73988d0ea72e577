"""Class label sets. The AudioSet ontology labels (CC BY-SA 4.0) ship with the package."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Label:
    index: int
    mid: str
    name: str


@lru_cache(maxsize=1)
def audioset_labels() -> tuple[Label, ...]:
    """The 527 AudioSet classes in model output order."""
    text = resources.files("dymn").joinpath("data/class_labels_indices.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if rows[0] != ["index", "mid", "display_name"]:
        raise RuntimeError("corrupt packaged AudioSet label file")
    labels = tuple(Label(int(i), mid, name) for i, mid, name in rows[1:])
    if [lab.index for lab in labels] != list(range(527)):
        raise RuntimeError("corrupt packaged AudioSet label file")
    return labels


def audioset_names() -> list[str]:
    """Display names of the 527 AudioSet classes, in output order."""
    return [lab.name for lab in audioset_labels()]


@dataclass(frozen=True)
class StrongLabel(Label):
    in_audioset_527: bool  # the same MID is among the 527 classes of the taggers (the name may differ)


@lru_cache(maxsize=1)
def audioset_strong_labels() -> tuple[StrongLabel, ...]:
    """The 447 AudioSet-Strong classes of the frame-level SED models, in output order (code-point sorted
    names). From PretrainedSED's ``class_labels_indices_strong.csv`` (MIT) without the 9 eval-only classes."""
    text = resources.files("dymn").joinpath("data/audioset_strong_labels.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if rows[0] != ["index", "mid", "display_name", "in_audioset_527"]:
        raise RuntimeError("corrupt packaged AudioSet-Strong label file")
    labels = tuple(StrongLabel(int(i), mid, name, flag == "1") for i, mid, name, flag in rows[1:])
    if [lab.index for lab in labels] != list(range(447)):
        raise RuntimeError("corrupt packaged AudioSet-Strong label file")
    return labels
