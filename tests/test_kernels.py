"""The compiled passes (edgelr/_kernels.c) against float64 numpy, and the fit with them against the fit without.

The references are computed here from the definitions (softplus, sigmoid, moments) in
float64, not by the code under test.
"""

from __future__ import annotations

import shutil
import sysconfig

import numpy as np
import pytest

from edgelr import kernels
from edgelr.estimator import LogisticRegression

needs_kernels = pytest.mark.skipif(not kernels.available(),
                                   reason="edgelr._kernels was not built (no C compiler at install)")


def test_the_compiled_passes_are_built_where_a_compiler_is():
    """The install builds them where it can: a build that failed unnoticed would only show as a slower fit."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}) here: the install leaves the compiled passes out")
    assert kernels.available()


def _binary_reference(X, w, b, y, weight):
    z = X.astype(np.float64) @ w.astype(np.float64) + b
    t = np.where(y == 1, -z, z)
    losses = np.logaddexp(0.0, t)
    with np.errstate(over="ignore"):  # exp(-t) past float64 for a saturated row: its g is then 0, as it should be
        g = np.where(y == 1, -1.0, 1.0) / (1.0 + np.exp(-t))  # dloss/dz = p - y
    if weight is not None:
        losses, g = losses * weight, g * weight
    return losses.sum(), g @ X.astype(np.float64), g.sum()


@needs_kernels
@pytest.mark.parametrize("d", [1, 7, 13, 100])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("step", [1, 3])
def test_binary_sums_equal_float64_definitions(d, weighted, step):
    """Odd widths (a vector's remainder), row counts past a chunk and not a multiple of four, every k-th
    row of an array, weights, and logits far into saturation (|z| up to ~900: exp underflows)."""
    rng = np.random.default_rng(d + 10 * step)
    m = 1_037
    base = rng.normal(size=(m * step, d)).astype(np.float32)
    base[::50] *= 300.0  # saturated rows
    X = base[::step]
    w = rng.normal(size=d).astype(np.float32)
    y = rng.integers(0, 2, size=m).astype(np.int64)
    weight = rng.uniform(0.0, 3.0, size=m) if weighted else None
    loss, grad, gsum = _binary_reference(X, w, 0.3, y, weight)
    out = kernels.binary_sums(X, w, 0.3, y, weight, grad=True)
    np.testing.assert_allclose(out[0], loss, rtol=1e-6)
    np.testing.assert_allclose(out[1:-1], grad, rtol=1e-4, atol=1e-4 * np.abs(grad).max())
    np.testing.assert_allclose(out[-1], gsum, rtol=1e-6, atol=1e-6)
    loss_only = kernels.binary_sums(X, w, 0.3, y, weight, grad=False)
    assert loss_only[0] == out[0] and not loss_only[1:-1].any()


@needs_kernels
def test_binary_sums_refuse_what_they_cannot_read():
    """A float64 array or a column-ordered one is declined (the caller then runs its numpy/torch pass), and the
    raw module raises rather than reading wrong memory."""
    X = np.ones((8, 3), dtype=np.float32)
    w, y = np.ones(3, dtype=np.float32), np.zeros(8, dtype=np.int64)
    assert kernels.binary_sums(np.asfortranarray(X), w, 0.0, y, None, True) is None
    assert kernels.binary_sums(X, w, 0.0, y.astype(np.int32), None, True) is None
    assert kernels.moment_sums(X.astype(np.float64), w) is None
    with pytest.raises(TypeError, match="X: expected a 2-D array of kind 'f'"):
        kernels._kernels.binary_sums(X.astype(np.float64), w, 0.0, y, None, np.empty(5), True)
    with pytest.raises(ValueError, match="binary_sums"):
        kernels._kernels.binary_sums(X, w, 0.0, y[:5], None, np.empty(5), True)


@needs_kernels
@pytest.mark.parametrize("d", [1, 9, 100])
@pytest.mark.parametrize("step", [1, 2])
def test_moment_sums_equal_float64_definitions(d, step):
    rng = np.random.default_rng(d)
    m = 523  # not a multiple of the four rows or of the 64 summed in float32
    X = (rng.normal(size=(m * step, d)) * rng.uniform(0.1, 100.0, size=d) + 1000.0).astype(np.float32)[::step]
    shift = X[:10].mean(axis=0).astype(np.float32)
    out = kernels.moment_sums(X, shift)
    dev = X.astype(np.float64) - shift.astype(np.float64)
    np.testing.assert_allclose(out[0], dev.sum(axis=0), rtol=1e-5, atol=1e-5 * np.abs(dev).sum(axis=0).max())
    np.testing.assert_allclose(out[1], np.square(dev).sum(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(out[2], X.min(axis=0))
    np.testing.assert_array_equal(out[3], X.max(axis=0))


@needs_kernels
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("row", [0, 37, 98, 99])
def test_moment_sums_of_a_column_with_a_non_finite_value_are_not_finite(bad, row):
    X = np.ones((101, 4), dtype=np.float32)
    X[row, 2] = bad
    out = kernels.moment_sums(X, np.zeros(4, dtype=np.float32))
    assert not np.isfinite(out[:2, 2]).all() and np.isfinite(out[:, [0, 1, 3]]).all()
    if np.isnan(bad):  # as numpy's minimum and maximum, whichever of the four rows at a time it is in
        assert np.isnan(out[:, 2]).all()
    else:
        assert out[2 if bad < 0 else 3, 2] == bad


@needs_kernels
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("offset", [3.0, 300.0])
def test_a_fit_with_the_compiled_passes_equals_one_without(monkeypatch, weighted, offset):
    """On rows enough for float32 products (the kernels' case), with the warm start's every-k-th-row views;
    means up to ``offset`` spreads from 0 (at 300 the blocks are centred first: ``Affine.folding``)."""
    rng = np.random.default_rng(3)
    n, d = 60_000, 80
    scale = rng.uniform(0.5, 20.0, size=d)
    X = (rng.normal(size=(n, d)) * scale + rng.uniform(-offset, offset, size=d) * scale).astype(np.float32)
    y = ((X - X.mean(axis=0)) / scale @ rng.normal(size=d) / 5.0 + rng.logistic(size=n) > 0).astype(np.int64)
    weight = rng.uniform(0.5, 2.0, size=n) if weighted else None
    fast = LogisticRegression(device="cpu").fit(X, y, sample_weight=weight)
    monkeypatch.setattr(kernels, "_kernels", None)
    plain = LogisticRegression(device="cpu").fit(X, y, sample_weight=weight)
    # Both stop once max |gradient| <= 1e-6 (the default tol), each with its own float32 rounding: the
    # objectives then agree to ~1e-9 relative, and the probabilities to ~2e-5 (a gradient of 1e-6 along
    # the flattest direction of the objective leaves that much room), not to the bit.
    assert abs(fast.history_[-1]["loss"] - plain.history_[-1]["loss"]) <= 1e-8 * plain.history_[-1]["loss"]
    np.testing.assert_allclose(fast.predict_proba(X), plain.predict_proba(X), atol=1e-4)
    if not weighted:  # and both are scikit-learn's model (standardized features, the same C), solved tightly
        from sklearn.linear_model import LogisticRegression as Reference
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        reference = make_pipeline(StandardScaler(), Reference(C=1.0, tol=1e-10, max_iter=10_000))
        expected = reference.fit(X.astype(np.float64), y).predict_proba(X.astype(np.float64))
        np.testing.assert_allclose(fast.predict_proba(X), expected, atol=1e-4)


@needs_kernels
def test_one_column_taken_with_a_step_is_read_as_any_other():
    """A single column's stride is never used: ``A[:, ::9]`` is summed, not refused."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(700, 9)).astype(np.float32)
    X, y = A[:, ::9], (A[:, 0] > 0).astype(np.int64)
    w = np.array([0.7], dtype=np.float32)
    loss, grad, _ = _binary_reference(X, w, -0.2, y, None)
    out = kernels.binary_sums(X, w, -0.2, y, None, grad=True)
    np.testing.assert_allclose(out[:2], [loss, grad[0]], rtol=1e-5)
    moments = kernels.moment_sums(X, np.zeros(1, dtype=np.float32))
    np.testing.assert_allclose(moments[0], X.sum(axis=0, dtype=np.float64), rtol=1e-5)


@needs_kernels
@pytest.mark.parametrize("margin", [20.0, 40.0, 80.0])
def test_far_saturated_rows_keep_their_tiny_losses(margin):
    """log(1 + e) for e = exp(-margin): at 40 and 80 it is below a double's rounding of 1 + e, and still counts."""
    m = 1_000
    X = np.ones((m, 1), dtype=np.float32)
    y = np.zeros(m, dtype=np.int64)  # class 0, z = -margin: t = -margin, the loss softplus(-margin) a row
    out = kernels.binary_sums(X, np.array([-margin], dtype=np.float32), 0.0, y, None, grad=False)
    np.testing.assert_allclose(out[0], m * np.logaddexp(0.0, -margin), rtol=1e-6)


@needs_kernels
def test_a_nan_logit_gives_a_nan_loss():
    """A diverged fit's parameters: the loss must say so (edgelr.train raises on it)."""
    X = np.ones((10, 2), dtype=np.float32)
    out = kernels.binary_sums(X, np.array([np.nan, 1.0], dtype=np.float32), 0.0, np.zeros(10, dtype=np.int64), None,
                              grad=True)
    assert np.isnan(out[0]) and np.isnan(out[1:]).all()
