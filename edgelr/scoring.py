"""Scoring CSV files with the edge predictor (``edgelr predict`` / ``evaluate``).

Torch-free: numpy, onnxruntime, and edgelr's numpy-only data and metrics modules.
"""

from __future__ import annotations

import csv
import os
from typing import TextIO

import numpy as np

from edgelr.data import iter_raw_blocks, read_label_cells
from edgelr.errors import DataError
from edgelr.metrics import classification_metrics
from edgelr.runtime import Predictor


def predict_csv(predictor: Predictor, data: str | os.PathLike, out: TextIO) -> int:
    """Write ``label`` and ``probability_<class>`` columns for every row; return the row count.

    Feature columns are picked from the CSV by name, so a file that still holds the label
    or an id column scores as is. Rows stream through in blocks: memory stays flat.
    """
    writer = csv.writer(out, lineterminator="\n")
    rows = 0
    for numbers, text in iter_raw_blocks(data, predictor.feature_names, predictor.categorical_names,
                                         allow_missing=predictor.impute is not None):
        labels, proba = predictor.score(numbers, text)
        if rows == 0:  # the header only once the file has proved readable: no stray line on stdout
            writer.writerow(["label", *(f"probability_{c}" for c in predictor.classes)])
        # %.9g keeps every float32 digit; the label column is the class name.
        writer.writerows([label, *(f"{p:.9g}" for p in row)] for label, row in zip(labels, proba.tolist()))
        rows += proba.shape[0]
    return rows


def evaluate_csv(predictor: Predictor, data: str | os.PathLike, label: str) -> dict[str, float]:
    """Metrics of the model on a labelled CSV (spec section 3's metrics)."""
    numbers, text, cells = read_label_cells(data, predictor.feature_names, label, predictor.categorical_names,
                                            allow_missing=predictor.impute is not None)
    y = class_indices(cells, predictor.classes, where=f"{os.fspath(data)}, column '{label}'")
    return classification_metrics(y, predictor.score(numbers, text)[1])


def class_indices(cells: list[str], classes: list, *, where: str) -> np.ndarray:
    """Map label cells to the model's class indices; "1" and "1.0" both match class 1."""
    index = {_key(c): i for i, c in enumerate(classes)}
    y = np.empty(len(cells), dtype=np.int64)
    for i, cell in enumerate(cells):
        found = index.get(_key(cell))
        if found is None:
            raise DataError(f"{where}: label '{cell}' is not one of the model's classes "
                            f"{', '.join(map(str, classes))}")
        y[i] = found
    return y


def _key(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return repr(int(number)) if number.is_integer() else repr(number)
