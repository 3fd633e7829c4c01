"""The ``edgelr train`` and ``edgelr report`` jobs: split, fit, score, save, report.

The CLI only parses options. ``edgelr.report`` (matplotlib) is imported only by the
report functions, so training works without the report extra.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from edgelr.checkpoint import build_model, encoding_of, load_checkpoint
from edgelr.data import Dataset, read_label_cells, stratified_split
from edgelr.encoding import ONE_PROCESS, Layout, fit_encoding
from edgelr.errors import DataError, ModelFileError
from edgelr.estimator import LogisticRegression
from edgelr.metrics import MetricsAccumulator, classification_metrics
from edgelr.model import logits, probabilities
from edgelr.rows import InMemoryRows, StreamedRows, encode_in_memory, encoder, one_torch_thread
from edgelr.train import ProgressFn, resolve_device

if TYPE_CHECKING:
    from edgelr.distributed import Cluster
    from edgelr.report import Report


@dataclass
class TrainResult:
    checkpoint: str
    history: list[dict]
    metrics: dict  # {"train": {...}, "validation": {...} or None}
    data: dict  # the data summary stored in the checkpoint
    split: tuple[np.ndarray, np.ndarray] | None = None  # (train, validation) row indices into the dataset


def train_checkpoint(
    dataset: Dataset,
    estimator: LogisticRegression,
    out: str | os.PathLike,
    *,
    val_fraction: float = 0.2,
    progress: ProgressFn | None = None,
    cluster: Cluster | None = None,
) -> TrainResult:
    """Fit ``estimator`` on a stratified split of ``dataset`` and write the checkpoint.

    Under torchrun (``cluster``), every rank fits on and scores its share of the rows
    (the sums are combined over ranks), and rank 0 writes the checkpoint.
    """
    train_rows, val_rows = stratified_split(dataset.y, val_fraction, estimator.seed)
    sources = _fit_split(estimator, dataset, train_rows, val_rows, progress, cluster)
    summary = _summary(dataset, train_rows, val_rows)

    def metrics_of(rows):  # the rows training standardized (this rank's) are still in memory: score those
        return _metrics_of_source(estimator, sources[0] if rows is train_rows else sources[1], cluster)

    metrics = _save(estimator, out, metrics_of, summary, (train_rows, val_rows), val_fraction, cluster)
    return TrainResult(os.fspath(out), estimator.history_, metrics, summary, (train_rows, val_rows))


def train_streamed(
    path: str | os.PathLike,
    estimator: LogisticRegression,
    out: str | os.PathLike,
    *,
    budget: int,
    label: str | None = None,
    features: list[str] | None = None,
    val_fraction: float = 0.2,
    progress: ProgressFn | None = None,
    cluster: Cluster | None = None,
) -> TrainResult:
    """``train_checkpoint`` for a CSV bigger than ``budget`` bytes: rows stream from a disk cache.

    The cells are read as ``estimator.read_options()`` says (text columns, missing cells).
    Peak memory is the chunks (a quarter of the budget) plus a few numbers per row
    (labels, the split, one score per row for the ROC AUC); lbfgs reaches the
    in-memory optimum because each evaluation still sums over every training row.
    """
    from edgelr.outofcore import cache_csv, chunk_rows_for, return_freed_memory, scratch_folder

    estimator.settings()  # bad settings fail before the pass over the file
    spec = estimator.encoding_spec()
    return_freed_memory()
    device = cluster.device if cluster else resolve_device(estimator.device)
    options = estimator.read_options()
    with scratch_folder() as folder:
        if cluster is None:
            table = cache_csv(path, folder, label=label, features=features, budget=budget, options=options)
        else:
            from edgelr.distributed import cache_share

            table = cache_share(path, folder, label=label, features=features, budget=budget, cluster=cluster,
                                options=options)
        chunk = chunk_rows_for(budget, table.n_features)
        train_rows, val_rows = stratified_split(table.y, val_fraction, estimator.seed)
        pick = _picker(table.first_row, table.cached_rows, cluster)
        layout = Layout.of(table)

        def source(rows, weights, encode):  # this rank's rows among ``rows`` (and their weights)
            mine = pick(rows)
            return StreamedRows(table.read, table.y, rows[mine], None if weights is None else weights[mine],
                                encode, device, chunk, n_features=table.n_features)

        raw_rows = source(train_rows, None, None)  # chunks() yields them raw
        with _in(table.source):
            encoding = fit_encoding(layout, spec, lambda: (raw for _, raw in raw_rows.chunks()),
                                    ranks=cluster or ONE_PROCESS)
        encode = encoder(encoding, layout)
        weights = estimator.sample_weight(table.y[train_rows], len(table.classes))
        estimator.fit_rows(
            source(train_rows, weights, encode),
            classes=table.classes, encoding=encoding, device=device,
            n_total=int(train_rows.size), sum_ranks=cluster.sum if cluster else None, progress=progress,
            validation=source(val_rows, None, encode) if val_rows.size else None,
            n_validation=int(val_rows.size),
        )
        summary = _summary(table, train_rows, val_rows)

        def metrics_of(rows):
            return _metrics_of_source(estimator, source(rows, None, encode), cluster)

        metrics = _save(estimator, out, metrics_of, summary, (train_rows, val_rows), val_fraction, cluster)
    return TrainResult(os.fspath(out), estimator.history_, metrics, summary, (train_rows, val_rows))


def _summary(data, train_rows: np.ndarray, val_rows: np.ndarray) -> dict:
    """The data summary stored in the checkpoint (``data``: a Dataset or a cached table)."""
    return {
        "source": data.source,
        "label": data.label_name,
        "rows": int(data.y.size),
        "train_rows": int(train_rows.size),
        "validation_rows": int(val_rows.size),
        "class_counts": {str(c): int(n) for c, n in zip(data.classes, np.bincount(data.y))},
    }


def _save(estimator, out, metrics_of, summary: dict, split, val_fraction: float, cluster) -> dict:
    """Score the split (every rank its own rows under torchrun) and write the checkpoint (rank 0)."""
    train_rows, val_rows = split
    metrics = {
        "train": metrics_of(train_rows),
        "validation": metrics_of(val_rows) if val_rows.size else None,
    }
    if cluster is None or cluster.is_main:
        config = {**estimator.config_, "val_fraction": val_fraction,
                  **({"world_size": cluster.world_size} if cluster else {})}
        estimator.save(out, metrics=metrics, extra={"data": summary, "config": config})
    if cluster is not None:
        cluster.barrier()  # the checkpoint exists before any rank reports success
    return metrics


def _fit_split(estimator, dataset: Dataset, train_rows, val_rows, progress, cluster: Cluster | None):
    """Standardize with the training rows' statistics and fit, in one process or data-parallel.

    Returns the (training, validation or None) row sources: this rank's standardized rows.
    """
    estimator.settings()  # bad settings fail before any work on the data
    spec = estimator.encoding_spec()
    device = cluster.device if cluster else resolve_device(estimator.device)
    pick = _picker(dataset.first_row, dataset.X.shape[0], cluster)
    first = dataset.first_row or 0  # X holds rows from this one on
    mine = pick(train_rows)
    weights = estimator.sample_weight(dataset.y[train_rows], len(dataset.classes))  # global class counts
    layout = Layout.of(dataset)
    with _in(dataset.source):
        rows, encoding = encode_in_memory(dataset.X, layout, spec, dataset.y[train_rows[mine]],
                                          None if weights is None else weights[mine], device,
                                          index=train_rows[mine] - first, ranks=cluster or ONE_PROCESS)
    val_mine = val_rows[pick(val_rows)]
    validation = (InMemoryRows.encoded(dataset.X, dataset.y[val_mine], None, encoder(encoding, layout), device,
                                       index=val_mine - first) if val_rows.size else None)
    estimator.fit_rows(
        rows, classes=dataset.classes, encoding=encoding, device=device,
        n_total=int(train_rows.size), sum_ranks=cluster.sum if cluster else None, progress=progress,
        validation=validation, n_validation=int(val_rows.size),
    )
    return rows, validation


def _picker(first_row: int | None, held: int, cluster: Cluster | None) -> Callable[[np.ndarray], slice]:
    """pick(rows) -> the slice of ``rows`` (sorted row numbers) this rank trains on.

    The rows it read, [first_row, first_row + held), when it read only its share; else
    every world_size-th; in one process, all of them. A slice: the rows and their
    weights are views, not copies of a few bytes per row.
    """
    if first_row is not None:
        return lambda rows: slice(*np.searchsorted(rows, [first_row, first_row + held]))
    if cluster is not None:
        return lambda rows: slice(cluster.rank, None, cluster.world_size)
    return lambda rows: slice(None)


@contextlib.contextmanager
def _in(source: str):
    """Name the data's source in an error the encoding raises (it knows columns, not files)."""
    try:
        yield
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from exc


def _metrics_of_source(estimator: LogisticRegression, source, cluster: Cluster | None) -> dict:
    """Metrics of the fitted model on a row source's float32 blocks, over all ranks.

    The same float32 features training used (and the exported graph takes), in blocks:
    no second standardization pass in float64, no probabilities of every row held.
    """
    W = torch.as_tensor(estimator.coef_, dtype=torch.float32)  # (k, d), standardized units
    b = torch.as_tensor(estimator.intercept_, dtype=torch.float32)
    metrics = MetricsAccumulator()
    with torch.no_grad(), one_torch_thread():  # small products per block: an OpenMP team only waits
        affine = source.affine  # blocks: the standardized rows, or the caller's raw rows (Affine.fold)
        for X, slots, y, _ in source.blocks():
            Wf, bf = affine.fold(W.to(X.device), b.to(X.device))
            z = logits(affine.block(X, Wf.dtype), slots, Wf, Wf.new_zeros(Wf.shape[0])).double() + bf
            metrics.update(y.cpu().numpy(), probabilities(z).cpu().numpy())  # (m, n_classes)
    return (cluster.combine_metrics(metrics) if cluster else metrics).result()


def report_training(dataset: Dataset, result: TrainResult, out_dir: str | os.PathLike) -> Report:
    """Plots and model card of a fresh checkpoint, on the rows training held out.

    The validation rows when there are any, else the training rows (``--val-fraction 0``).
    """
    if dataset.first_row is not None:
        raise ValueError("report_training needs every row's features: a dataset read whole, not one rank's share")
    train_rows, val_rows = result.split
    if val_rows.size:
        rows, subject = val_rows, "validation split"
    else:
        rows, subject = train_rows, "training rows (no validation split)"
    state = load_checkpoint(result.checkpoint)
    # The dataset's class indices are the checkpoint's: both are sorted(set(labels)).
    inputs = Layout.of(dataset).values(dataset.X[rows])
    return _report(state, result.checkpoint, inputs, dataset.y[rows], subject, out_dir)


def report_checkpoint(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    label: str | None = None,
    model: str | os.PathLike | None = None,
) -> Report:
    """Plots and model card of ``checkpoint`` scored on the labelled CSV ``data``.

    ``label`` defaults to the checkpoint's label column; feature columns are matched by
    name. ``model`` is the exported ONNX file whose parity figures go in the card
    (default: the checkpoint's name with .onnx, when that file exists and matches).
    """
    from edgelr.scoring import class_indices

    state = load_checkpoint(checkpoint)
    label = label or (state.get("data") or {}).get("label")
    if label is None:
        raise DataError(f"{os.fspath(checkpoint)}: the checkpoint does not record its label column; "
                        f"expected --label naming the column of {os.fspath(data)} that holds the true class")
    encoding = encoding_of(state)
    if label in encoding.columns:
        raise DataError(f"{os.fspath(data)}: --label '{label}' is one of the model's features; "
                        "expected the column that holds the true class")
    numbers, text, cells = read_label_cells(data, encoding.numeric, label, encoding.text,
                                            allow_missing=encoding.impute is not None)
    y = class_indices(cells, state["classes"], where=f"{os.fspath(data)}, column '{label}'")
    inputs = (numbers, text if encoding.text else None)
    return _report(state, checkpoint, inputs, y, Path(data).name, out_dir, model=model, evaluate=True)


def _report(state: dict, checkpoint, inputs: tuple[np.ndarray, np.ndarray | None], y: np.ndarray, subject: str,
            out_dir, *, model=None, evaluate: bool = False) -> Report:
    """``inputs``: the report rows as the model takes them, (numbers, text or None)."""
    from edgelr.report import Scored, find_parity, write_report
    from edgelr.runtime import PredictorError

    with torch.no_grad():
        proba = build_model(state)(torch.as_tensor(inputs[0], dtype=torch.float64), inputs[1]).numpy()
    notes, parity = [], None
    if model is not None:
        parity = find_parity(model, state, inputs, proba)  # named by the user: a mismatch is an error
    else:
        sibling = Path(checkpoint).with_suffix(".onnx")
        if sibling.is_file():
            try:
                parity = find_parity(sibling, state, inputs, proba)
            except (ModelFileError, PredictorError) as exc:
                notes.append(f"not used for the parity figures: {exc}")
    extra = {subject: classification_metrics(y, proba)} if evaluate else None
    return write_report(out_dir, state, Scored(y, proba, subject), checkpoint=checkpoint, parity=parity,
                        extra_metrics=extra, notes=notes)
