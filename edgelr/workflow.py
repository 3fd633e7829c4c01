"""The ``edgelr train`` job: split, fit, score, save. The CLI only parses options."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from edgelr.data import Dataset, stratified_split
from edgelr.estimator import LogisticRegression
from edgelr.metrics import classification_metrics
from edgelr.train import ProgressFn


@dataclass
class TrainResult:
    checkpoint: str
    history: list[dict]
    metrics: dict  # {"train": {...}, "validation": {...} or None}
    data: dict  # the data summary stored in the checkpoint


def train_checkpoint(
    dataset: Dataset,
    estimator: LogisticRegression,
    out: str | os.PathLike,
    *,
    val_fraction: float = 0.2,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Fit ``estimator`` on a stratified split of ``dataset`` and write the checkpoint."""
    train_rows, val_rows = stratified_split(dataset.y, val_fraction, estimator.seed)
    labels = np.asarray(dataset.classes)[dataset.y]  # class names, as a user would pass them
    estimator.fit(dataset.X[train_rows], labels[train_rows], feature_names=dataset.feature_names,
                  progress=progress)
    metrics = {
        "train": _metrics(estimator, dataset, train_rows),
        "validation": _metrics(estimator, dataset, val_rows) if val_rows.size else None,
    }
    summary = {
        "source": dataset.source,
        "label": dataset.label_name,
        "rows": dataset.n_rows,
        "train_rows": int(train_rows.size),
        "validation_rows": int(val_rows.size),
        "class_counts": {str(c): int(n) for c, n in zip(dataset.classes, np.bincount(dataset.y))},
    }
    config = {**estimator.config_, "val_fraction": val_fraction}
    estimator.save(out, metrics=metrics, extra={"data": summary, "config": config})
    return TrainResult(os.fspath(out), estimator.history_, metrics, summary)


def _metrics(estimator: LogisticRegression, dataset: Dataset, rows: np.ndarray) -> dict:
    # The dataset's class indices are the estimator's: both are sorted(set(labels)).
    return classification_metrics(dataset.y[rows], estimator.predict_proba(dataset.X[rows]))
