"""Choosing C by cross-validation (``edgelr train --C 0.01,0.1,1 --cv K``).

Stratified K folds of the training rows, as scikit-learn's ``StratifiedKFold(K)``
without shuffling makes them; for each fold the encoding (standardization, categories,
imputation) is fitted on the fold's training part, as a scikit-learn Pipeline refits
its scaler, and the model is fitted at every C and scored by the mean cross-entropy
(log loss) of the held-out part. The C of the lowest mean over the folds wins.

Warm start along the path: within a fold the C values are fitted from the strongest
penalty (smallest C) up, each fit starting from the previous optimum (``fit`` starts
from the model's parameters), so every fit after the first begins near its answer.
A binary model of numeric columns first takes Newton steps from there (the objective's
own ``hessian``; d+1 unknowns): from a nearby optimum they converge in a few steps,
where L-BFGS would spend tens of iterations relearning the curvature, and ``fit`` then
only confirms the gradient is within ``tol`` (breast cancer, 5 folds x 5 C: about a
third of the passes over the rows of cold fits).
The caller refits on all the training rows at the chosen C, from zero, as a plain
fit would: the saved model does not depend on the search.

``check_grid`` is torch-free, so the CLI checks its options before torch loads; the
fits import the training side when they run.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgelr.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from edgelr.encoding import Layout


_NEWTON_STEPS = 8  # most Newton steps from the previous C's optimum (3-4 reach tol on breast cancer)


@dataclass
class CVResult:
    """What ``cross_validate_C`` found, and what it cost."""

    C: float  # the chosen C: lowest mean held-out log loss (the first given among exact ties)
    scores: list[dict]  # [{"C": c, "log_loss": mean over the folds}, ...] in the order the C values were given
    fold_losses: np.ndarray  # (n_folds, n_C) held-out log loss of each fold and C
    iterations: int  # optimizer iterations over every fit (history entries after epoch 0)
    seconds: float  # wall time of the fits and their scoring

    def to_json(self) -> dict:
        """``--json``'s ``"cv"`` entry (spec section 3)."""
        return {"C": self.C, "scores": self.scores}


def check_grid(Cs: list[float], folds: int | None, *, penalty: str) -> None:
    """A list of C needs --cv, --cv needs a list: say so before any row is read."""
    if folds is None:
        if len(Cs) > 1:
            raise ConfigError(f"--C lists {len(Cs)} values ({', '.join(f'{c:g}' for c in Cs)}) without --cv; "
                              "expected --cv K to choose among them by K-fold cross-validation, or a single C")
        return
    if folds < 2:
        raise ConfigError(f"--cv {folds}: cross-validation needs at least 2 folds")
    if len(Cs) < 2:
        raise ConfigError(f"--cv {folds} with the single C {Cs[0]:g}: there is nothing to choose; expected a "
                          "comma-separated list such as --C 0.01,0.1,1")
    if penalty == "none":
        raise ConfigError("--cv chooses the L2 strength C, and --penalty none trains without one; "
                          "expected --penalty l2")
    bad = [c for c in Cs if not 0 < c < np.inf]
    if bad:
        raise ConfigError(f"--C {bad[0]:g}: every C must be a finite number > 0")
    if len(set(Cs)) < len(Cs):
        raise ConfigError(f"--C {', '.join(f'{c:g}' for c in Cs)} lists a value twice; expected distinct values")


def stratified_folds(y: np.ndarray, n_folds: int) -> np.ndarray:
    """The held-out fold (0 .. n_folds - 1) of each row, shape (n_rows,).

    The folds of scikit-learn's ``StratifiedKFold(n_folds, shuffle=False)``: each class's
    rows, in their order, go to the folds in consecutive blocks, the block sizes dealt
    round-robin over the rows sorted by class (classes in order of first appearance).
    """
    y = np.asarray(y)
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    by_appearance = np.argsort(np.argsort(first))[inverse.ravel()]  # 0: the first class to appear in y
    n_classes = first.size
    ordered = np.sort(by_appearance)
    allocation = np.array([np.bincount(ordered[i::n_folds], minlength=n_classes) for i in range(n_folds)])
    folds = np.empty(y.size, dtype=np.int64)
    for k in range(n_classes):
        folds[by_appearance == k] = np.repeat(np.arange(n_folds), allocation[:, k])
    return folds


def cross_validate_C(
    estimator,
    X: np.ndarray,
    layout: Layout,
    y: np.ndarray,
    classes: list,
    rows: np.ndarray,
    Cs: list[float],
    n_folds: int,
    *,
    device: torch.device,
    warm_start: bool = True,
    sample_weight: np.ndarray | None = None,
) -> CVResult:
    """Mean held-out log loss of every C over stratified folds of ``rows``; the best C.

    X : raw rows of shape (n, n_columns) read with ``layout``; y : class indices (n,)
    rows : the training rows' indices into X (the validation split already taken out)
    estimator : an ``edgelr.LogisticRegression`` whose settings (optimizer, tol,
    class_weight, encoding, ...) every fold's fits use; its C is not changed here.
    ``warm_start=False`` fits every (fold, C) from zero (to measure what the path saves).
    ``sample_weight`` (n,) weighs the rows of every fold's fits; the held-out loss is unweighted.
    """
    import torch
    from torch import nn

    from edgelr.data import plain_value
    from edgelr.model import LogisticModel
    from edgelr.rows import InMemoryRows, encode_in_memory, encoder
    from edgelr.train import Objective, fit
    settings = estimator.settings()
    spec = estimator.encoding_spec()
    y_train = y[rows]
    counts = np.bincount(y_train, minlength=len(classes))
    if counts.min() < n_folds:
        rare = int(np.argmin(counts))
        raise ConfigError(f"--cv {n_folds}: the training rows hold {counts[rare]} row(s) of class "
                          f"{plain_value(classes[rare])!r}; expected at least {n_folds} of each class, one per "
                          "fold (fewer folds, or more rows)")
    fold_of = stratified_folds(y_train, n_folds)
    path = sorted(range(len(Cs)), key=lambda i: Cs[i])  # smallest C first: the strongest penalty starts nearest 0
    losses = np.empty((n_folds, len(Cs)))
    iterations = 0
    started = time.perf_counter()
    for f in range(n_folds):
        fit_rows, held_rows = rows[fold_of != f], rows[fold_of == f]  # sorted: the order of the data
        row_weight = None if sample_weight is None else sample_weight[fit_rows]
        weights = estimator.sample_weight(y[fit_rows], classes, row_weight)  # class weights of the fold's own rows
        source, encoding = encode_in_memory(X, layout, spec, y[fit_rows], weights, device, index=fit_rows,
                                            row_weight=row_weight)
        held = InMemoryRows.encoded(X, y[held_rows], None, encoder(encoding, layout), device, index=held_rows)
        model = LogisticModel(encoding.n_design, len(classes), n_numeric=encoding.n_numeric).to(device)
        held_out = Objective(model, held, C=1.0, penalty="none")  # the plain mean cross-entropy
        for n, i in enumerate(path):
            objective = Objective(model, source, C=Cs[i], penalty=estimator.penalty, l1_ratio=estimator.l1_ratio)
            if not warm_start:
                nn.init.zeros_(model.linear.weight)
                nn.init.zeros_(model.linear.bias)
            elif n and objective.binary and model.n_numeric == model.linear.in_features and not objective.l1:
                # (``fit`` skips its subsample warm start from parameters that are not zero.) Newton
                # steps need a smooth objective: an L1 part goes straight to OWL-QN.
                _newton_steps(objective, settings.tol)
            history = fit(objective, dataclasses.replace(settings, C=Cs[i]))
            iterations += len(history) - 1
            with torch.no_grad():
                losses[f, i] = held_out.loss().item()
    mean = losses.mean(axis=0)
    best = int(np.argmin(mean))  # the first of exact ties, in the order given
    scores = [{"C": float(c), "log_loss": float(m)} for c, m in zip(Cs, mean)]
    return CVResult(float(Cs[best]), scores, losses, iterations, time.perf_counter() - started)


def _newton_steps(objective, tol: float, most: int = _NEWTON_STEPS) -> None:
    """Move a binary model of numeric columns by Newton steps on ``objective``, from where it is.

    Each step costs a pass for the gradient and one for the Hessian ((d+1) x (d+1)).
    Stops when the gradient is within ``tol``, or as soon as a step does not lower the
    objective (the parameters are float32: near the optimum of a flat problem rounding
    wins), undoing that step; ``fit`` takes over from there either way.
    """
    import torch

    from edgelr.rows import one_torch_thread

    with one_torch_thread():  # as in ``fit``: the passes sum blocks on threads of their own
        _newton(objective, tol, most, torch)


def _newton(objective, tol: float, most: int, torch) -> None:
    linear = objective.model.linear
    loss, (dW, db) = objective.loss_and_grad()
    for _ in range(most):
        g = torch.cat([dW.reshape(-1), db])  # (d+1,) in [w, b]
        if float(g.abs().max()) <= tol:
            return
        # A fresh Hessian each step: reusing the first (one pass fewer per step) stalled on breast
        # cancer's nearly collinear columns, where L-BFGS then needed hundreds of iterations.
        step, info = torch.linalg.solve_ex(objective.hessian(), g)
        if int(info) != 0 or not bool(torch.isfinite(step).all()):
            return
        saved = linear.weight.detach().clone(), linear.bias.detach().clone()
        with torch.no_grad():
            linear.weight -= step[:-1].to(linear.weight.dtype).view_as(linear.weight)
            linear.bias -= step[-1:].to(linear.bias.dtype)
        new_loss, (dW, db) = objective.loss_and_grad()
        if not new_loss.item() < loss.item():
            with torch.no_grad():
                linear.weight.copy_(saved[0])
                linear.bias.copy_(saved[1])
            return
        loss = new_loss
