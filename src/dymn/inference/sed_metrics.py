"""Evaluating sound event detection with ``sed_scores_eval`` (the library the reference uses, ``[sed]`` extra):
PSDS1 as the AudioSet-Strong protocol computes it (SED spec section 10: dtc = gtc = 0.7, alpha_st 1, no
cross-trigger term, eFPR up to 100 per hour, on 9-frame median-filtered scores), segment-based pAUROC (1 s
segments, max FPR 0.1), and event-based F1 with onset/offset collars (HEAR-style tasks).

Predictions are the per-file frame score tables ``dymn detect --scores`` writes (``onset, offset, <class>...``,
CSV or TSV, one file per audio file, named after it); the ground truth is a DCASE-style TSV ``filename, onset,
offset, event_label``.
"""

from __future__ import annotations

import csv
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ..util.errors import DataError, first_line
from ..util.eventtables import MAX_EVENT_SECONDS, event_rows
from .events import median_filter

PSDS1 = dict(dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None, alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0)


def _audio_id(name: str) -> str:
    return Path(name).stem


def read_truth(path: str | os.PathLike, known: set[str] | None = None,
               max_missing: int = 10) -> dict[str, list[tuple[float, float, str]]]:  # fmt: skip
    """Events per audio id from a TSV with ``filename, onset, offset, event_label``; overlapping events of one
    class in one file are merged (as the reference prepares AudioSet-Strong). Streamed; with ``known`` (the ids
    that have predictions), reading stops at the ``max_missing``-th file without any, so a huge table of the
    wrong files fails fast and small."""
    missing: list[str] = []
    events: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name, event in event_rows(path, header_required=True):
        if event is not None:
            on, off, label = event
            if off <= on:
                raise DataError(f"{path}: an event of {name} ends where it starts ({on:g} s)")
            aid = _audio_id(name)
            if known is not None and aid not in known:
                if aid not in missing:
                    missing.append(aid)
                if len(missing) >= max_missing:
                    break
                continue
            events.setdefault(aid, {}).setdefault(sys.intern(label), []).append((on, off))
    if missing:
        more = f"{len(missing)} (stopped there)" if len(missing) >= max_missing else str(len(missing))
        raise DataError(f"no score table for {more} file(s) of the ground truth (e.g. {missing[0]})")
    if not events:
        raise DataError(f"{path}: the ground truth holds no events")
    merged = {}
    for aid, per_class in events.items():
        out = []
        for label, spans in per_class.items():
            spans.sort()
            cur = list(spans[0])
            for on, off in spans[1:]:
                if on <= cur[1]:
                    cur[1] = max(cur[1], off)
                else:
                    out.append((cur[0], cur[1], label))
                    cur = [on, off]
            out.append((cur[0], cur[1], label))
        merged[aid] = sorted(out)
    return merged


def read_scores(folder: str | os.PathLike) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Per audio id: (timestamps (N+1,), scores (N, C)) from the score tables in ``folder``; the class list."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".csv", ".tsv")) if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder}: no score tables (.csv or .tsv, as `dymn detect --scores` writes)")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:  # which one holds the predictions? keeping either would be a silent guess
            raise DataError(f"{folder}: both {stems[f.stem].name} and {f.name} are score tables of {f.stem}; keep one")
        stems[f.stem] = f
    out, classes = {}, None
    for f in files:
        try:
            with f.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh, delimiter="\t" if f.suffix.lower() == ".tsv" else ","))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{f}: not a score table ({first_line(exc)})") from None
        if len(rows) < 2 or rows[0][:2] != ["onset", "offset"]:
            raise DataError(f"{f}: a score table starts with the columns onset, offset, then one per class")
        if classes is None:
            classes = rows[0][2:]
        elif rows[0][2:] != classes:
            raise DataError(f"{f}: its classes differ from the other score tables'")
        try:
            table = np.asarray(rows[1:], dtype=np.float64)
        except ValueError:
            raise DataError(f"{f}: the score table holds values that are not numbers") from None
        if table.ndim != 2 or not np.isfinite(table).all():
            raise DataError(f"{f}: the score table holds values that are not finite numbers (NaN or inf)")
        table = table[table[:, 1] > table[:, 0]]  # frames in a file's padding end at its duration: no length
        if not len(table):
            raise DataError(f"{f}: the score table has no frame of non-zero length")
        out[f.stem] = (np.concatenate([table[:, 0], table[-1:, 1]]), table[:, 2:])
    return out, list(classes)


def read_durations(path: str | os.PathLike) -> dict[str, float]:
    """A TSV of filename and duration (seconds), header optional: {audio id: duration}."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            out = {os.path.splitext(r[0])[0]: float(r[1]) for r in csv.reader(f, delimiter="\t")
                   if r and r[0] != "filename"}  # fmt: skip
    except (OSError, ValueError, IndexError, csv.Error) as exc:
        raise DataError(f"{path}: not a TSV of filename and duration ({first_line(exc)})") from None
    bad = next((k for k, v in out.items() if not 0 < v <= MAX_EVENT_SECONDS), None)
    if bad is not None:
        raise DataError(f"{path}: the duration of {bad} must be a number of seconds in (0, {MAX_EVENT_SECONDS:g}], "
                        f"got {out[bad]:g}")  # fmt: skip
    return out


def evaluate(pred: str | os.PathLike, truth: str | os.PathLike, durations: dict[str, float] | None = None,
             median: int = 9, threshold: float = 0.5, collar: float = 0.2) -> dict:  # fmt: skip
    """PSDS1 (and its macro average over classes), segment-based pAUROC and collar-based event F1 of the score
    tables in ``pred`` against ``truth``, over the classes that occur in the ground truth."""
    from ..util.errors import UsageError, require

    if not 0 < threshold < 1:  # also NaN
        raise UsageError(f"--threshold must be between 0 and 1, got {threshold}")
    if not 0 <= collar <= 10:
        raise UsageError(f"--collar must be 0 to 10 seconds, got {collar}")
    if not (isinstance(median, int) and median >= 1 and median % 2 == 1):
        raise UsageError(f"--median must be a positive odd number of frames, got {median}")
    with warnings.catch_warnings():  # dcase_util (under sed_scores_eval) imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        require("sed_scores_eval", "sed", "evaluating detection")
        from sed_scores_eval import collar_based, intersection_based, segment_based
        from sed_scores_eval.base_modules.scores import create_score_dataframe

    scores, classes = read_scores(pred)
    gt = read_truth(truth, known=set(scores))
    used = sorted({label for events in gt.values() for _, _, label in events})
    unknown = [c for c in used if c not in classes]
    if unknown:
        raise DataError(f"the ground truth names {len(unknown)} class(es) the predictions do not have: "
                        f"{', '.join(unknown[:5])}")  # fmt: skip
    cols = [classes.index(c) for c in used]
    frames = {aid: create_score_dataframe(median_filter(s[:, cols], median), np.round(t, 6), used)
              for aid, (t, s) in scores.items() if aid in gt}  # fmt: skip
    dur = {aid: float((durations or {}).get(aid, scores[aid][0][-1])) for aid in gt}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psds, per_class, *_ = intersection_based.psds(frames, gt, dur, **PSDS1)
        auroc, _ = segment_based.auroc(frames, gt, dur, segment_length=1.0, max_fpr=0.1)
        f1, *_ = collar_based.fscore(frames, gt, threshold, onset_collar=collar, offset_collar=collar,
                                     offset_collar_rate=collar)  # fmt: skip
    return {"psds1": float(psds), "psds1_macro": float(np.mean([per_class[c] for c in used])),
            "pauroc": float(auroc["mean"]), "f1_macro": float(f1["macro_average"]),
            "f1_micro": float(f1["micro_average"]), "classes": len(used), "files": len(gt)}  # fmt: skip
