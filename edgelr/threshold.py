"""The binary decision threshold (``edgelr train --threshold``): a number, or a rule chosen on held-out rows.

A binary model labels a row positive when p > threshold, p its positive-class
probability; the exported graph applies the threshold (spec section 3). The rules look
at the validation rows' probabilities sorted from high to low: labelling the rows with
the k highest distinct scores positive is a *cut*, and every threshold between the
k-th and the (k+1)-th distinct score, [s_(k+1), s_k), gives that cut. scikit-learn's
``precision_recall_curve`` lists the same cuts by their lowest positive score s_k
(it labels score >= s_k positive).

- ``precision:P``: the cut with the most positives whose precision is >= P (the
  smallest of scikit-learn's thresholds with precision >= P);
- ``recall:R``: the cut with the fewest positives whose recall is >= R (the largest
  of scikit-learn's thresholds with recall >= R);
- ``max-f1``: the cut of highest F1 (the fewest positives among ties).

The threshold returned is the middle of the cut's interval, (s_(k+1) + s_k) / 2 (half
of s_k when the cut takes every row): every threshold in it labels the validation rows
alike, and a row's probability rounded to float32 on the device does not cross it.
numpy only, so it can be tested and used without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgelr.errors import ConfigError

RULES = ("max-f1", "precision", "recall")
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ThresholdRule:
    """What ``--threshold`` asks for: a fixed probability, or a rule applied to held-out rows."""

    kind: str  # "value", "max-f1", "precision" or "recall"
    target: float | None = None  # the probability ("value") or the precision / recall to reach

    @property
    def needs_rows(self) -> bool:
        """Whether the threshold is chosen on held-out rows (every kind but a plain value)."""
        return self.kind != "value"

    def __str__(self) -> str:
        if self.kind == "value":
            return f"{self.target:g}"
        return self.kind if self.target is None else f"{self.kind}:{self.target:g}"


def parse_threshold(text: str) -> ThresholdRule:
    """``"0.3"``, ``"max-f1"``, ``"precision:0.9"`` or ``"recall:0.98"`` as a ThresholdRule.

    Raises ConfigError saying what was expected; a probability must lie in (0, 1) and a
    precision or recall target in (0, 1].
    """
    spec = text.strip().lower()
    expected = "expected a probability in (0, 1), max-f1, precision:P or recall:R (P, R in (0, 1])"
    if spec == "max-f1":
        return ThresholdRule("max-f1")
    kind, sep, value = spec.partition(":")
    if sep and kind in ("precision", "recall"):
        target = _number(value, f"'{text}': {value!r} is not a number; {expected}")
        if not 0.0 < target <= 1.0:
            raise ConfigError(f"'{text}': a {kind} target must be in (0, 1], got {target:g}")
        return ThresholdRule(kind, target)
    if sep:
        raise ConfigError(f"'{text}' is not a threshold rule; {expected}")
    target = _number(spec, f"'{text}' is not a threshold; {expected}")
    if not 0.0 < target < 1.0:
        raise ConfigError(f"threshold {target:g} is not a probability strictly between 0 and 1; {expected}")
    return ThresholdRule("value", target)


def _number(text: str, message: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(message) from None
    if not math.isfinite(value):
        raise ConfigError(message)
    return value


def choose_threshold(rule: ThresholdRule, y: np.ndarray, p: np.ndarray, *, where: str = "the validation rows") -> float:
    """The threshold ``rule`` picks on held-out rows, in (0, 1).

    y : ndarray of shape (n_rows,), 1 for the positive class, 0 otherwise
    p : ndarray of shape (n_rows,), the positive class's probability
    ``where`` names the rows in messages. Raises ConfigError when there are no rows, no
    positive row (precision and recall are undefined), or the target cannot be reached.
    """
    if rule.kind == "value":
        return float(rule.target)
    y = np.asarray(y) == 1
    p = np.asarray(p, dtype=np.float64)
    if y.size == 0:
        raise ConfigError(f"--threshold {rule} is chosen on {where}, and there are none; expected a "
                          "--val-fraction above 0 (or a threshold given as a number)")
    if not y.any():
        raise ConfigError(f"--threshold {rule}: {where} hold no row of the positive class, so precision and "
                          f"recall are undefined there; expected held-out rows of both classes")
    scores, precision, recall = cuts(y, p)
    if rule.kind == "precision":
        ok = np.flatnonzero(precision >= rule.target)
        if not ok.size:
            raise ConfigError(f"--threshold {rule}: no threshold reaches precision {rule.target:g} on {where} "
                              f"(the highest is {precision.max():.4f}); expected a lower target")
        k = int(ok[-1])  # the cut with the most positives
    elif rule.kind == "recall":
        k = int(np.flatnonzero(recall >= rule.target)[0])  # recall reaches 1 at the last cut: always found
    else:
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                       where=precision + recall > 0)
        k = int(np.argmax(f1))  # the first maximum: the fewest positives among ties
    return _middle(scores, k)


def cuts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct scores s, precision, recall), each of shape (n_distinct,), s from high to low.

    Entry k is the cut that labels the rows with p >= s[k] positive (y: bool, some true).
    """
    order = np.argsort(p, kind="mergesort")[::-1]
    p, y = p[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(p)), p.size - 1]  # tied scores fall on the same side
    tp = np.cumsum(y)[last_of_run].astype(np.float64)
    predicted = (last_of_run + 1).astype(np.float64)
    return p[last_of_run], tp / predicted, tp / tp[-1]


def _middle(scores: np.ndarray, k: int) -> float:
    """A threshold in [scores[k + 1], scores[k]) (in (0, scores[k]) for the last cut), strictly inside (0, 1)."""
    upper = scores[k]
    lower = scores[k + 1] if k + 1 < scores.size else 0.0
    t = 0.5 * (lower + upper)
    # Neither end may be reached: 0 and 1 are no thresholds, and t == s_k would drop the cut's lowest rows.
    t = min(max(t, np.nextafter(lower, 1.0)), np.nextafter(upper, 0.0), np.nextafter(1.0, 0.0))
    return float(max(t, np.nextafter(0.0, 1.0)))
