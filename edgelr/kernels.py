"""The compiled passes of a fit (edgelr/_kernels.c), where the install could build them.

``setup.py`` builds ``edgelr._kernels`` where a C compiler is, and leaves it out where
none is: each function here then returns None and its caller runs its numpy/torch pass,
which computes the same sums to float rounding. Both read each row once (a block's
forward product, the loss and the gradient's product while the row is in the CPU's
cache; the moments and ranges in one sweep), where the numpy/torch passes sweep a block
several times: on 1M x 100 float32, a gradient pass ~50 -> 20-35 ms, the moments' pass
~75 -> 17-30 ms (two threads; the 1M x 100 first fit 0.44x -> 0.27-0.31x scikit-learn's).
"""

from __future__ import annotations

import numpy as np

try:
    from edgelr import _kernels
except ImportError:  # installed without a C compiler
    _kernels = None


def available() -> bool:
    return _kernels is not None


def binary_sums(X: np.ndarray, w: np.ndarray, b: float, y: np.ndarray, weight: np.ndarray | None,
                grad: bool) -> np.ndarray | None:
    """[sum of losses, sum of g x (d,), sum of g] (d + 2,) float64 of a binary model over rows X, or None.

    X (m, d) float32 with contiguous rows (any row stride), w (d,) float32, b the float64
    bias, y (m,) int64 labels 0/1, weight (m,) float64 or None; g is dloss/dz per row
    (times its weight). Without ``grad`` only the first entry is filled (the rest zero);
    the sum of g is filled either way. None also for arrays of other kinds, or an X whose
    rows are not contiguous: the caller's own pass takes them.
    """
    kinds = (X.dtype, w.dtype, y.dtype, np.float64 if weight is None else weight.dtype)
    if _kernels is None or not _rows_contiguous(X) or kinds != (np.float32, np.float32, np.int64, np.float64):
        return None
    out = np.empty(X.shape[1] + 2)
    _kernels.binary_sums(X, w, b, y, weight, out, grad)
    return out


def moment_sums(X: np.ndarray, shift: np.ndarray) -> np.ndarray | None:
    """[sum of X - shift, sum of (X - shift)^2, min of X, max of X] (4, d) float64 over X's rows, or None.

    X (m, d) float32 with contiguous rows, shift (d,) float32. A NaN makes all four of
    its column's NaN, as numpy's sums and extremes do.
    """
    if _kernels is None or not _rows_contiguous(X) or (X.dtype, shift.dtype) != (np.float32, np.float32):
        return None
    out = np.empty((4, X.shape[1]))
    _kernels.moment_sums(X, shift, out)
    return out


def _rows_contiguous(X: np.ndarray) -> bool:
    """Whether each row's values are adjacent (a C-ordered array or every k-th row of one), as the kernels read them."""
    return X.ndim == 2 and (X.shape[1] <= 1 or X.strides[1] == X.itemsize) and X.strides[0] % X.itemsize == 0
    # (one column: its stride is never used, and the kernels take any)
