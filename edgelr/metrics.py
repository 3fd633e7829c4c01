"""Classification metrics in numpy, so the torch-free side can report them too.

Definitions follow scikit-learn (the tests compare against it): log loss is the mean
negative log-likelihood of the true class, precision/recall/F1 are those of the
positive class (classes[1]) of a binary model, ROC AUC counts ties as one half.
"""

from __future__ import annotations

import numpy as np

# Probabilities are clipped away from 0 so one confident mistake gives a large, finite loss.
_EPS = np.finfo(np.float64).eps


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Metrics of predicted probabilities against true class indices.

    y : ndarray of shape (n_rows,), int class indices
    proba : ndarray of shape (n_rows, n_classes), rows summing to 1
    """
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    pred = predicted_labels(proba)
    out = {"accuracy": float(np.mean(pred == y)), "log_loss": log_loss(y, proba)}
    if proba.shape[1] == 2:
        out.update(binary_scores(y, pred))
        out["roc_auc"] = roc_auc(y, proba[:, 1])
    return out


def predicted_labels(proba: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Class indices: positive when p1 > threshold (binary, as scikit-learn), else argmax."""
    if proba.shape[1] == 2:
        return (proba[:, 1] > threshold).astype(np.int64)
    return np.argmax(proba, axis=1)


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    p_true = proba[np.arange(y.size), y]
    return float(-np.mean(np.log(np.clip(p_true, _EPS, 1.0))))


def binary_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of class 1; 0.0 where undefined (as scikit-learn warns and does)."""
    tp = float(np.sum((pred == 1) & (y == 1)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) statistic.

    None when only one class is present: the AUC is undefined there.
    """
    n_pos = int(np.sum(y == 1))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(score)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    # Start of each run of equal values, and the average rank over the run.
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], values.size]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks
