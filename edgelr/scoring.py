"""Scoring CSV files with the edge predictor (``edgelr predict`` / ``evaluate``).

Torch-free: numpy, onnxruntime, and edgelr's numpy-only data and metrics modules.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from edgelr.csvblocks import NotFast, PredictionWriter, numeric_blocks
from edgelr.data import (
    MISSING_TOKENS,
    is_regular_file,
    iter_raw_blocks,
    non_finite_label,
    open_table,
    read_label_cells,
)
from edgelr.errors import DataError
from edgelr.metrics import classification_metrics
from edgelr.pipes import piped_blocks
from edgelr.runtime import Drift, Predictor, PredictorError
from edgelr.streams import Block, JsonLinesWriter, csv_source, format_of, jsonl_source, open_source, opened


def predict_csv(predictor: Predictor, data: str | os.PathLike, out: TextIO) -> int:
    """Write ``label`` and ``probability_<class>`` columns for every row; return the row count.

    Feature columns are picked from the CSV by name, so a file that still holds the label
    or an id column scores as is. Rows stream through in blocks: memory stays flat.
    """
    return predict_rows(predictor, os.fspath(data), out).rows


@dataclass
class PredictResult:
    rows: int  # rows written
    drift: Drift  # values outside the training ranges and unseen categories, over every row


def predict_rows(predictor: Predictor, data: str, out: TextIO, *, in_format: str | None = None,
                 out_format: str | None = None, keep: Sequence[str] = (), explain: bool = False,
                 strict: bool = False, progress: Callable | None = None) -> PredictResult:
    """Score every row of ``data`` (a CSV or JSON Lines path, or '-' for stdin) into ``out``.

    in_format / out_format : 'csv' or 'jsonl'; default: the path's extension, and the input's
    keep : input columns copied into the output first
    explain : add each input column's contribution to the explained logit (Predictor.explain)
    strict : a value outside its training range or an unseen category is a DataError, raised
        before the rows of its batch are written (the rows of earlier batches are written)
    progress : called with the rows written so far after each batch; its ``bytes`` attribute, when it
        has one, is told the size of each block the fast CSV path reads (the bar's percentage)

    A row that arrives alone on a pipe is scored, written and flushed before the next one is read.
    """
    in_format = format_of(data, in_format)
    out_format = out_format or in_format
    if explain and not predictor.can_explain:
        predictor.explain_inputs(np.empty((0, len(predictor.feature_names)), dtype=np.float32))  # its error
    explained = predictor.columns if explain else ()
    if out_format == "jsonl":
        writer = JsonLinesWriter(out, predictor.classes, keep, explained)
    else:
        writer = PredictionWriter(out, predictor._class_array, keep, explained)
    total = Drift()
    rows = 0
    for block, live in _blocks(predictor, data, in_format, out_format, keep, progress):
        numbers = block.numbers
        text = block.text
        skip = block.skip
        labels, proba = predictor.score(numbers, text, as_index=True, start=rows - skip)  # validates the rows
        drift = block.drift.shifted(rows) if block.drift is not None else \
            predictor.drift_inputs(numbers[skip:], None if text is None else text[skip:], start=rows)
        if strict and drift.any:
            raise DataError(f"--strict: {'; '.join(drift.lines())}; the first at data row {drift.first_row + 1}; "
                            "expected values inside the training ranges and categories seen in training "
                            "(without --strict they are scored, with a warning)")
        total.merge(drift)
        contributions = None
        if explain:
            features = numbers if numbers.dtype == np.float32 else numbers.astype(np.float32)
            contributions = predictor.explain_inputs(features, text, labels).contributions[skip:]
        if not writer.started:  # the header only once the input has proved readable: no stray line on stdout
            writer.header()
        writer.rows(labels[skip:], proba[skip:], block.kept, contributions)
        if live:
            out.flush()
        rows += proba.shape[0] - skip
        if progress is not None:
            progress(rows)
    return PredictResult(rows, total)


def _blocks(predictor: Predictor, data: str, in_format: str, out_format: str, keep: Sequence[str],
            progress: Callable | None) -> Iterator[tuple[Block, bool]]:
    """(Block, live) per batch of the input's rows."""
    numeric, text = predictor.feature_names, predictor.categorical_names
    allow_missing = predictor.impute is not None
    if in_format == "csv" and data != "-" and not keep and is_regular_file(data):
        for numbers, cells, skip, drift in feature_blocks(predictor, data, progress):
            yield Block(numbers, cells, skip=skip, drift=drift), False
        return
    if in_format == "csv" and data != "-" and is_regular_file(data) and not text:
        fast = _FastBlocks(predictor, data, keep, progress)
        for values, kept, drift in fast:
            kept = kept if out_format == "csv" else [k.split(",")[:-1] for k in kept]
            yield Block(values, None, kept, drift=drift), False
        if fast.whole:
            return
        done = fast.rows
        handle, name, _ = open_source(data)
        with handle:
            for block in csv_source(handle, name, False, numeric=numeric, text=text, allow_missing=allow_missing,
                                    keep=keep, out_format=out_format, skip_rows=done):
                yield block, False
        return
    source = jsonl_source if in_format == "jsonl" else piped_blocks
    with opened(data) as (handle, name, live):
        for block in source(handle, name, live, numeric=numeric, text=text, allow_missing=allow_missing,
                            keep=keep, out_format=out_format):
            yield block, live


def feature_blocks(predictor: Predictor, data: str | os.PathLike, progress: Callable | None = None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray | None, int, Drift | None]]:
    """(numbers, text or None, rows to skip, drift or None) per block of the CSV's rows, as the model takes them.

    The fast path counts each block's drift on its parse thread (``Predictor.drift_inputs``),
    beside the scoring of the blocks before; the exact reader's blocks come without it.

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
        fast = _FastBlocks(predictor, path, (), progress)
        for block, _, drift in fast:
            yield block, None, 0, drift
        if fast.whole:
            return
        done = fast.rows
    seen = 0
    for numbers, cells in iter_raw_blocks(path, numeric, text, allow_missing=predictor.impute is not None):
        n = numbers.shape[0]
        if seen + n > done:
            yield numbers, cells, max(0, done - seen), None
        seen += n


class _FastBlocks:
    """(values, kept cells or None, drift) per block of a numeric CSV file through csvblocks' fast parse, up to
    the first block it declines; then ``rows`` is the rows it gave, and ``whole`` whether that was the file
    (a file without data rows is not: the exact reader words it)."""

    def __init__(self, predictor: Predictor, path: str, keep: Sequence[str], progress: Callable | None):
        with open_table(path) as table:  # the header's checks and messages are the exact reader's
            table.require(predictor.feature_names, what="feature column")
            table.require(keep, what="--keep column")
            header = table.header
        self._blocks = numeric_blocks(path, len(header), [header.index(n) for n in predictor.feature_names],
                                      keep=[header.index(n) for n in keep] or None, check=predictor.drift_inputs,
                                      on_bytes=getattr(progress, "bytes", None))
        self.rows, self.whole = 0, False

    def __iter__(self):
        try:
            for values, kept, drift in self._blocks:
                yield values, kept, drift
                self.rows += values.shape[0]
        except NotFast:
            return
        self.whole = self.rows > 0


def evaluate_csv(predictor: Predictor, data: str | os.PathLike, label: str) -> dict[str, float]:
    """Metrics of the model on a labelled CSV (spec section 3's metrics).

    A regular file of a model without text columns streams through edgelr.csvblocks' fast
    parse: memory stays a few numbers per row. Anything that parse declines, or any error
    (a label that is not a class, a row the model cannot score), sends the file to the
    exact reader, which reads it whole and says what it always said.
    """
    scored = _fast_scores(predictor, os.fspath(data), label)
    if scored is None:
        numbers, text, cells = read_label_cells(data, predictor.feature_names, label, predictor.categorical_names,
                                                allow_missing=predictor.impute is not None)
        y = class_indices(cells, predictor.classes, where=f"{os.fspath(data)}, column '{label}'")
        scored = y, predictor.score(numbers, text)[1]
    return classification_metrics(*scored, _threshold(predictor))


def _fast_scores(predictor: Predictor, path: str, label: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(class index, probabilities) of every row of a clean numeric CSV, block by block; None where the
    exact reader must read it."""
    if predictor.categorical_names or not is_regular_file(path):
        return None
    with open_table(path) as table:  # the header's checks and messages are the exact reader's
        table.require([*predictor.feature_names, label], what="column")
        header = table.header
    classes = _ClassCells(predictor.classes)
    ys, probabilities = [], []
    try:
        for values, kept in numeric_blocks(path, len(header), [header.index(n) for n in predictor.feature_names],
                                           keep=[header.index(label)]):
            ys.append(classes.indices(kept))
            probabilities.append(predictor.predict_proba(values))
    except (NotFast, PredictorError):  # the exact reader scores every row at once: its message names the row
        return None
    if not ys:
        return None  # the exact reader words the empty file
    return np.concatenate(ys), np.concatenate(probabilities)


class _ClassCells:
    """Label cells (as csvblocks keeps them: each followed by a comma) -> class indices, each distinct cell
    looked up once; a cell the exact reader would refuse, or no class's, raises NotFast."""

    def __init__(self, classes: list):
        self.index = {_key(c): i for i, c in enumerate(classes)}
        self.seen: dict[str, int] = {}

    def indices(self, kept: list[str]) -> np.ndarray:
        seen = self.seen
        return np.fromiter((seen[c] if c in seen else self._look_up(c) for c in kept), dtype=np.int64,
                           count=len(kept))

    def _look_up(self, kept: str) -> int:
        value = kept[:-1].strip()
        found = None if not value or value in MISSING_TOKENS or non_finite_label(value) else self.index.get(_key(value))
        if found is None:
            raise NotFast(f"label cell {value!r}")
        self.seen[kept] = found
        return found


def evaluate_rows(predictor: Predictor, data: str, label: str, *, in_format: str | None = None) -> dict[str, float]:
    """``evaluate_csv`` of any input ``predict_rows`` takes: a CSV or JSON Lines path, or '-' for stdin."""
    in_format = format_of(data, in_format)
    if in_format == "csv" and data != "-" and is_regular_file(data):
        return evaluate_csv(predictor, data, label)
    source = piped_blocks if in_format == "csv" else jsonl_source
    ys, probabilities, rows = [], [], 0
    with opened(data) as (handle, name, live):
        where = f"{name}, {'column' if in_format == 'csv' else 'key'} '{label}'"
        for block in source(handle, name, live, numeric=predictor.feature_names, text=predictor.categorical_names,
                            allow_missing=predictor.impute is not None, label=label):
            ys.append(class_indices(block.labels, predictor.classes, where=where))
            probabilities.append(predictor.score(block.numbers, block.text, start=rows)[1])
            rows += len(ys[-1])
    if not ys:
        raise DataError(f"{name}: no rows to evaluate; expected at least one")
    return classification_metrics(np.concatenate(ys), np.concatenate(probabilities), _threshold(predictor))


def _threshold(predictor: Predictor) -> float:
    """The threshold the model's graph labels with (binary models; 0.5 for the metrics' sake otherwise)."""
    return predictor.threshold if predictor.threshold is not None else 0.5


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
