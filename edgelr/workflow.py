"""The ``edgelr train`` and ``edgelr report`` jobs: split, fit, score, save, report (and ``export --threshold``).

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
from edgelr.encoding import ONE_PROCESS, Layout, fit_encoding, weighted_stats_of
from edgelr.errors import ConfigError, DataError, ModelFileError
from edgelr.estimator import LogisticRegression
from edgelr.metrics import MetricsAccumulator, classification_metrics
from edgelr.model import logits, probabilities
from edgelr.rows import InMemoryRows, StreamedRows, encode_in_memory, encoder, one_torch_thread
from edgelr.threshold import DEFAULT_THRESHOLD, ThresholdRule, choose_threshold
from edgelr.train import ProgressFn, resolve_device

if TYPE_CHECKING:
    from edgelr.distributed import Cluster
    from edgelr.report import Report
    from edgelr.selection import CVResult


@dataclass
class TrainResult:
    checkpoint: str
    history: list[dict]
    metrics: dict  # {"train": {...}, "validation": {...} or None}
    data: dict  # the data summary stored in the checkpoint
    split: tuple[np.ndarray, np.ndarray] | None = None  # (train, validation) row indices into the dataset
    threshold: float | None = None  # a binary model's threshold (labels are p > threshold); None otherwise
    cv: CVResult | None = None  # the choice of C, with --cv


def train_checkpoint(
    dataset: Dataset,
    estimator: LogisticRegression,
    out: str | os.PathLike,
    *,
    val_fraction: float = 0.2,
    progress: ProgressFn | None = None,
    cluster: Cluster | None = None,
    threshold: ThresholdRule | None = None,
    Cs: list[float] | None = None,
    cv: int | None = None,
) -> TrainResult:
    """Fit ``estimator`` on a stratified split of ``dataset`` and write the checkpoint.

    Under torchrun (``cluster``), every rank fits on and scores its share of the rows
    (the sums are combined over ranks), and rank 0 writes the checkpoint. ``threshold``:
    a binary model's threshold, or the rule that chooses it on the validation rows
    (None: 0.5). ``cv`` folds: choose ``estimator.C`` among ``Cs`` by cross-validation
    on the training rows first (``edgelr.selection``), then fit at it.
    """
    train_rows, val_rows = stratified_split(dataset.y, val_fraction, estimator.seed)
    _check_threshold(threshold, dataset.classes, val_rows, dataset.source)
    search = None
    if cv is not None:
        search = _choose_C(estimator, dataset, train_rows, Cs, cv, cluster)
    sources = _fit_split(estimator, dataset, train_rows, val_rows, progress, cluster)
    summary = _summary(dataset, train_rows, val_rows)

    def metrics_of(rows):  # the rows training standardized (this rank's) are still in memory: score those
        return _metrics_of_source(estimator, sources[0] if rows is train_rows else sources[1], cluster)

    metrics, chosen = _save(estimator, out, metrics_of, summary, (train_rows, val_rows), val_fraction, cluster,
                            threshold, search)
    return TrainResult(os.fspath(out), estimator.history_, metrics, summary, (train_rows, val_rows), chosen, search)


def _choose_C(estimator, dataset: Dataset, train_rows: np.ndarray, Cs: list[float] | None, folds: int,
              cluster: Cluster | None) -> CVResult:
    """Cross-validate the C values on the training rows and set ``estimator.C`` to the best."""
    from edgelr.selection import check_grid, cross_validate_C

    if cluster is not None or dataset.first_row is not None:
        raise ConfigError("--cv runs in one process on rows in memory; expected a run without torchrun")
    Cs = list(Cs or [estimator.C])
    check_grid(Cs, folds, penalty=estimator.penalty)
    estimator.settings()  # bad settings fail before the folds
    with _in(dataset.source):
        search = cross_validate_C(estimator, dataset.X, Layout.of(dataset), dataset.y, dataset.classes, train_rows,
                                  Cs, folds, device=resolve_device(estimator.device),
                                  sample_weight=dataset.sample_weight)
    estimator.C = search.C  # the refit on every training row, from zero, is a plain fit at the chosen C
    return search


def _check_threshold(rule: ThresholdRule | None, classes: list, val_rows: np.ndarray, source: str) -> None:
    """Before any fit: a threshold needs a binary model, and a rule needs validation rows."""
    if rule is None:
        return
    if len(classes) != 2:
        raise ConfigError(f"{source}: --threshold {rule} is for binary models, and the label has {len(classes)} "
                          "classes (a multinomial model takes the most probable class); expected no --threshold")
    if rule.needs_rows and not val_rows.size:
        raise ConfigError(f"--threshold {rule} is chosen on the validation rows, and there are none; expected a "
                          "--val-fraction above 0 (or a threshold given as a number)")


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
    threshold: ThresholdRule | None = None,
    weight: str | None = None,
) -> TrainResult:
    """``train_checkpoint`` for a CSV bigger than ``budget`` bytes: rows stream from a disk cache.

    The cells are read as ``estimator.read_options()`` says (text columns, missing cells).
    ``weight``: the column of per-row sample weights, which weigh the encoding's
    statistics as in memory (``encode_in_memory``'s ``row_weight``).
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
            table = cache_csv(path, folder, label=label, features=features, budget=budget, options=options,
                              weight=weight)
        else:
            from edgelr.distributed import cache_share

            table = cache_share(path, folder, label=label, features=features, budget=budget, cluster=cluster,
                                options=options, weight=weight)
        chunk = chunk_rows_for(budget, table.n_features)
        train_rows, val_rows = stratified_split(table.y, val_fraction, estimator.seed)
        _check_threshold(threshold, table.classes, val_rows, table.source)
        pick = _picker(table.first_row, table.cached_rows, cluster)
        layout = Layout.of(table)

        def source(rows, weights, encode):  # this rank's rows among ``rows`` (and their weights)
            mine = pick(rows)
            return StreamedRows(table.read, table.y, rows[mine], None if weights is None else weights[mine],
                                encode, device, chunk, n_features=table.n_features)

        row_weight = _rows_of(table.sample_weight, train_rows)  # --weight-column
        raw_rows = source(train_rows, None, None)  # chunks() yields them raw
        with _in(table.source):
            # Weighted as in memory (encode_in_memory's row_weight): a median's encoding is of the rows unweighted.
            my_weights = None if row_weight is None else row_weight[pick(train_rows)]  # this rank's rows'
            stats = None if my_weights is None or spec.impute == "median" else weighted_stats_of(
                ((raw, my_weights[where]) for where, raw in raw_rows.chunks()), layout)
            encoding = fit_encoding(layout, spec, lambda: (raw for _, raw in raw_rows.chunks()), stats=stats,
                                    ranks=cluster or ONE_PROCESS)
        encode = encoder(encoding, layout)
        weights = estimator.sample_weight(table.y[train_rows], table.classes, row_weight)  # global class counts
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

        metrics, chosen = _save(estimator, out, metrics_of, summary, (train_rows, val_rows), val_fraction, cluster,
                                threshold, None)
    return TrainResult(os.fspath(out), estimator.history_, metrics, summary, (train_rows, val_rows), chosen)


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


def _save(estimator, out, metrics_of, summary: dict, split, val_fraction: float, cluster,
          rule: ThresholdRule | None, search: CVResult | None) -> tuple[dict, float | None]:
    """Score the split (every rank its own rows under torchrun) and write the checkpoint (rank 0).

    ``metrics_of(rows)``: the (combined) MetricsAccumulator of those rows. A binary
    model's threshold is ``rule``'s, chosen on the validation rows' scores (every rank
    holds them all), and its metrics are those of the labels p > threshold. Returns
    (metrics, the threshold or None for a multinomial model).
    """
    train_rows, val_rows = split
    train, validation = metrics_of(train_rows), metrics_of(val_rows) if val_rows.size else None
    threshold = None
    if train.binary:
        held = validation.binary_rows() if validation is not None else (np.zeros(0), np.zeros(0))
        threshold = DEFAULT_THRESHOLD if rule is None else choose_threshold(rule, *held)
    at = DEFAULT_THRESHOLD if threshold is None else threshold  # ignored by a multinomial model's metrics
    metrics = {"train": train.result(at), "validation": validation.result(at) if validation is not None else None}
    if cluster is None or cluster.is_main:
        config = {**estimator.config_, "val_fraction": val_fraction,
                  **({"world_size": cluster.world_size} if cluster else {}),
                  **({"threshold_rule": str(rule)} if rule is not None and rule.needs_rows else {})}
        extra = {"data": summary, "config": config, "threshold": at}
        if search is not None:
            extra["cv"] = {"folds": int(search.fold_losses.shape[0]), **search.to_json()}
        estimator.save(out, metrics=metrics, extra=extra)
    if cluster is not None:
        cluster.barrier()  # the checkpoint exists before any rank reports success
    return metrics, threshold


def _rows_of(weights: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if weights is None else weights[rows]


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
    row_weight = _rows_of(dataset.sample_weight, train_rows)  # --weight-column
    weights = estimator.sample_weight(dataset.y[train_rows], dataset.classes, row_weight)  # global class counts
    layout = Layout.of(dataset)
    with _in(dataset.source):
        rows, encoding = encode_in_memory(dataset.X, layout, spec, dataset.y[train_rows[mine]],
                                          None if weights is None else weights[mine], device,
                                          index=train_rows[mine] - first, ranks=cluster or ONE_PROCESS,
                                          row_weight=None if row_weight is None else row_weight[mine])
    val_mine = val_rows[pick(val_rows)]
    with _in(dataset.source):
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


def _metrics_of_source(estimator: LogisticRegression, source, cluster: Cluster | None) -> MetricsAccumulator:
    """Metrics of the fitted model on a row source's float32 blocks, over all ranks (``.result()`` them).

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
    return cluster.combine_metrics(metrics) if cluster else metrics


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
    extra = {subject: classification_metrics(y, proba, state["threshold"])} if evaluate else None
    scored = Scored(y, proba, subject, state["threshold"])
    return write_report(out_dir, state, scored, checkpoint=checkpoint, parity=parity, extra_metrics=extra,
                        notes=notes)

