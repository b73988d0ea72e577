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
