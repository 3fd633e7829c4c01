"""Scoring CSV files with the edge predictor (``edgelr predict`` / ``evaluate``).

Torch-free: numpy, onnxruntime, and edgelr's numpy-only data and metrics modules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TextIO

import numpy as np

from edgelr.csvblocks import NotFast, PredictionWriter, numeric_blocks
from edgelr.data import is_regular_file, iter_raw_blocks, open_table, read_label_cells
from edgelr.errors import DataError
from edgelr.metrics import classification_metrics
from edgelr.runtime import Predictor


def predict_csv(predictor: Predictor, data: str | os.PathLike, out: TextIO) -> int:
    """Write ``label`` and ``probability_<class>`` columns for every row; return the row count.

    Feature columns are picked from the CSV by name, so a file that still holds the label
    or an id column scores as is. Rows stream through in blocks: memory stays flat.
    """
    writer = PredictionWriter(out, predictor._class_array)
    rows = 0
    for numbers, text, skip in feature_blocks(predictor, data):
        labels, proba = predictor.score(numbers, text, as_index=True)
        if not writer.started:  # the header only once the file has proved readable: no stray line on stdout
            writer.header()
        writer.rows(labels[skip:], proba[skip:])
        rows += proba.shape[0] - skip
    return rows


def feature_blocks(predictor: Predictor,
                   data: str | os.PathLike) -> Iterator[tuple[np.ndarray, np.ndarray | None, int]]:
    """(numbers, text or None, rows to skip) per block of the CSV's rows, as the model takes them.

    A regular file of a model without text columns goes through edgelr.csvblocks' fast
    parse, block after block. Where that parse declines a block (quotes, missing cells, a
    word, anything it cannot prove it reads exactly as the exact reader does), the exact
    reader takes over from the start of the file: its blocks of rows already written are
    passed over, and the one that holds the first row not written yet is scored whole, its
    first ``skip`` rows not written again. So the exact reader's messages are what they
    always were. The Predictor's ("row i", the one error a parsed block can still meet:
    logits past float32) count from the block's first row, as before, but a fast block
    starts elsewhere than an exact reader's one.
    """
    path = os.fspath(data)
    numeric, text = predictor.feature_names, predictor.categorical_names
    done = 0
    if not text and is_regular_file(path):
        with open_table(path) as table:  # the header's checks and messages are the exact reader's
            table.require(numeric, what="feature column")
            header = table.header
        try:
            for block in numeric_blocks(path, len(header), [header.index(name) for name in numeric]):
                yield block, None, 0
                done += block.shape[0]
            if done:
                return
        except NotFast:
            pass
    seen = 0
    for numbers, cells in iter_raw_blocks(path, numeric, text, allow_missing=predictor.impute is not None):
        n = numbers.shape[0]
        if seen + n > done:
            yield numbers, cells, max(0, done - seen)
        seen += n


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
