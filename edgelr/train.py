"""Fitting the linear layer: scikit-learn's objective, minimized with torch optimizers.

The objective is the (sample-weighted) mean cross-entropy plus ``||W||^2 / (2 C n)``,
which is scikit-learn's ``C * sum(loss) + ||W||^2 / 2`` divided by ``C n``: the same
optimum, on a scale where a learning rate means the same thing at any row count. The
intercept is never penalized.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edgelr.errors import ConfigError
from edgelr.model import LogisticModel

OPTIMIZERS = ("lbfgs", "sgd", "adam")
PENALTIES = ("l2", "none")

# Optimizer-specific defaults, used when the user gives no --lr / --epochs.
DEFAULT_LR = {"lbfgs": 1.0, "sgd": 0.1, "adam": 0.01}
DEFAULT_EPOCHS = {"lbfgs": 100, "sgd": 100, "adam": 100}

ProgressFn = Callable[[int, float], None]

_MAX_LINE_SEARCH = 25  # objective evaluations one strong-Wolfe line search may use


@dataclass(frozen=True)
class TrainSettings:
    """How to minimize; what to minimize comes from C and penalty."""

    C: float = 1.0  # inverse L2 strength, as scikit-learn's C
    penalty: str = "l2"  # "l2" or "none"
    optimizer: str = "lbfgs"  # full-batch L-BFGS with a strong-Wolfe line search
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    epochs: int | None = None  # L-BFGS: most iterations; sgd/adam: passes over the data
    batch_size: int | None = None  # None: full batch
    tol: float = 1e-6  # L-BFGS stops when max |gradient| falls below this
    seed: int = 0  # mini-batch shuffling

    @property
    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else DEFAULT_EPOCHS[self.optimizer]

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer '{self.optimizer}' is unknown; expected one of {', '.join(OPTIMIZERS)}")
        if self.penalty not in PENALTIES:
            raise ConfigError(f"penalty '{self.penalty}' is unknown; expected one of {', '.join(PENALTIES)}")
        if not 0 < self.C < math.inf:
            raise ConfigError(f"C must be a finite number > 0, got {self.C}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.epochs is not None and self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.optimizer == "lbfgs" and self.batch_size is not None:
            raise ConfigError("lbfgs is a full-batch method; --batch-size needs --optimizer sgd or adam")


def resolve_device(spec: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda[:N]' must exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(f"device '{spec}' is not understood; expected auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device '{spec}' is not supported; expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{spec}' was requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device '{spec}' does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return device


def balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's class_weight='balanced': n / (n_classes * count(class)) per row."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    per_class = y.size / (n_classes * np.maximum(counts, 1.0))
    return per_class[y]


class Objective:
    """The training objective on a fixed (standardized) dataset held on one device.

    X : tensor of shape (n, n_features); y : (n,) int64; sample_weight : (n,) or None.
    """

    def __init__(self, model: LogisticModel, X, y, sample_weight, *, C: float, penalty: str):
        self.model = model
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.binary = model.linear.out_features == 1
        self.y_float = y.double() if self.binary else None
        self.l2 = 0.0 if penalty == "none" else 1.0 / (C * X.shape[0])

    def __call__(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Objective on all rows, or on a mini-batch ``rows`` (same expected gradient)."""
        X, y = (self.X, self.y) if rows is None else (self.X[rows], self.y[rows])
        # The matrix product runs in the data's dtype (float32: the costly part); the
        # loss and its mean run in float64. A float32 mean resolves the objective only
        # to ~6e-8, too coarse for L-BFGS to see progress along a flat direction (e.g.
        # the softmax intercepts), which stalls it short of scikit-learn's optimum.
        z = self.model.linear(X).double()
        if self.binary:
            target = self.y_float if rows is None else self.y_float[rows]
            losses = F.binary_cross_entropy_with_logits(z[:, 0], target, reduction="none")
        else:
            losses = F.cross_entropy(z, y, reduction="none")
        if self.sample_weight is not None:
            w = self.sample_weight if rows is None else self.sample_weight[rows]
            losses = losses * w
        loss = losses.mean()
        if self.l2:
            loss = loss + 0.5 * self.l2 * self.model.linear.weight.double().square().sum()
        return loss


def fit(objective: Objective, settings: TrainSettings, progress: ProgressFn | None = None) -> list[dict]:
    """Minimize ``objective`` in place; return the history [{"epoch", "loss"}, ...].

    ``loss`` at epoch E is the full objective after E updates; epoch 0 is the start.
    A loss or parameter that stops being finite is an error, never a saved model.
    """
    lr = settings.lr if settings.lr is not None else DEFAULT_LR[settings.optimizer]
    params = list(objective.model.linear.parameters())
    if settings.optimizer == "lbfgs":
        history = _fit_lbfgs(objective, params, lr, settings.resolved_epochs, settings.tol, progress)
    else:
        history = _fit_first_order(objective, params, settings, lr, settings.resolved_epochs, progress)
    bad = next((h for h in history if not math.isfinite(h["loss"])), None)
    if bad is not None or not all(torch.isfinite(p).all() for p in params):
        epoch = bad["epoch"] if bad else history[-1]["epoch"]
        raise ConfigError(f"training diverged: the loss is not finite at epoch {epoch} "
                          f"(optimizer {settings.optimizer}, lr {lr}, C {settings.C}); expected a smaller "
                          "--lr, a larger --C, or features of moderate size")
    return history


def _fit_lbfgs(objective, params, lr, epochs, tol, progress) -> list[dict]:
    closure = _CachedClosure(objective, params)
    # max_iter=1: one L-BFGS iteration per step() so each epoch lands in the history;
    # the optimizer keeps its curvature pairs across calls. max_eval must be set too:
    # its default (max_iter * 5 // 4 == 1) would leave the line search no evaluations.
    opt = torch.optim.LBFGS(
        params, lr=lr, max_iter=1, max_eval=1 + _MAX_LINE_SEARCH, history_size=20,
        line_search_fn="strong_wolfe", tolerance_grad=tol, tolerance_change=0.0,
    )
    loss = closure().item()
    history = [{"epoch": 0, "loss": loss}]
    eps = float(torch.finfo(torch.float64).eps)
    for epoch in range(1, epochs + 1):
        if closure.grad_max() <= tol:
            break
        opt.step(closure)
        prev, loss = loss, closure().item()
        history.append({"epoch": epoch, "loss": loss})
        if progress:
            progress(epoch, loss)
        # No decrease the float type can represent: further steps only chase rounding.
        if prev - loss <= eps * abs(loss):
            break
    return history


def _fit_first_order(objective, params, settings, lr, epochs, progress) -> list[dict]:
    opt = torch.optim.SGD(params, lr=lr) if settings.optimizer == "sgd" else torch.optim.Adam(params, lr=lr)
    n = objective.X.shape[0]
    batch = settings.batch_size or n
    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    with torch.no_grad():
        history = [{"epoch": 0, "loss": objective().item()}]
    for epoch in range(1, epochs + 1):
        if batch >= n:
            _step(opt, objective, None)
        else:
            order = torch.randperm(n, generator=gen).to(objective.X.device)
            for start in range(0, n, batch):
                _step(opt, objective, order[start : start + batch])
        with torch.no_grad():
            loss = objective().item()
        history.append({"epoch": epoch, "loss": loss})
        if progress:
            progress(epoch, loss)
    return history


def _step(opt, objective, rows) -> None:
    opt.zero_grad(set_to_none=True)
    objective(rows).backward()
    opt.step()


class _CachedClosure:
    """L-BFGS closure that does not recompute the objective at the same parameters.

    torch's LBFGS evaluates the closure at the start of every step(), which is the point
    its line search just evaluated; with one iteration per step that would double the
    passes over the data.
    """

    def __init__(self, objective: Objective, params: list[torch.Tensor]):
        self.objective, self.params = objective, params
        self._at: list[torch.Tensor] | None = None
        self._loss: torch.Tensor | None = None
        self._grads: list[torch.Tensor] = []

    def __call__(self) -> torch.Tensor:
        if self._at is not None and all(torch.equal(p, q) for p, q in zip(self.params, self._at)):
            for p, g in zip(self.params, self._grads):
                p.grad = g.clone()
            return self._loss
        for p in self.params:
            p.grad = None
        with torch.enable_grad():
            loss = self.objective()
            loss.backward()
        self._at = [p.detach().clone() for p in self.params]
        self._grads = [p.grad.detach().clone() for p in self.params]
        self._loss = loss.detach()
        return self._loss

    def grad_max(self) -> float:
        self()
        return max(float(g.abs().max()) for g in self._grads)
