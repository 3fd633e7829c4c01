"""``edgelr train --weight-column``: per-row sample weights from a CSV column, as scikit-learn's sample_weight."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.preprocessing import StandardScaler

from edgelr.checkpoint import encoding_of
from edgelr.cli import main


@pytest.fixture(scope="module")
def weighted_csv(tmp_path_factory):
    """Breast cancer with a weight column in the middle of the table: (path, X, y, weights)."""
    X, y = load_breast_cancer(return_X_y=True)
    w = np.random.default_rng(0).uniform(0.1, 3.0, y.size).round(3)
    frame = pd.DataFrame(X[:, :10], columns=[f"f{i}" for i in range(10)])
    frame.insert(5, "importance", w)
    frame["diagnosis"] = y
    path = tmp_path_factory.mktemp("weights") / "cancer.csv"
    frame.to_csv(path, index=False)
    return path, X[:, :10], y, w


def train(*args):
    result = CliRunner().invoke(main, ["train", *map(str, args)])
    return result


# In memory, and streamed from the disk cache (a budget below any file).
WHERE = pytest.mark.parametrize("where", [[], ["--memory-budget", "1B"]], ids=["in-memory", "streamed"])


def trained_where(result, where) -> None:
    """The run succeeded, and read its rows the way ``where`` says."""
    assert result.exit_code == 0, result.output
    assert ("streamed from a disk cache" in result.output) == bool(where), result.output


@WHERE
def test_weighted_training_lands_on_sklearns_weighted_optimum(weighted_csv, tmp_path, where):
    path, X, y, w = weighted_csv
    out = tmp_path / "m.pt"
    trained_where(train(path, "--weight-column", "importance", "--val-fraction", "0", "-o", out, *where), where)
    state = torch.load(out, weights_only=True)
    assert state["feature_names"] == [f"f{i}" for i in range(10)]  # the weights are not a feature
    # The standardization is weighted too: scikit-learn's StandardScaler given the same weights.
    scaled = StandardScaler().fit(X, sample_weight=w).transform(X)
    reference = SkLogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(scaled, y, sample_weight=w)
    np.testing.assert_allclose(state["weight"].double().numpy()[0], reference.coef_[0], atol=1e-3)
    assert float(state["bias"]) == pytest.approx(reference.intercept_[0], abs=1e-3)
    unweighted = SkLogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(scaled, y)
    assert np.abs(unweighted.coef_ - reference.coef_).max() > 0.05  # the weights matter in this case


def test_an_integer_weight_is_that_many_copies_of_the_row(tmp_path):
    # Unstandardized, a row of weight 3 and three copies of it give the same objective exactly.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + rng.normal(size=60) > 0).astype(int)
    k = rng.integers(1, 4, size=60)
    weighted = pd.DataFrame(X, columns=["a", "b", "c"]).assign(k=k, y=y)
    copies = weighted.loc[np.repeat(np.arange(60), k)].drop(columns="k")
    weighted.to_csv(tmp_path / "weighted.csv", index=False)
    copies.to_csv(tmp_path / "copies.csv", index=False)
    common = ["--no-standardize", "--val-fraction", "0", "--penalty", "none"]
    assert train(tmp_path / "weighted.csv", "--weight-column", "k", *common, "-o", tmp_path / "w.pt").exit_code == 0
    assert train(tmp_path / "copies.csv", *common, "-o", tmp_path / "c.pt").exit_code == 0
    w, c = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("w", "c"))
    torch.testing.assert_close(w["weight"], c["weight"], atol=1e-4, rtol=0)
    torch.testing.assert_close(w["bias"], c["bias"], atol=1e-4, rtol=0)


@WHERE
def test_weighted_rows_are_copies_for_the_encoding_too(tmp_path, where):
    """Standardized, a text column, a gap filled with the mean, weights from 0 to 3: the weighted
    file trains the model its copies train (a weight-0 row, and a category only it holds, vanish)."""
    rng = np.random.default_rng(2)
    n = 80
    X = rng.normal(10.0, 3.0, size=(n, 2))
    site = rng.choice(["north", "south", "east"], size=n)
    y = (X[:, 0] - 10 + (site == "north") + rng.normal(size=n) > 0).astype(int)
    k = rng.integers(0, 4, size=n)
    k[:4] = [1, 2, 0, 1]
    site[2] = "harbour"  # only in a row of weight 0
    X[3, 1] = np.nan
    weighted = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "site": site, "k": k, "y": y})
    copies = weighted.loc[np.repeat(np.arange(n), k)].drop(columns="k")
    weighted.to_csv(tmp_path / "weighted.csv", index=False)
    copies.to_csv(tmp_path / "copies.csv", index=False)
    common = ["--val-fraction", "0", "--impute", "mean"]
    trained_where(train(tmp_path / "weighted.csv", "--weight-column", "k", *common, "-o", tmp_path / "w.pt", *where),
                  where)
    assert train(tmp_path / "copies.csv", *common, "-o", tmp_path / "c.pt").exit_code == 0  # in memory
    w, c = (torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in ("w", "c"))
    ew, ec = encoding_of(w), encoding_of(c)
    assert ew.categories == ec.categories and "harbour" not in ew.categories[0]
    np.testing.assert_allclose(ew.mean, ec.mean, rtol=1e-9)
    np.testing.assert_allclose(ew.scale, ec.scale, rtol=1e-9)
    np.testing.assert_allclose(ew.fill, ec.fill, rtol=1e-9)
    torch.testing.assert_close(w["weight"], c["weight"], atol=1e-4, rtol=0)
    torch.testing.assert_close(w["bias"], c["bias"], atol=1e-4, rtol=0)


def test_class_weights_do_not_weigh_the_standardization():
    """'balanced' weighs the loss only: the mean and scale stay those of the rows (no sample_weight)."""
    from edgelr import LogisticRegression

    rng = np.random.default_rng(3)
    X = rng.normal(2.0, 1.5, size=(200, 2))
    y = (np.arange(200) < 30).astype(int)
    model = LogisticRegression(class_weight="balanced").fit(X, y)
    np.testing.assert_allclose(model.mean_, X.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(model.scale_, X.std(axis=0), rtol=1e-9)


def test_weights_with_cross_validation_report_every_candidate(weighted_csv, tmp_path):
    path, *_ = weighted_csv
    result = train(path, "--weight-column", "importance", "--C", "0.1,1", "--cv", "3", "-o", tmp_path / "m.pt",
                   "--json")
    assert result.exit_code == 0, result.output
    assert [s["C"] for s in json.loads(result.output)["cv"]["scores"]] == [0.1, 1.0]


@pytest.mark.parametrize(("cells", "message"), [
    ({2: "-1"}, "line 4, column 'w': weight -1; expected a finite number >= 0"),
    ({i: "heavy" for i in range(6)}, "column 'w': the weight column holds words; expected numbers >= 0"),
    ({0: "heavy"}, "line 2, column 'w': got 'heavy'"),
    ({i: "0" for i in range(6)}, "column 'w': every weight is 0"),
])
@WHERE
def test_bad_weights_are_named(tmp_path, cells, message, where):
    weights = ["1"] * 6
    for i, v in cells.items():
        weights[i] = v
    rows = "\n".join(f"{x},{w},{x > 3:d}" for x, w in zip(range(1, 7), weights))
    path = tmp_path / "bad.csv"
    path.write_text("x,w,y\n" + rows + "\n")
    result = train(path, "--weight-column", "w", "--val-fraction", "0", "-o", tmp_path / "m.pt", *where)
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "m.pt").exists()


@WHERE
def test_a_bad_weight_names_its_line_past_blank_and_quoted_lines(tmp_path, where):
    """The line of the file, not the data row's position: blank lines and a cell over two lines count."""
    path = tmp_path / "gaps.csv"
    path.write_text('x,w,y,note\n1,1,0,a\n\n2,1,0,"two\nlines"\n\n3,1,0,c\n4,-2,1,d\n5,1,1,e\n6,1,1,f\n')
    result = train(path, "--weight-column", "w", "--features", "x", "--label", "y", "--val-fraction", "0",
                   "-o", tmp_path / "m.pt", *where)
    assert result.exit_code == 1
    assert "gaps.csv, line 8, column 'w': weight -2" in result.output, result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--weight-column", "nope"], "weight column 'nope' not found"),
    (["--weight-column", "y", "--label", "y"], "is both the weight column and the label"),
    (["--weight-column", "w", "--features", "x,w"], "is both the weight column and a feature"),
])
@WHERE
def test_weight_column_mistakes_are_clear(tmp_path, args, message, where):
    path = tmp_path / "t.csv"
    path.write_text("x,w,y\n1,1,0\n2,1,0\n3,1,0\n4,1,1\n5,1,1\n6,1,1\n")
    result = train(path, *args, "--val-fraction", "0", "-o", tmp_path / "m.pt", *where)
    assert result.exit_code == 1
    assert message in result.output


def test_the_builtin_data_sets_have_no_weights(tmp_path):
    result = train("--weight-column", "w", "-o", tmp_path / "m.pt")
    assert result.exit_code == 1
    assert "the built-in data sets have no weights" in result.output


def test_streamed_weights_with_a_median_fill_train_the_in_memory_model(tmp_path):
    """With --impute median the encoding is of the rows unweighted, streamed as in memory; the loss is weighted."""
    rng = np.random.default_rng(4)
    n = 300
    X = rng.normal(5.0, 2.0, size=(n, 2))
    X[rng.choice(n, 20, replace=False), 1] = np.nan
    y = (X[:, 0] - 5 + rng.normal(size=n) > 0).astype(int)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "w": rng.uniform(0, 4, n).round(2), "y": y})
    frame.to_csv(tmp_path / "gaps.csv", index=False)
    common = ["--weight-column", "w", "--impute", "median", "--val-fraction", "0"]
    trained_where(train(tmp_path / "gaps.csv", *common, "-o", tmp_path / "mem.pt"), [])
    trained_where(train(tmp_path / "gaps.csv", *common, "-o", tmp_path / "str.pt", "--memory-budget", "1B"), ["x"])
    mem, streamed = (torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in ("mem", "str"))
    em, es = encoding_of(mem), encoding_of(streamed)
    np.testing.assert_allclose(es.fill, np.nanmedian(X, axis=0), rtol=1e-12)  # numpy's median, unweighted
    np.testing.assert_allclose(es.mean, em.mean, rtol=1e-12)
    np.testing.assert_allclose(es.scale, em.scale, rtol=1e-12)
    torch.testing.assert_close(streamed["weight"], mem["weight"], atol=1e-4, rtol=0)
    unweighted = train(tmp_path / "gaps.csv", *common[2:], "--features", "a,b", "-o", tmp_path / "u.pt",
                       "--memory-budget", "1B")
    assert unweighted.exit_code == 0, unweighted.output
    assert (torch.load(tmp_path / "u.pt", weights_only=True)["weight"] - streamed["weight"]).abs().max() > 1e-2
