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
SumFn = Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over ranks (identity in one process)

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
    """The training objective over a row source (edgelr.rows) on one device.

    ``n_total`` is the number of training rows over all ranks and ``sum_ranks`` sums a
    tensor over ranks (torch.distributed); in one process they are ``rows.n`` and the
    identity, so one process and several compute the same numbers.
    """

    def __init__(self, model: LogisticModel, rows, *, C: float, penalty: str, n_total: int | None = None,
                 sum_ranks: SumFn | None = None):
        self.model, self.rows = model, rows
        self.n_total = rows.n if n_total is None else n_total
        self.sum_ranks = sum_ranks or (lambda t: t)
        self.binary = model.linear.out_features == 1
        self.l2 = 0.0 if penalty == "none" else 1.0 / (C * self.n_total)

    def batch_loss(self, X: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        """Mean loss of one batch plus the penalty: an unbiased estimate of the objective."""
        # The matrix product runs in float32 (the costly part); the loss and its mean in
        # float64. A float32 mean resolves the objective only to ~6e-8, too coarse for
        # L-BFGS to see progress along a flat direction (e.g. the softmax intercepts).
        losses = self._losses(self.model.linear(X).double(), y)
        if w is not None:
            losses = losses * w
        return losses.mean() + self._penalty()

    def loss(self) -> torch.Tensor:
        """Full objective (float64 scalar), without the gradient's product."""
        return self.loss_and_grad(grad=False)[0]

    def loss_and_grad(self, grad: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Full objective (float64 scalar) and its gradient [dW, db], in one pass over the rows.

        The gradient is written out rather than taken by autograd so that each block is
        read once for both products while it is still in the CPU cache.
        """
        W, b = self.model.linear.weight.detach(), self.model.linear.bias.detach()  # (k, d), (k,)
        total = torch.zeros(1 + W.numel() + b.numel(), dtype=torch.float64, device=W.device)
        for X, y, w in self.rows.blocks():
            z = torch.addmm(b, X, W.T).double()  # (m, k) logits
            losses = self._losses(z, y)
            total[0] += (losses if w is None else losses * w).sum()
            if grad:
                G = self._dloss_dz(z, y)  # (m, k)
                if w is not None:
                    G = G * w[:, None]
                total[1 : 1 + W.numel()] += (G.T.float() @ X).double().reshape(-1)
                total[1 + W.numel() :] += G.sum(dim=0)
        total = self.sum_ranks(total) / self.n_total
        loss = total[0] + self._penalty().detach()
        dW = total[1 : 1 + W.numel()].reshape(W.shape) + self.l2 * W.double()
        return loss, [dW.to(W.dtype), total[1 + W.numel() :].to(b.dtype)]

    def _losses(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy per row from float64 logits z (m, k): -log p(true class), stably."""
        if self.binary:
            return -F.logsigmoid(torch.where(y.bool(), z[:, 0], -z[:, 0]))
        return -F.log_softmax(z, dim=1).gather(1, y[:, None])[:, 0]

    def _dloss_dz(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d loss / d z (m, k): p - onehot(y)."""
        if self.binary:
            return (torch.sigmoid(z[:, 0]) - y.double())[:, None]
        G = torch.softmax(z, dim=1)
        G[torch.arange(G.shape[0], device=G.device), y] -= 1.0
        return G

    def _penalty(self) -> torch.Tensor:
        if not self.l2:
            return torch.zeros((), dtype=torch.float64, device=self.model.linear.weight.device)
        return 0.5 * self.l2 * self.model.linear.weight.double().square().sum()


def fit(objective: Objective, settings: TrainSettings, progress: ProgressFn | None = None,
        validation: Objective | None = None) -> list[dict]:
    """Minimize ``objective`` in place; return the history [{"epoch", "loss"}, ...].

    ``loss`` at epoch E is the full objective after E updates; epoch 0 is the start.
    With ``validation`` (an unpenalized objective on held-out rows), each entry also
    has ``val_loss``. A loss or parameter that stops being finite is an error.
    """
    lr = settings.lr if settings.lr is not None else DEFAULT_LR[settings.optimizer]
    params = list(objective.model.linear.parameters())
    if settings.optimizer == "lbfgs":
        history = _fit_lbfgs(objective, params, lr, settings.resolved_epochs, settings.tol, progress, validation)
    else:
        history = _fit_first_order(objective, params, settings, lr, settings.resolved_epochs, progress, validation)
    bad = next((h for h in history if not math.isfinite(h["loss"])), None)
    if bad is not None or not all(torch.isfinite(p).all() for p in params):
        epoch = bad["epoch"] if bad else history[-1]["epoch"]
        raise ConfigError(f"training diverged: the loss is not finite at epoch {epoch} "
                          f"(optimizer {settings.optimizer}, lr {lr}, C {settings.C}); expected a smaller "
                          "--lr, a larger --C, or features of moderate size")
    return history


def _entry(epoch: int, loss: float, validation: Objective | None) -> dict:
    """One history entry; the held-out loss is evaluated at the same parameters."""
    entry = {"epoch": epoch, "loss": loss}
    if validation is not None:
        with torch.no_grad():
            entry["val_loss"] = validation.loss().item()
    return entry


def _fit_lbfgs(objective, params, lr, epochs, tol, progress, validation) -> list[dict]:
    closure = _CachedClosure(objective, params)
    # max_iter=1: one L-BFGS iteration per step() so each epoch lands in the history;
    # the optimizer keeps its curvature pairs across calls. max_eval must be set too:
    # its default (max_iter * 5 // 4 == 1) would leave the line search no evaluations.
    opt = torch.optim.LBFGS(
        params, lr=lr, max_iter=1, max_eval=1 + _MAX_LINE_SEARCH, history_size=20,
        line_search_fn="strong_wolfe", tolerance_grad=tol, tolerance_change=0.0,
    )
    loss = closure().item()
    history = [_entry(0, loss, validation)]
    eps = float(torch.finfo(torch.float64).eps)
    for epoch in range(1, epochs + 1):
        if closure.grad_max() <= tol:
            break
        opt.step(closure)
        prev, loss = loss, closure().item()
        history.append(_entry(epoch, loss, validation))
        if progress:
            progress(epoch, loss)
        # No decrease the float type can represent: further steps only chase rounding.
        if prev - loss <= eps * abs(loss):
            break
    return history


def _fit_first_order(objective, params, settings, lr, epochs, progress, validation) -> list[dict]:
    opt = torch.optim.SGD(params, lr=lr) if settings.optimizer == "sgd" else torch.optim.Adam(params, lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    history = [_entry(0, objective.loss().item(), validation)]
    for epoch in range(1, epochs + 1):
        if settings.batch_size is None:
            _set_grads(params, objective.loss_and_grad()[1])  # full batch: every row, every rank
            opt.step()
        else:
            for X, y, w in objective.rows.minibatch_pools():
                order = torch.randperm(X.shape[0], generator=gen).to(X.device)
                for start in range(0, X.shape[0], settings.batch_size):
                    rows = order[start : start + settings.batch_size]
                    opt.zero_grad(set_to_none=True)
                    objective.batch_loss(X[rows], y[rows], None if w is None else w[rows]).backward()
                    opt.step()
        loss = objective.loss().item()
        history.append(_entry(epoch, loss, validation))
        if progress:
            progress(epoch, loss)
    return history


def _set_grads(params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    for p, g in zip(params, grads):
        p.grad = g.clone()


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
        if self._at is None or not all(torch.equal(p, q) for p, q in zip(self.params, self._at)):
            self._loss, self._grads = self.objective.loss_and_grad()
            self._at = [p.detach().clone() for p in self.params]
        _set_grads(self.params, self._grads)
        return self._loss

    def grad_max(self) -> float:
        self()
        return max(float(g.abs().max()) for g in self._grads)
