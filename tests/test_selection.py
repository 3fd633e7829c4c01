"""``edgelr train --C a,b,... --cv K`` (edgelr.selection), against scikit-learn's cross-validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from edgelr.cli import main
from edgelr.data import read_csv, stratified_split
from edgelr.encoding import Layout
from edgelr.estimator import LogisticRegression
from edgelr.selection import cross_validate_C, stratified_folds
from tests.conftest import write_csv

CS = [0.01, 0.1, 0.5, 2.0, 10.0]  # five candidates; the best on breast cancer is inside the range


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture(scope="module")
def cancer_csv(tmp_path_factory):
    data = load_breast_cancer()
    header = [n.replace(" ", "_") for n in data.feature_names] + ["malignant"]
    rows = [[*map(repr, x), int(t)] for x, t in zip(data.data.tolist(), data.target)]
    return write_csv(tmp_path_factory.mktemp("cancer") / "cancer.csv", header, rows)


@pytest.mark.parametrize("labels, n_folds", [
    ([0] * 37 + [1] * 23, 5),
    (list(np.random.default_rng(0).integers(0, 2, 97)), 5),
    (list(np.random.default_rng(1).integers(0, 3, 131)), 4),
    ([2, 2, 0, 1, 0, 2, 1, 1, 0, 2, 1, 0, 2, 2, 1], 3),  # classes first appear out of order
])
def test_folds_are_scikit_learns_stratified_k_fold(labels, n_folds):
    y = np.asarray(labels)
    expected = np.empty(y.size, dtype=np.int64)
    for fold, (_, test) in enumerate(StratifiedKFold(n_folds).split(np.zeros((y.size, 1)), y)):
        expected[test] = fold
    np.testing.assert_array_equal(stratified_folds(y, n_folds), expected)


@pytest.fixture(scope="module")
def sklearn_search(cancer_csv):
    """scikit-learn on the CLI's training rows (its validation split taken out), folds unshuffled."""
    data = read_csv(cancer_csv)
    train_rows, _ = stratified_split(data.y, 0.2, 0)
    search = GridSearchCV(make_pipeline(StandardScaler(), SkLogisticRegression(tol=1e-12, max_iter=100_000)),
                          {"logisticregression__C": CS}, cv=StratifiedKFold(5), scoring="neg_log_loss")
    return search.fit(data.X[train_rows], data.y[train_rows])


def test_cv_chooses_scikit_learns_C_and_saves_a_plain_fit(tmp_path, cancer_csv, sklearn_search):
    result = run("train", str(cancer_csv), "--C", ",".join(map(str, CS)), "--cv", "5", "--json",
                 "-o", str(tmp_path / "cv.pt"))
    assert result.exit_code == 0, result.output
    cv = json.loads(result.stdout)["cv"]
    assert [s["C"] for s in cv["scores"]] == CS  # every candidate, in the order given
    assert cv["C"] == sklearn_search.best_params_["logisticregression__C"]
    np.testing.assert_allclose([s["log_loss"] for s in cv["scores"]],
                               -sklearn_search.cv_results_["mean_test_score"], rtol=1e-4)

    plain = run("train", str(cancer_csv), "--C", str(cv["C"]), "-o", str(tmp_path / "plain.pt"))
    assert plain.exit_code == 0, plain.output
    chosen, refit = LogisticRegression.load(tmp_path / "cv.pt"), LogisticRegression.load(tmp_path / "plain.pt")
    np.testing.assert_allclose(chosen.coef_, refit.coef_, atol=1e-6)
    np.testing.assert_allclose(chosen.intercept_, refit.intercept_, atol=1e-6)
    assert chosen.C == cv["C"]
    info = run("info", str(tmp_path / "cv.pt")).output
    assert f"C chosen    {cv['C']:g} by 5-fold cross-validation" in info


def test_the_warm_path_reaches_the_optimum_in_far_fewer_iterations(cancer_csv, sklearn_search):
    data = read_csv(cancer_csv)
    train_rows, _ = stratified_split(data.y, 0.2, 0)
    estimator = LogisticRegression(device="cpu")
    args = (estimator, data.X, Layout.of(data), data.y, data.classes, train_rows, CS, 5)
    warm = cross_validate_C(*args, device=torch.device("cpu"))
    cold = cross_validate_C(*args, device=torch.device("cpu"), warm_start=False)
    assert warm.C == cold.C
    # every fold and C: scikit-learn's held-out log loss
    sklearn_folds = -np.array([sklearn_search.cv_results_[f"split{f}_test_score"] for f in range(5)])
    np.testing.assert_allclose(warm.fold_losses, sklearn_folds, rtol=1e-4)
    # Cold fits stop at tol 1e-6 on the gradient, which at C=10 on these nearly collinear columns still
    # leaves ~2e-4 of the held-out loss; the Newton steps of the warm path end closer to the optimum.
    np.testing.assert_allclose(cold.fold_losses, sklearn_folds, rtol=1e-3)
    assert warm.iterations * 4 < cold.iterations  # 5 cold fits per fold against one and Newton steps
    assert estimator.C == 1.0  # the search leaves the estimator's C alone


def test_multiclass_cv(tmp_path, multiclass_csv):
    result = run("train", str(multiclass_csv), "--C", "0.01,1,100", "--cv", "3", "--json", "-o", str(tmp_path / "m.pt"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["cv"]["scores"]) == 3 and "threshold" not in summary


@pytest.mark.parametrize("args, fragments", [
    (["--C", "0.1,1"], ["--C lists 2 values (0.1, 1) without --cv", "expected --cv K"]),
    (["--C", "1", "--cv", "5"], ["--cv 5 with the single C 1", "comma-separated list"]),
    (["--C", "0.1,1", "--cv", "3", "--penalty", "none"], ["--penalty none trains without one"]),
    (["--C", "0.1,-1", "--cv", "3"], ["--C -1: every C must be a finite number > 0"]),
    (["--C", "1,1", "--cv", "3"], ["lists a value twice"]),
])
def test_cv_option_errors(tmp_path, binary_csv, args, fragments):
    assert_error(run("train", str(binary_csv), *args, "-o", str(tmp_path / "m.pt")), *fragments)
    assert not (tmp_path / "m.pt").exists()


def test_too_few_rows_per_class_for_the_folds(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "y"], [[i, int(i < 3)] for i in range(20)])
    result = run("train", str(path), "--C", "0.1,1", "--cv", "5", "--val-fraction", "0", "-o", str(tmp_path / "m.pt"))
    assert_error(result, "--cv 5: the training rows hold 3 row(s) of class 1; expected at least 5 of each class")


@pytest.mark.parametrize("args", [["--C", "0.1,abc"], ["--C", "1", "--cv", "1"]])
def test_unparsable_C_and_cv_are_usage_errors(tmp_path, binary_csv, args):
    result = run("train", str(binary_csv), *args, "-o", str(tmp_path / "m.pt"))
    assert result.exit_code == 2, result.output
