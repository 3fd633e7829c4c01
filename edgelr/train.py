"""Fitting the linear layer: scikit-learn's objective, minimized with edgelr.optim's algorithms.

The objective is the (sample-weighted) mean cross-entropy plus
``(l1_ratio ||W||_1 + (1 - l1_ratio) ||W||^2 / 2) / (C n)``, which is scikit-learn's
``C * sum(loss) + penalty`` divided by ``C n``: the same optimum, on a scale where a
learning rate means the same thing at any row count. The intercept is never penalized.
With an L1 part (``l1_ratio`` > 0), L-BFGS becomes OWL-QN (edgelr.optim), whose steps
leave exact zeros, as scikit-learn's saga does.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgelr import kernels
from edgelr.errors import ConfigError
from edgelr.interrupts import raise_if_interrupted
from edgelr.model import LogisticModel, category_table, logits
from edgelr.optim import LBFGS, OWLQN, Adam, sgd_step
from edgelr.rows import one_torch_thread, ordered_map
from edgelr.settings import DEFAULT_LR, TrainSettings

ProgressFn = Callable[[int, float], None]
SumFn = Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over ranks (identity in one process)

_MAX_LINE_SEARCH = 25  # objective evaluations one strong-Wolfe line search may use
# Rows per product in ``Objective.hessian``. The products' temporaries grow with it: on the
# 1M x 100 fit's 62,500-row subsample, 4,096 rows raised the fit's peak memory by 16 MiB,
# 1,024 by 5 MiB, in the same time (30 ms).
_HESSIAN_ROWS = 1_024
_FLOAT64_CELLS = 2**22  # rows x features up to which the objective's products run in float64
# The warm start (see _warm_start) fits every step-th row, step >= _WARM_STEP, at most
# about _WARM_ROWS rows, and only with at least _WARM_ROWS_PER_PARAMETER rows per weight.
_WARM_ROWS = 65_536
_WARM_STEP = 8
_WARM_ROWS_PER_PARAMETER = 20
_WARM_TOL = 1e-3  # the subsample fit's tolerance at _WARM_ROWS rows, sqrt(_WARM_ROWS / rows) times it on fewer


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

    def __init__(self, model: LogisticModel, rows, *, C: float, penalty: str, l1_ratio: float = 0.0,
                 n_total: int | None = None, sum_ranks: SumFn | None = None):
        self.model, self.rows = model, rows
        self.n_total = rows.n if n_total is None else n_total
        self.sum_ranks = sum_ranks or (lambda t: t)
        self.binary = model.linear.out_features == 1
        strength = 0.0 if penalty == "none" else 1.0 / (C * self.n_total)
        self.l1, self.l2 = strength * l1_ratio, strength * (1.0 - l1_ratio)  # per weight, on the mean's scale
        # The products' type. float32 rounding makes the objective a slightly rough
        # function of the parameters, ~1e-7/sqrt(n) relative: on few rows that stalls
        # L-BFGS short of ``tol`` where the data leave a direction nearly flat. Few rows
        # cost little in float64; on many the roughness averages away.
        self.dtype = torch.float64 if self.n_total * model.linear.in_features <= _FLOAT64_CELLS else torch.float32
        # Threads summing blocks at once (ordered_map): the cores torch may use, read
        # here because ``fit`` turns torch's own threads off while it runs.
        self.workers = torch.get_num_threads()

    def batch_loss(self, X: torch.Tensor, slots: torch.Tensor | None, y: torch.Tensor,
                   w: torch.Tensor | None) -> torch.Tensor:
        """Mean loss of one batch plus the penalty: an unbiased estimate of the objective."""
        # The matrix product runs in float32 (the costly part); the loss and its mean in
        # float64. A float32 mean resolves the objective only to ~6e-8, too coarse for
        # L-BFGS to see progress along a flat direction (e.g. the softmax intercepts).
        affine = self.rows.affine
        W, b = affine.fold(self.model.linear.weight, self.model.linear.bias)
        X = affine.block(X, W.dtype)
        losses = self._losses(logits(X, slots, W, W.new_zeros(W.shape[0])).double() + b, y)
        if w is not None:
            losses = losses * w
        return losses.mean() + self._penalty()

    def loss(self) -> torch.Tensor:
        """Full objective (float64 scalar), without the gradient's product."""
        return self.loss_and_grad(grad=False)[0]

    def loss_and_grad(self, grad: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Full objective (float64 scalar) and its gradient [dW, db] (float64), in one pass over the rows.

        The gradient is that of the smooth part: the L1 term's is the optimizer's (OWL-QN).

        The gradient is written out rather than taken by autograd so that each block is
        read once for both products while it is still in the CPU cache.
        """
        W, b = self.model.linear.weight.detach(), self.model.linear.bias.detach()  # (k, d), (k,)
        affine = self.rows.affine
        Wp, bp = affine.fold(W.to(self.dtype), b)  # the blocks' coordinates; bp in float64
        total = torch.zeros(1 + W.numel() + b.numel(), dtype=torch.float64, device=W.device)
        workers = self._block_workers(W.device)
        table = category_table(Wp, self.model.n_numeric)
        for part in ordered_map(lambda block: self._block_sums(block, Wp, bp, table, grad), self.rows.blocks(),
                                workers):
            total += part  # in block order whatever the thread count: runs agree to the bit
        total = self.sum_ranks(total) / self.n_total
        loss = total[0] + self._penalty().detach()
        dW, db = total[1 : 1 + W.numel()].reshape(W.shape), total[1 + W.numel() :]
        dW = affine.unfold(dW, db)
        if not self.binary:
            # Each row's dloss/dz (softmax minus one-hot) sums to zero over the classes, so
            # the exact gradient never shifts every class alike: the one direction the loss
            # cannot see. Rounding in the float32 products would let the parameters drift
            # along it; taking it out keeps them where exact arithmetic would.
            dW, db = dW - dW.mean(dim=0), db - db.mean()
        dW = dW + self.l2 * W.double()
        return loss, [dW, db]

    def _block_sums(self, block, W: torch.Tensor, b: torch.Tensor, table: torch.Tensor, grad: bool) -> torch.Tensor:
        """[sum of losses, sum of dloss/dW (k*d), sum of dloss/db (k)] over one block, float64.

        W and b (float64) are in the blocks' coordinates (``Affine.fold``); the sums too.
        ``table``: the category coefficients (``category_table``) for the blocks' slots.
        """
        X, slots, y, w = block
        X = self.rows.affine.block(X, W.dtype)  # the products' type (a copy of a cache-sized block if another)
        compiled = self._compiled_sums(X, slots, y, w, W, b, grad)
        if compiled is not None:
            return compiled
        sums = torch.zeros(1 + W.numel() + b.numel(), dtype=torch.float64, device=W.device)
        # The bias is added in float64: folded, it carries the features' means.
        z = _numeric_logits(X, W)
        if slots is not None and slots.shape[1]:
            z = z + table[slots].sum(dim=1)
        z = z.double() + b  # (m, k)
        if self.binary:
            # The loss and its derivative in the products' type: rounded like the product
            # that made z (~1e-7 relative per row, summed in float64), and cheaper than in
            # float64 on float32 rows (1M x 100, fresh first fits: a full pass 67-79 -> 57-67 ms).
            losses, G = _binary_terms(z[:, 0].to(X.dtype), y, grad)
        else:
            losses, G = self._losses(z, y), self._dloss_dz(z, y) if grad else None
        sums[0] = (losses if w is None else losses * w).sum(dtype=torch.float64)
        if grad:
            if w is not None:
                G = G * w[:, None]
            dW = sums[1 : 1 + W.numel()].view(W.shape)  # (k, d), written in place
            dW[:, : X.shape[1]] = _gradient_product(G.to(X.dtype), X)
            if slots is not None and slots.shape[1]:
                # Each row adds its dloss/dz to the coefficients of its categories: a
                # scatter-add per text column, the transpose of the lookup in ``logits``.
                per_slot = torch.zeros(table.shape[0], G.shape[1], dtype=torch.float64, device=W.device)
                G64 = G.to(torch.float64)  # a binary model's G is in the products' type
                for j in range(slots.shape[1]):
                    per_slot.index_add_(0, slots[:, j], G64)
                dW[:, X.shape[1] :] = per_slot[:-1].T  # the last slot is the unknown category's zero
            sums[1 + W.numel() :] = G.sum(dim=0, dtype=torch.float64)
        return sums

    def _compiled_sums(self, X, slots, y, w, W, b, grad) -> torch.Tensor | None:
        """``_block_sums`` by edgelr.kernels (one read of each row) where it applies, else None.

        It applies to a binary model's float32 products of numeric rows in CPU memory, the
        common case and the costly one (1M x 100: a full pass ~50 -> 20-35 ms).
        """
        numeric = (slots is None or not slots.shape[1]) and W.shape[1] == X.shape[1]  # no text columns
        if not (self.binary and numeric and X.device.type == "cpu"):
            return None  # (the kinds and layouts the kernel takes, edgelr.kernels checks)
        sums = kernels.binary_sums(X.numpy(), W[0].contiguous().numpy(), float(b[0]), y.numpy(),
                                   None if w is None else w.numpy(), grad)
        return None if sums is None else torch.from_numpy(sums)

    def subsample(self, step: int) -> Objective | None:
        """The same objective (same per-row penalty, same model) on every ``step``-th row, in memory.

        None when the row source cannot hold them (past the memory budget) on some rank.
        """
        rows = self.rows.subsample(step)
        # [rows, ranks that have none]: under torchrun every rank must make the same choice
        counts = self.sum_ranks(torch.tensor([0.0 if rows is None else rows.n, float(rows is None)],
                                             dtype=torch.float64, device=self.model.linear.weight.device))
        if counts[1] > 0:
            return None
        sub = copy.copy(self)
        sub.rows, sub.n_total = rows, int(counts[0])
        return sub

    def hessian(self) -> torch.Tensor:
        """Hessian of a binary model's objective in [w, b] at the current parameters: (d+1, d+1), float64.

        Numeric features only (no text columns): see ``_warm_start``.
        """
        affine = self.rows.affine
        W, b = affine.fold(self.model.linear.weight.detach(), self.model.linear.bias.detach())  # (1, d), (1,)
        d = W.shape[1]

        def block_hessian(block) -> torch.Tensor:
            X, _, _, w = block
            X = affine.block(X, W.dtype)
            p = torch.sigmoid((X @ W.T).double() + b)  # (m, 1)
            D = p * (1.0 - p) if w is None else p * (1.0 - p) * w[:, None]
            H = torch.zeros(d + 1, d + 1, dtype=torch.float64, device=W.device)
            # [X, 1]^T D [X, 1] by parts (no copy of the block with a column of ones), a
            # few thousand rows at a time: the weighted rows are a cache-sized temporary.
            for start in range(0, X.shape[0], _HESSIAN_ROWS):
                part, Dp = X[start : start + _HESSIAN_ROWS], D[start : start + _HESSIAN_ROWS].to(X.dtype)
                XD = part * Dp
                H[:d, :d] += (part.T @ XD).double()
                H[:d, d] += XD.sum(dim=0).double()
            H[d, d] = D.sum()
            return H

        workers = self._block_workers(W.device)
        H = torch.zeros(d + 1, d + 1, dtype=torch.float64, device=W.device)
        for part in ordered_map(block_hessian, self.rows.blocks(), workers):
            H += part  # in block order: the same sums whatever the thread count
        H[d, :d] = H[:d, d]
        H = affine.hessian(self.sum_ranks(H) / self.n_total)
        H[:d, :d].diagonal().add_(self.l2)
        return H

    def _block_workers(self, device: torch.device) -> int:
        """Threads that sum blocks at once: every core for in-memory rows of several blocks on the CPU, else one.

        One block needs no pool: starting its threads cost more than a small pass (breast cancer's).
        """
        several = self.rows.parallel_blocks and self.rows.n > self.rows.block_rows
        return self.workers if several and device.type == "cpu" else 1

    def _losses(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy per row from float64 logits z (m, k): -log p(true class), stably."""
        if self.binary:
            return _binary_terms(z[:, 0], y, grad=False)[0]
        return -F.log_softmax(z, dim=1).gather(1, y[:, None])[:, 0]

    def _dloss_dz(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d loss / d z (m, k) of a multiclass model: softmax(z) - onehot(y)."""
        G = torch.softmax(z, dim=1)
        G[torch.arange(G.shape[0], device=G.device), y] -= 1.0
        return G

    def _penalty(self) -> torch.Tensor:
        W = self.model.linear.weight.double()
        penalty = torch.zeros((), dtype=torch.float64, device=W.device)
        if self.l2:
            penalty = penalty + 0.5 * self.l2 * W.square().sum()
        if self.l1:
            penalty = penalty + self.l1 * W.abs().sum()
        return penalty


def _by_einsum(X: torch.Tensor, outputs: int) -> bool:
    """Whether a block's products with one output run in numpy's einsum rather than torch.

    A binary model's products are matrix-vector ones. On contiguous rows in CPU memory
    numpy's einsum runs them at the speed the rows are read, where MKL's (torch's on x86)
    took about twice as long on a 2-core AMD EPYC (1M x 100 float32: a full pass of the
    first fit 88-112 -> 66-78 ms), and it starts no BLAS threads of its own. Float64
    products (few rows) take the same path, untimed. On a strided view (the warm start's
    subsample of rows in place) einsum's loop per row is slower than MKL's: torch there.
    """
    return outputs == 1 and X.device.type == "cpu" and X.is_contiguous()


def _numeric_logits(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """X (m, d) @ W[:, :d]^T, (m, k) in X's type: the forward product of a block."""
    if _by_einsum(X, W.shape[0]):
        return torch.from_numpy(np.einsum("ij,j->i", X.numpy(), W[0, : X.shape[1]].numpy()))[:, None]
    return X @ W[:, : X.shape[1]].T


def _gradient_product(G: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """G (m, k)^T @ X (m, d), (k, d) in X's type: the gradient's product of a block (see ``_numeric_logits``)."""
    if _by_einsum(X, G.shape[1]):
        return torch.from_numpy(np.einsum("i,ij->j", G[:, 0].numpy(), X.numpy()))[None, :]
    return G.T @ X


def _binary_terms(z: torch.Tensor, y: torch.Tensor, grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(loss per row, d loss / d z as (m, 1) or None) of a binary model from logits z (m,), in z's type.

    With t = z for class 0 and -z for class 1 (minus the margin), the loss is softplus(t) and
    its derivative in z is p - y = sign * sigmoid(t): one product and two functions of t
    (1M x 100: ~10% off a full-data pass). Past the threshold softplus(t) is t to the type's
    precision: log1p(exp(-t)) < t * eps from t ~ 33 in float64 and ~ 14 in float32, and the
    thresholds, 36 and 17, leave a margin.
    """
    sign = 1.0 - 2.0 * y.to(z.dtype)  # +1 for class 0, -1 for class 1
    t = z * sign
    losses = F.softplus(t, threshold=36.0 if z.dtype == torch.float64 else 17.0)
    return losses, torch.sigmoid(t).mul_(sign)[:, None] if grad else None


def fit(objective: Objective, settings: TrainSettings, progress: ProgressFn | None = None,
        validation: Objective | None = None) -> list[dict]:
    """Minimize ``objective`` in place; return the history [{"epoch", "loss"}, ...].

    ``loss`` at epoch E is the full objective after E updates; epoch 0 is the start.
    With ``validation`` (an unpenalized objective on held-out rows), each entry also
    has ``val_loss``. A loss or parameter that stops being finite is an error.
    """
    lr = settings.lr if settings.lr is not None else DEFAULT_LR[settings.optimizer]
    params = list(objective.model.linear.parameters())
    with one_torch_thread():  # the passes sum blocks on threads of their own
        if settings.optimizer == "lbfgs":
            history = _fit_lbfgs(objective, params, lr, settings.resolved_epochs, settings.tol, progress, validation)
        else:
            history = _fit_first_order(objective, params, settings, lr, settings.resolved_epochs, progress,
                                       validation)
    bad = next((h for h in history if not math.isfinite(h["loss"])), None)
    if bad is not None or not all(torch.isfinite(p).all() for p in params):
        epoch = bad["epoch"] if bad else history[-1]["epoch"]
        raise ConfigError(f"training diverged: the loss is not finite at epoch {epoch} "
                          f"(optimizer {settings.optimizer}, lr {lr}, C {settings.C}); expected a smaller "
                          "--lr, a larger --C, or features of moderate size")
    return history


def _start_loss(objective: Objective) -> float:
    """The objective where fitting starts, without a pass over the rows when it is known.

    At zero parameters every row's probabilities are uniform, so every row's loss is
    log(n_classes) and so is their mean (unweighted rows; the penalty is zero).
    """
    linear = objective.model.linear
    if objective.rows.sample_weight is None and not (linear.weight.any() or linear.bias.any()):
        return math.log(2 if objective.binary else linear.out_features)
    return objective.loss().item()


def _entry(epoch: int, loss: float, validation: Objective | None) -> dict:
    """One history entry; the held-out loss is evaluated at the same parameters."""
    raise_if_interrupted()  # every epoch: a Ctrl-C or SIGTERM that something swallowed still ends the fit
    entry = {"epoch": epoch, "loss": loss}
    if validation is not None:
        with torch.no_grad():
            entry["val_loss"] = validation.loss().item()
    return entry


def _fit_lbfgs(objective, params, lr, epochs, tol, progress, validation) -> list[dict]:
    history = [_entry(0, _start_loss(objective), validation)]
    if not epochs:
        return history
    start = [p.detach().clone() for p in params]
    # The warm start moves the parameters (every model) and may return whitened coordinates (binary).
    # Only from zero: parameters a caller set (a neighbouring C's optimum, edgelr.selection) are
    # nearer the optimum than the subsample's.
    from_zero = not any(bool(p.any()) for p in params)
    coords = (_warm_start(objective, lr, epochs, tol) if from_zero else None) or _Direct(objective.model)
    warmed = not all(torch.equal(p, q) for p, q in zip(params, start))
    evaluate, searches = _evaluator(objective, coords), dict(history_size=20, max_evals=1 + _MAX_LINE_SEARCH)
    if objective.l1:  # in the model's own coordinates (_warm_start whitens none): one orthant per weight
        weights = objective.model.linear.weight.numel()
        l1 = torch.zeros_like(coords.x)
        l1[:weights] = objective.l1
        opt = OWLQN(coords.x, evaluate, l1, lr=lr, **searches)
    else:
        opt = LBFGS(coords.x, evaluate, lr=lr, **searches)
    loss = opt.loss
    eps = float(torch.finfo(torch.float64).eps)
    for epoch in range(1, epochs + 1):
        if float(coords.model_grad(opt.grad).abs().max()) <= tol:
            break
        prev = loss
        stepped = opt.step()
        coords.load(opt.x)  # the best point of the line search, which need not be the last one evaluated
        loss = opt.loss
        if not stepped:  # no point along the direction lowered the objective: at its rounding floor
            break
        history.append(_entry(epoch, loss, validation))
        if progress:
            progress(epoch, loss)
        # No decrease the float type can represent: further steps only chase rounding.
        if prev - loss <= eps * abs(loss):
            break
    if warmed and len(history) == 1:  # no full-data step was kept: the history still ends where the model is
        history.append(_entry(1, loss, validation))
    return history


def _evaluator(objective: Objective, coords):
    """x (the coordinates, flat float64) -> (objective, its gradient in x): one pass over the rows."""
    def evaluate(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        coords.load(x)
        loss, grads = objective.loss_and_grad()
        return loss.item(), coords.grad(torch.cat([g.reshape(-1) for g in grads]))

    return evaluate


def _warm_start(objective, lr, epochs, tol):
    """Fit every step-th row first; return coordinates whitened by that fit's Hessian, or None.

    On many rows, full-data L-BFGS from zero spends most of its passes learning the
    curvature. A subsample of at most ~_WARM_ROWS rows has nearly the same optimum and
    curvature at a fraction of the cost per pass, so the full-data iterations start close
    to the optimum and, for a binary model, in variables where the objective looks like
    a round bowl: each iteration then gains about three digits (1M x 100: 3 full-data
    iterations instead of 8). The objective itself is unchanged. Under torchrun every
    rank takes every step-th row of its share, and the subsample's sums are all-reduced
    like the full objective's.
    """
    step = max(_WARM_STEP, -(-objective.n_total // _WARM_ROWS))
    if objective.n_total // step < _WARM_ROWS_PER_PARAMETER * objective.model.linear.weight.numel():
        return None  # too few rows for the subsample's curvature to stand for the whole
    sub = objective.subsample(step)
    if sub is None:
        return None
    # Binary models only: a softmax's Hessian couples the classes, and its one flat
    # direction (all classes shifted alike, held only by the penalty) is what a
    # per-class preconditioner gets wrong; multiclass fits start warm in their own
    # coordinates. Models with text columns too: their Hessian would need the one-hot
    # products this module never forms.
    # And not with an L1 part: whitening mixes the weights, and OWL-QN needs each alone.
    numeric_only = objective.model.n_numeric == objective.model.linear.in_features
    whiten = objective.binary and numeric_only and not objective.l1
    # Whitened, the full-data iterations are nearly Newton steps, and the subsample's optimum
    # stands for the full one only to within its sampling noise (~0.4 / sqrt(rows) per gradient
    # coordinate on standardized features): solving it closer is wasted passes (1M x 100: 12
    # subsample passes -> 8, the same 3 full-data iterations). Unwhitened, L-BFGS is sensitive
    # to where it starts (4 classes, 300k rows: 25 full passes -> 60 with the looser start).
    sub_tol = max(tol, _WARM_TOL * math.sqrt(_WARM_ROWS / sub.n_total)) if whiten else max(tol, 1e-4)
    _fit_lbfgs(sub, list(sub.model.linear.parameters()), lr, epochs, sub_tol, None, None)
    return _Whitened.of(objective.model, sub.hessian()) if whiten else None


def _fit_first_order(objective, params, settings, lr, epochs, progress, validation) -> list[dict]:
    if settings.optimizer == "adam":
        update = Adam(params, lr).step
    else:
        def update(grads):
            sgd_step(params, grads, lr)
    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    history = [_entry(0, _start_loss(objective), validation)]
    for epoch in range(1, epochs + 1):
        if settings.batch_size is None:  # full batch: every row, every rank
            update([g.to(p.dtype) for p, g in zip(params, objective.loss_and_grad()[1])])
        else:
            for X, slots, y, w in objective.rows.minibatch_pools():
                order = torch.randperm(X.shape[0], generator=gen).to(X.device)
                for start in range(0, X.shape[0], settings.batch_size):
                    rows = order[start : start + settings.batch_size]
                    for p in params:
                        p.grad = None
                    objective.batch_loss(X[rows], None if slots is None else slots[rows], y[rows],
                                         None if w is None else w[rows]).backward()
                    update([p.grad for p in params])
        loss = objective.loss().item()
        history.append(_entry(epoch, loss, validation))
        if progress:
            progress(epoch, loss)
    return history


class _Direct:
    """L-BFGS works on the model's parameters themselves, flattened: x = [W.ravel(), b] in float64."""

    def __init__(self, model):
        self.linear = model.linear
        self.x = torch.cat([self.linear.weight.detach().reshape(-1), self.linear.bias.detach()]).double()

    def load(self, x: torch.Tensor) -> None:
        W = self.linear.weight
        with torch.no_grad():
            W.copy_(x[: W.numel()].view(W.shape))
            self.linear.bias.copy_(x[W.numel() :])

    def grad(self, g: torch.Tensor) -> torch.Tensor:
        """The gradient in x from the gradient in the model's parameters (flat)."""
        return g

    def model_grad(self, g: torch.Tensor) -> torch.Tensor:
        """The gradient in the model's parameters (what ``tol`` bounds) from the gradient in x."""
        return g


class _Whitened:
    """L-BFGS works on theta = L^T [w, b] (a binary model), where L L^T = H.

    With H close to the objective's Hessian, the objective in theta has a Hessian close
    to the identity. The model's parameters are [w, b] = L^-T theta; the gradient in
    theta is L^-1 times the gradient in [w, b].
    """

    def __init__(self, model, L: torch.Tensor):
        self.linear, self.L = model.linear, L  # (d+1, d+1) lower triangular, float64
        self.x = L.T @ torch.cat([self.linear.weight[0], self.linear.bias]).detach().double()

    @classmethod
    def of(cls, model, H: torch.Tensor) -> _Whitened | None:
        """From the Hessian H (d+1, d+1); None when it is not positive definite."""
        # A small ridge bounds the condition number (a constant column has zero curvature
        # without the penalty); any positive-definite H leaves the optimum unchanged.
        ridge = 1e-6 * H.diagonal().mean()
        L, info = torch.linalg.cholesky_ex(H + ridge * torch.eye(H.shape[0], dtype=H.dtype, device=H.device))
        if int(info) != 0 or not bool(torch.isfinite(L).all()):
            return None
        return cls(model, L)

    def load(self, theta: torch.Tensor) -> None:
        x = torch.linalg.solve_triangular(self.L.T, theta[:, None], upper=True)[:, 0]
        with torch.no_grad():
            self.linear.weight.copy_(x[None, :-1])
            self.linear.bias.copy_(x[-1:])

    def grad(self, g: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve_triangular(self.L, g.double()[:, None], upper=False)[:, 0]

    def model_grad(self, g: torch.Tensor) -> torch.Tensor:
        return self.L @ g
