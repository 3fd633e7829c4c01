"""The statistics pass over numeric rows (edgelr.rows.plain_stats) and the binary loss terms of
edgelr.train, each against an independent float64 reference."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgelr.cli import main
from edgelr.rows import plain_stats
from edgelr.train import _binary_terms


def reference(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, sum of squared deviations, min, max) per column, in float64 by numpy alone."""
    A = A.astype(np.float64)
    mean = A.mean(axis=0)
    return mean, ((A - mean) ** 2).sum(axis=0), A.min(axis=0), A.max(axis=0)


SHAPES = [(rows, width) for rows in (1, 63, 64, 65, 127, 128, 5_000) for width in (1, 3, 100)]


@pytest.mark.parametrize(("rows", "width", "layout"),
                         [(r, w, layout) for r, w in SHAPES for layout in ("C", "F", "columns", "index")]
                         + [(2**19 + 17, 1, "C")])  # a chunk of 2**19 rows and 17 left over
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_match_a_float64_reference(rows, width, dtype, layout):
    """Any row count around the pass's side-by-side lines, C or Fortran order, a column slice, a gather."""
    rng = np.random.default_rng(rows + width)
    # A large mean over a small spread: centring on the pilot is what keeps the float32 digits.
    A = (1_000.0 + rng.normal(0.0, 0.01, (rows, width + 2))).astype(dtype)
    index = None
    if layout == "F":
        A = np.asfortranarray(A)
    if layout == "index":
        index = np.sort(rng.choice(rows, max(1, rows * 2 // 3), replace=False))
    X = A[:, 1 : width + 1] if layout == "columns" else A[:, :width]
    out = torch.empty((X.shape[0] if index is None else index.size, width), dtype=torch.float32)
    stats, pilot = plain_stats(X, index, out=out, workers=2)
    selected = X if index is None else X[index]
    mean, m2, low, high = reference(selected)
    np.testing.assert_allclose(stats.moments.mean, mean, rtol=1e-12, atol=0)
    # float32 deviations of ~0.01 summed in float32 lines of ~64: ~1e-6 of the spread's square
    np.testing.assert_allclose(stats.moments.m2, m2, rtol=1e-5 if dtype == np.float32 else 1e-9, atol=1e-30)
    np.testing.assert_array_equal(stats.low, low)
    np.testing.assert_array_equal(stats.high, high)
    np.testing.assert_allclose(out.numpy(), (selected - pilot).astype(np.float32), rtol=1e-6, atol=1e-9)


def test_a_nan_reaches_every_statistic_of_its_column():
    X = np.ones((5_000, 3), dtype=np.float32)
    X[4_321, 1] = np.nan
    stats, _ = plain_stats(X, workers=2)
    assert np.isnan([stats.low[1], stats.high[1], stats.moments.mean[1]]).all()
    assert np.isfinite([stats.low[0], stats.high[2], stats.moments.mean[2]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_infinities_outside_the_pilot_rows_give_an_error_and_no_warning(dtype):
    """Rows 7 and 8 are not among the ~1,000 pilot rows of 5,000: the sums themselves meet inf - inf."""
    X = np.random.default_rng(3).normal(size=(5_000, 3)).astype(dtype)
    X[7, 1], X[8, 1] = np.inf, -np.inf
    y = np.arange(5_000) % 2
    from edgelr import LogisticRegression
    from edgelr.errors import DataError

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="row 7, column 1 is inf"):
            LogisticRegression().fit(X, y)


@pytest.mark.parametrize(("split", "message"), [
    # in the training rows: their variance overflows (the standardized copy overflowed float32 first)
    (["--val-fraction", "0"], "huge.csv: feature column 0: values too large to standardize"),
    # in the validation rows, which the encoding was not fitted on: it used to train and score an inf
    ([], "huge.csv: data row 1235, feature column 0: the value standardizes to 4.98e+299, past float32"),
])
def test_a_huge_value_in_a_csv_is_one_error_line(tmp_path, split, message):
    """No numpy warning before the Error, and no model trained on rows that overflowed."""
    rows = [f"{i % 7},{(i * 13) % 5},{i % 2}" for i in range(3_000)]
    rows[1_234] = "1e300,2,1"
    path = tmp_path / "huge.csv"
    path.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = CliRunner().invoke(main, ["train", str(path), *split, "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and message in result.output, result.output
    assert result.output.count("\n") == 1
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("z", [0.0, 1.5, -1.5, 20.0, -20.0, 36.0, -36.0, 37.0, -37.0, 1e3, -1e3])
def test_binary_terms_equal_a_hand_computation(z):
    """The loss -log p(true class) and its derivative p - y, from math.exp and math.log1p, for both classes."""
    zs = torch.full((2,), z, dtype=torch.float64)
    y = torch.tensor([0, 1])
    losses, G = _binary_terms(zs, y, grad=True)
    # class 0: -log(1 - p) = log(1 + e^z); class 1: -log p = log(1 + e^-z); stably for any sign
    loss = [max(t, 0.0) + math.log1p(math.exp(-abs(t))) for t in (z, -z)]
    # p - y: p = 1 / (1 + e^-z) for class 0; p - 1 = -1 / (1 + e^z) for class 1 (no cancellation)
    grad = [1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0, -1.0 / (1.0 + math.exp(z)) if z < 700 else -0.0]
    torch.testing.assert_close(losses, torch.tensor(loss, dtype=torch.float64), rtol=4e-16, atol=0)
    torch.testing.assert_close(G[:, 0], torch.tensor(grad, dtype=torch.float64), rtol=4e-16, atol=0)
    # autograd through the loss (sgd and adam) gives the same derivative
    zg = zs.clone().requires_grad_(True)
    _binary_terms(zg, y, grad=False)[0].sum().backward()
    torch.testing.assert_close(zg.grad, G[:, 0], rtol=1e-15, atol=0)


@pytest.mark.parametrize("impute", [None, "mean"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weighted_statistics_of_a_row_subset(impute, dtype):
    """Rows ``index`` (a validation split or a fold leaves the others out), weights aligned with them:
    numpy's weighted average of those rows; a column constant where the weight is, whatever rows of
    weight 0 hold, is constant (scale 1)."""
    from edgelr.encoding import EncodingSpec, Layout
    from edgelr.rows import encode_in_memory

    rng = np.random.default_rng(5)
    X = rng.normal(3.0, 2.0, size=(5_000, 3))
    index = np.sort(rng.choice(5_000, 3_500, replace=False))
    w = rng.uniform(0.0, 3.0, size=index.size)
    w[::7] = 0.0
    X[index[w > 0], 2] = 0.1  # constant where the weight is ...
    X[index[w == 0], 2] = 7.3  # ... and something else in the rows of weight 0
    if impute:
        X[index[10], 0] = np.nan
    X = X.astype(dtype)
    layout = Layout.numeric(["a", "b", "c"])
    y = (np.arange(index.size) % 2).astype(np.int64)
    _, encoding = encode_in_memory(X, layout, EncodingSpec(impute=impute), y, None, torch.device("cpu"),
                                   index=index, row_weight=w)
    rows = X[index].astype(np.float64)
    present = ~np.isnan(rows[:, 0])
    mean0 = np.average(rows[present, 0], weights=w[present])
    filled = np.where(present, rows[:, 0], mean0)
    tol = 1e-9 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(encoding.mean[:2], [mean0, np.average(rows[:, 1], weights=w)], rtol=tol)
    spread = [np.sqrt(np.average((filled - mean0) ** 2, weights=w)),
              np.sqrt(np.average((rows[:, 1] - np.average(rows[:, 1], weights=w)) ** 2, weights=w))]
    np.testing.assert_allclose(encoding.scale[:2], spread, rtol=tol)
    assert encoding.mean[2] == pytest.approx(rows[w > 0, 2][0], rel=1e-12)  # 0.1 in X's type
    assert encoding.scale[2] == 1.0
