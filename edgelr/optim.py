"""The optimizers' algorithms, written with plain tensors: L-BFGS, OWL-QN, SGD and Adam.

Why not ``torch.optim``: its optimizers import ``torch._dynamo`` on first use (their
``step`` wrappers and ``__init__`` ask the compiler whether it is tracing), which costs
1.2-1.5 s of every fresh process -- more than the whole fit of a million rows. Nothing
here needs the compiler, so the algorithms are written out: full-batch L-BFGS with a
strong-Wolfe line search (Nocedal & Wright, *Numerical Optimization*, 2nd ed.,
algorithms 7.4, 3.5 and 3.6) on one flat float64 vector, and SGD and Adam updates of
parameter tensors in place (Adam as ``torch.optim.Adam`` defines it; a test checks the
two agree). An L1 term makes the objective non-smooth where a weight is zero; OWL-QN
(Andrew & Gao, *Scalable training of L1-regularized log-linear models*, ICML 2007) is
L-BFGS confined to one orthant per step, and its projection leaves exact zeros.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import torch

# x -> (objective, gradient): one pass over the rows
Evaluate = Callable[[torch.Tensor], tuple[float, torch.Tensor]]

_C1, _C2 = 1e-4, 0.9  # the Wolfe conditions' sufficient decrease and curvature constants
_CURVATURE_MIN = 1e-10  # a step whose s.y is below this teaches nothing about the curvature

Pairs = deque  # of (s, y, 1 / y.s), the curvature pairs, oldest first


class LBFGS:
    """Minimize ``evaluate`` from ``x`` (flat float64), one ``step()`` per iteration.

    ``history_size`` curvature pairs shape the direction (two-loop recursion, the first
    iteration scaled as torch's LBFGS does: step ``lr * min(1, 1 / |g|_1)``); each line
    search uses at most ``max_evals`` evaluations. ``x``, ``loss`` and ``grad`` are the
    best point found so far.
    """

    def __init__(self, x: torch.Tensor, evaluate: Evaluate, *, lr: float = 1.0, history_size: int = 20,
                 max_evals: int = 25):
        self.evaluate, self.lr, self.max_evals = evaluate, lr, max_evals
        self.x = x.detach().clone()
        self.loss, self.grad = evaluate(self.x)
        self._pairs: Pairs = deque(maxlen=history_size)

    def step(self) -> bool:
        """One iteration: a direction, then a strong-Wolfe line search along it. False when no step was taken."""
        d = self._direction()
        slope = float(self.grad @ d)
        if not slope < 0:  # not a descent direction (rounding at the optimum): nothing to gain
            return False
        t = self.lr if self._pairs else self.lr * min(1.0, 1.0 / float(self.grad.abs().sum()))
        t, loss, grad = _strong_wolfe(lambda t: self.evaluate(self.x + t * d), t, d, self.loss, slope,
                                      self.max_evals)
        if t == 0.0:
            return False
        s, y = t * d, grad - self.grad
        ys = float(y @ s)
        if ys > _CURVATURE_MIN:
            self._pairs.append((s, y, 1.0 / ys))
        self.x, self.loss, self.grad = self.x + s, loss, grad
        return True

    def _direction(self) -> torch.Tensor:
        return _two_loop(self._pairs, self.grad)


def _two_loop(pairs: Pairs, g: torch.Tensor) -> torch.Tensor:
    """-H g by the two-loop recursion, H the L-BFGS inverse-Hessian estimate of ``pairs``."""
    q = -g
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * float(s @ q)
        q = q - a * y
        alphas.append(a)
    if pairs:
        s, y, rho = pairs[-1]
        q = q / (rho * float(y @ y))  # H0 = s.y / y.y: the latest pair's scale
    for (s, y, rho), a in zip(pairs, reversed(alphas)):
        q = q + (a - rho * float(y @ q)) * s
    return q


class OWLQN:
    """Minimize ``evaluate(x)``, which includes ``sum(l1 * |x|)``, from ``x`` (flat float64).

    ``evaluate`` returns the whole objective (the L1 term included) and the gradient of
    its smooth part only; ``l1`` (x's shape, >= 0) weighs each coordinate's absolute
    value (0 for the intercepts). ``grad`` is the pseudo-gradient: the negative of the
    steepest descent direction of the whole objective, zero at its minimum. Each step
    stays in one orthant (coordinates keep their sign or become exactly 0), along a
    backtracking line search on the sufficient-decrease condition. One ``step()`` per
    iteration, as ``LBFGS``.
    """

    def __init__(self, x: torch.Tensor, evaluate: Evaluate, l1: torch.Tensor, *, lr: float = 1.0,
                 history_size: int = 20, max_evals: int = 25):
        self.evaluate, self.l1, self.lr, self.max_evals = evaluate, l1, lr, max_evals
        self.x = x.detach().clone()
        self.loss, self._smooth = evaluate(self.x)
        self._pairs: Pairs = deque(maxlen=history_size)

    @property
    def grad(self) -> torch.Tensor:
        """The pseudo-gradient at x: the gradient where |x_i| is differentiable; at a zero, the
        one-sided derivative that descends, or 0 where neither side does."""
        g, x, l1 = self._smooth, self.x, self.l1
        right, left = g + l1, g - l1  # the whole objective's derivatives to either side of 0
        at_zero = torch.where(right < 0, right, torch.where(left > 0, left, torch.zeros_like(g)))
        return torch.where(x > 0, right, torch.where(x < 0, left, at_zero))

    def step(self) -> bool:
        """One iteration: a direction in the pseudo-gradient's orthant, then a projected backtracking search.

        False when no step was taken.
        """
        v = self.grad
        d = _two_loop(self._pairs, v)
        d = torch.where(d * v < 0, d, torch.zeros_like(d))  # only the components that descend
        if not float(v @ d) < 0:
            return False
        orthant = torch.where(self.x != 0, torch.sign(self.x), -torch.sign(v))
        t = self.lr if self._pairs else self.lr * min(1.0, 1.0 / float(v.abs().sum()))
        for _ in range(self.max_evals):
            x = self.x + t * d
            x = torch.where(torch.sign(x) == orthant, x, torch.zeros_like(x))  # leaving the orthant: 0
            loss, smooth = self.evaluate(x)
            if loss <= self.loss + _C1 * float(v @ (x - self.x)):
                break
            t *= 0.5
        else:
            return False
        s, y = x - self.x, smooth - self._smooth
        ys = float(y @ s)
        if ys > _CURVATURE_MIN:
            self._pairs.append((s, y, 1.0 / ys))
        self.x, self.loss, self._smooth = x, loss, smooth
        return True


def _strong_wolfe(phi: Callable[[float], tuple[float, torch.Tensor]], t: float, d: torch.Tensor, f0: float,
                  slope0: float, max_evals: int) -> tuple[float, float, torch.Tensor]:
    """(t, f, g) at a step t along d meeting the strong Wolfe conditions, or the best point tried.

    Bracketing (algorithm 3.5), then zooming with safeguarded cubic interpolation
    (algorithm 3.6). Returns t = 0 when no evaluated point lowered the objective.
    """
    best = (0.0, f0, None)
    prev = (0.0, f0, slope0)  # (t, f, directional derivative) of the previous trial
    evals = 0
    while evals < max_evals:
        f, g = phi(t)
        evals += 1
        slope = float(g @ d)
        if f < best[1]:
            best = (t, f, g)
        if f > f0 + _C1 * t * slope0 or (evals > 1 and f >= prev[1]):
            return _zoom(phi, d, prev, (t, f, slope), f0, slope0, best, max_evals - evals)
        if abs(slope) <= -_C2 * slope0:
            return t, f, g
        if slope >= 0:
            return _zoom(phi, d, (t, f, slope), prev, f0, slope0, best, max_evals - evals)
        # Still descending: extrapolate, between 1.01 t and 10 t.
        t_next = _cubic_min(prev, (t, f, slope), lo=t + 0.01 * (t - prev[0]), hi=10.0 * t)
        prev, t = (t, f, slope), t_next
    return best if best[2] is not None else (0.0, f0, None)


def _zoom(phi, d, lo, hi, f0, slope0, best, evals_left):
    """Algorithm 3.6: shrink [lo, hi] (lo the lower objective) around a strong-Wolfe step."""
    while evals_left > 0:
        a, b = sorted((lo[0], hi[0]))
        width = b - a
        if width <= 1e-9 * max(1.0, b):
            break
        # The cubic's minimum, kept 10% inside the interval so it keeps shrinking.
        t = _cubic_min(lo, hi, lo=a + 0.1 * width, hi=b - 0.1 * width)
        f, g = phi(t)
        evals_left -= 1
        slope = float(g @ d)
        if f < best[1]:
            best = (t, f, g)
        if f > f0 + _C1 * t * slope0 or f >= lo[1]:
            hi = (t, f, slope)
        else:
            if abs(slope) <= -_C2 * slope0:
                return t, f, g
            if slope * (hi[0] - lo[0]) >= 0:
                hi = lo
            lo = (t, f, slope)
    return best if best[2] is not None else (0.0, f0, None)


def _cubic_min(p: tuple[float, float, float], q: tuple[float, float, float], *, lo: float, hi: float) -> float:
    """Minimizer of the cubic through two (t, f, f') points, clipped to [lo, hi]; the midpoint if it has none."""
    (t1, f1, g1), (t2, f2, g2) = p, q
    d1 = g1 + g2 - 3.0 * (f1 - f2) / (t1 - t2)
    disc = d1 * d1 - g1 * g2
    if disc >= 0 and t1 != t2:
        d2 = math.copysign(math.sqrt(disc), t2 - t1)
        denom = g2 - g1 + 2.0 * d2
        if denom != 0:
            t = t2 - (t2 - t1) * (g2 + d2 - d1) / denom
            if math.isfinite(t):
                return min(max(t, lo), hi)
    return 0.5 * (lo + hi)


def sgd_step(params: list[torch.Tensor], grads: list[torch.Tensor], lr: float) -> None:
    """p <- p - lr * g, in place."""
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(g, alpha=lr)


class Adam:
    """Adam (Kingma & Ba) with torch.optim.Adam's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.steps = 0
        self._m = [torch.zeros_like(p) for p in params]  # first moments
        self._v = [torch.zeros_like(p) for p in params]  # second moments

    def step(self, grads: list[torch.Tensor]) -> None:
        b1, b2 = self.betas
        self.steps += 1
        correction1, correction2 = 1.0 - b1 ** self.steps, 1.0 - b2 ** self.steps
        with torch.no_grad():
            for p, g, m, v in zip(self.params, grads, self._m, self._v):
                m.lerp_(g, 1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                denom = (v.sqrt() / math.sqrt(correction2)).add_(self.eps)
                p.addcdiv_(m, denom, value=-self.lr / correction1)
