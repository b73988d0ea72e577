"""Evaluation metrics (macro mAP, macro ROC-AUC, d-prime, accuracy), equal to scikit-learn's."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def _counts(y: np.ndarray, s: np.ndarray, w: np.ndarray | None):
    """Cumulative (weighted) true and false positives at each distinct score, highest first."""
    w = np.ones_like(s, dtype=np.float64) if w is None else w.astype(np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y, w = s[order], y[order].astype(np.float64), w[order]
    ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # ties form one threshold
    return np.cumsum(y * w)[ends], np.cumsum((1 - y) * w)[ends]


def _average_precision(y: np.ndarray, s: np.ndarray, w: np.ndarray | None = None) -> float:
    """sklearn.metrics.average_precision_score for one class."""
    tp, fp = _counts(y, s, w)
    if tp[-1] <= 0:
        return math.nan
    precision = tp / np.maximum(tp + fp, 1e-300)
    recall = tp / tp[-1]
    return float(np.sum((recall - np.r_[0.0, recall[:-1]]) * precision))


def _roc_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray | None = None) -> float:
    """sklearn.metrics.roc_auc_score for one class (trapezoidal)."""
    tp, fp = _counts(y, s, w)
    tps, fps = np.r_[0.0, tp], np.r_[0.0, fp]
    if tps[-1] <= 0 or fps[-1] <= 0:
        return math.nan
    x, yv = fps / fps[-1], tps / tps[-1]
    return float(np.sum(np.diff(x) * (yv[1:] + yv[:-1]) / 2))


def _per_class(fn, targets, scores, mask=None) -> np.ndarray:
    targets, scores = np.asarray(targets), np.asarray(scores, dtype=np.float64)
    out = []
    for c in range(targets.shape[1]):
        w = None if mask is None else np.asarray(mask)[:, c]
        if w is not None and not w.any():
            out.append(math.nan)
            continue
        out.append(fn(targets[:, c] > 0.5, scores[:, c], w))
    return np.asarray(out)


def mean_average_precision(targets, scores, mask=None) -> float:
    """Macro mAP over classes with at least one positive (``mask``: per-entry weights, e.g. OpenMIC)."""
    return float(np.nanmean(_per_class(_average_precision, targets, scores, mask)))


def roc_auc(targets, scores, mask=None) -> float:
    """Macro ROC-AUC over classes with positives and negatives."""
    return float(np.nanmean(_per_class(_roc_auc, targets, scores, mask)))


def d_prime(auc: float) -> float:
    """d' = sqrt(2) * Phi^-1(AUC), as reported for AudioSet."""
    auc = min(max(auc, 1e-12), 1 - 1e-12)
    return math.sqrt(2.0) * NormalDist().inv_cdf(auc)


def accuracy(targets, scores) -> float:
    """Single-label accuracy: argmax of scores vs argmax of (one-hot or soft) targets, or class indices."""
    targets, scores = np.asarray(targets), np.asarray(scores)
    truth = targets.argmax(axis=1) if targets.ndim == 2 else targets
    return float((scores.argmax(axis=1) == truth).mean())


def summarize(targets, scores, multilabel: bool, mask=None) -> dict[str, float]:
    """The metrics a recipe reports: mAP / ROC-AUC / d-prime, or accuracy."""
    if not multilabel:
        return {"accuracy": accuracy(targets, scores)}
    auc = roc_auc(targets, scores, mask)
    return {"mAP": mean_average_precision(targets, scores, mask), "roc_auc": auc, "d_prime": d_prime(auc)}
