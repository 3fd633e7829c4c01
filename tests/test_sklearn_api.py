"""edgelr.LogisticRegression as a scikit-learn estimator: its checks, model selection, weights, persistence.

scikit-learn is the independent reference throughout: its own estimator checks, and its
LogisticRegression run to a tight optimum on the same folds and weights.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator, check_sample_weight_equivalence_on_dense_data

import edgelr
from edgelr.errors import ConfigError, DataError
from edgelr.estimator import EXPECTED_FAILED_CHECKS

C_GRID = [0.01, 0.1, 1.0, 10.0]


def sklearn_lr(**kwargs) -> SkLogisticRegression:
    """scikit-learn run to a tight optimum, so differences are ours, not its early stop."""
    return SkLogisticRegression(tol=1e-10, max_iter=100_000, **kwargs)


def ours(**kwargs) -> edgelr.LogisticRegression:
    return edgelr.LogisticRegression(device="cpu", **kwargs)


@pytest.fixture(scope="module")
def cancer():
    return load_breast_cancer(return_X_y=True)


@pytest.fixture(scope="module")
def cancer_scaled(cancer):
    X, y = cancer
    return StandardScaler().fit_transform(X), y


def test_check_estimator_passes():
    """scikit-learn's own checks: none fails; the expected failures are few, each with its reason."""
    assert len(EXPECTED_FAILED_CHECKS) <= 3 and all(EXPECTED_FAILED_CHECKS.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checks' own warnings (SkipTestWarning: no array API here)
        results = check_estimator(edgelr.LogisticRegression(), expected_failed_checks=EXPECTED_FAILED_CHECKS,
                                  on_fail=None)
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]
    assert not failed, failed
    assert sum(r["status"] == "passed" for r in results) >= 60  # of 63 (the array-API one is skipped)
    # a declared failure that started passing should leave the list
    xfailed = {r["check_name"] for r in results if r["status"] == "xfail"}
    assert xfailed == set(EXPECTED_FAILED_CHECKS)


@pytest.mark.parametrize("standardize", [True, False])
def test_sample_weight_is_repetition(standardize):
    """scikit-learn's check: integer weights (0 included) are that many copies of each row, standardized too."""
    check_sample_weight_equivalence_on_dense_data("LogisticRegression", ours(standardize=standardize))


def test_weighted_standardization_is_of_the_repeated_rows():
    """The mean and scale with weights equal those of the rows repeated, by hand; zero-weight rows count not at all."""
    rng = np.random.default_rng(4)
    X = rng.normal(5.0, 2.0, size=(300, 3))
    y = (X[:, 0] + rng.normal(size=300) > 5).astype(int)
    k = rng.integers(0, 4, size=300)
    k[:2] = 1  # both classes keep rows
    repeated = np.repeat(X, k, axis=0)
    for data in (X, X.astype(np.float32), pd.DataFrame(X, columns=["a", "b", "c"])):
        model = ours().fit(data, y, sample_weight=k.astype(float))
        np.testing.assert_allclose(model.mean_, repeated.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(model.scale_, repeated.std(axis=0), rtol=1e-6)
    # a missing cell, filled with the weighted mean: the rows repeated again, by hand
    gappy = X.copy()
    gappy[5, 1] = np.nan
    model = ours(impute="mean").fit(gappy, y, sample_weight=k.astype(float))
    present = np.repeat(gappy[:, 1], k)[~np.isnan(np.repeat(gappy[:, 1], k))]
    filled = np.where(np.isnan(np.repeat(gappy[:, 1], k)), present.mean(), np.repeat(gappy[:, 1], k))
    np.testing.assert_allclose(model.mean_[1], filled.mean(), rtol=1e-9)
    np.testing.assert_allclose(model.scale_[1], filled.std(), rtol=1e-9)


def test_grid_search_over_C_chooses_sklearns_C(cancer):
    """GridSearchCV on breast cancer, unshuffled stratified 5-fold, log loss: same C, same scores."""
    X, y = cancer
    cv = StratifiedKFold(5)

    def search(model):
        grid = {"logisticregression__C": C_GRID}
        return GridSearchCV(make_pipeline(StandardScaler(), model), grid, cv=cv, scoring="neg_log_loss").fit(X, y)

    mine, theirs = search(ours(standardize=False)), search(sklearn_lr())
    assert mine.best_params_ == theirs.best_params_
    np.testing.assert_allclose(mine.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"],
                               rtol=1e-4)
    np.testing.assert_allclose(mine.predict_proba(X), theirs.predict_proba(X), atol=1e-4)


def test_cross_val_predict_probabilities_match_sklearn(cancer):
    X, y = cancer
    cv = StratifiedKFold(5)
    mine = cross_val_predict(make_pipeline(StandardScaler(), ours(standardize=False)), X, y, cv=cv,
                             method="predict_proba")
    theirs = cross_val_predict(make_pipeline(StandardScaler(), sklearn_lr()), X, y, cv=cv, method="predict_proba")
    assert mine.shape == (len(y), 2)
    np.testing.assert_allclose(mine, theirs, atol=1e-3)


def test_cross_val_score_is_accuracy(cancer):
    X, y = cancer
    scores = cross_val_score(ours(), X, y, cv=StratifiedKFold(5))
    theirs = cross_val_score(make_pipeline(StandardScaler(), sklearn_lr()), X, y, cv=StratifiedKFold(5))
    assert scores.shape == (5,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, theirs, atol=1 / 100)  # a row or so of 114 per fold


def _weights(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 3.0, size=n)


@pytest.mark.parametrize("class_weight", [None, "balanced", {0: 2.0, 1: 0.5}])
def test_sample_weight_lands_on_sklearns_weighted_optimum(cancer_scaled, class_weight):
    """Random positive weights, alone and times class weights as scikit-learn multiplies them."""
    X, y = cancer_scaled
    w = _weights(len(y))
    mine = ours(standardize=False, class_weight=class_weight).fit(X, y, sample_weight=w)
    theirs = sklearn_lr(class_weight=class_weight).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(mine.coef_, theirs.coef_, atol=1e-3)
    np.testing.assert_allclose(mine.intercept_, theirs.intercept_, atol=1e-3)
    unweighted = sklearn_lr(class_weight=class_weight).fit(X, y)
    assert np.abs(unweighted.coef_ - theirs.coef_).max() > 1e-2  # the weights did matter


def test_sample_weight_multiclass(cancer_scaled):
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    w = _weights(len(y), seed=1)
    mine = ours(standardize=False, C=0.5).fit(X, y, sample_weight=w)
    theirs = sklearn_lr(C=0.5).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(mine.predict_proba(X), theirs.predict_proba(X), atol=1e-4)
    # a softmax's coefficients are defined up to a shift common to all classes; scikit-learn's sum to zero too
    np.testing.assert_allclose(mine.coef_ - mine.coef_.mean(axis=0), theirs.coef_, atol=1e-3)


def test_class_weight_dict_equals_weighting_rows(cancer_scaled):
    X, y = cancer_scaled
    by_class = ours(standardize=False, class_weight={0: 3.0, 1: 1.0}).fit(X, y)
    by_row = ours(standardize=False).fit(X, y, sample_weight=np.where(y == 0, 3.0, 1.0))
    np.testing.assert_allclose(by_class.coef_, by_row.coef_, atol=1e-6)


def test_round_trips_predict_the_same(cancer, tmp_path):
    """clone, pickle and joblib: the same predictions, to the bit."""
    X, y = cancer
    fitted = ours(C=0.3).fit(X, y)
    expected = fitted.predict_proba(X)
    refit = clone(fitted)
    assert not hasattr(refit, "coef_") and refit.get_params() == fitted.get_params()
    np.testing.assert_array_equal(refit.fit(X, y).predict_proba(X), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict_proba(X), expected)
    joblib.dump(fitted, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict_proba(X), expected)


def test_params_deep_and_set_params():
    pipe = make_pipeline(StandardScaler(), ours(standardize=False))
    params = pipe.get_params(deep=True)
    assert params["logisticregression__C"] == 1.0 and params["logisticregression__standardize"] is False
    pipe.set_params(logisticregression__C=0.25, logisticregression__class_weight="balanced")
    assert pipe[-1].C == 0.25 and pipe[-1].class_weight == "balanced"
    assert "C=0.25" in repr(pipe[-1])


def test_score_is_accuracy_and_metrics_keeps_the_rest(cancer):
    X, y = cancer
    model = ours().fit(X, y)
    score = model.score(X, y)
    assert isinstance(score, float) and score == accuracy_score(y, model.predict(X))
    metrics = model.metrics(X, y)
    assert metrics["accuracy"] == pytest.approx(score)
    assert {"log_loss", "precision", "recall", "f1", "roc_auc"} <= set(metrics)


def test_feature_names_only_from_string_column_names(cancer):
    X, y = cancer
    names = load_breast_cancer().feature_names
    on_frame = ours().fit(pd.DataFrame(X, columns=names), y)
    assert on_frame.feature_names_in_.dtype == object and list(on_frame.feature_names_in_) == list(names)
    on_array = ours().fit(X, y)
    assert not hasattr(on_array, "feature_names_in_") and on_array.n_features_in_ == X.shape[1]
    on_int_columns = ours().fit(pd.DataFrame(X), y)  # column names 0..29: not feature names, as scikit-learn
    assert not hasattr(on_int_columns, "feature_names_in_") and on_int_columns.n_features_in_ == X.shape[1]
    # a model fit on an array takes a frame's columns in order, whatever their names
    np.testing.assert_allclose(on_array.predict_proba(pd.DataFrame(X, columns=names)), on_array.predict_proba(X),
                               rtol=1e-12)  # a frame's values come column-major: the last bit may differ
    # the frame is copied into a table of edgelr's, the array trained on where it lies: the same optimum
    np.testing.assert_allclose(on_frame.predict_proba(pd.DataFrame(X, columns=names)), on_array.predict_proba(X),
                               atol=1e-6)


def test_decision_function_is_the_logit(cancer):
    X, y = cancer
    model = ours().fit(X, y)
    p = model.predict_proba(X)[:, 1]
    np.testing.assert_allclose(model.decision_function(X), np.log(p / (1 - p)), rtol=1e-6, atol=1e-6)


def test_bad_input_messages():
    X = np.random.default_rng(0).normal(size=(20, 4))
    y = np.arange(20) % 2
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        ours().predict(X)
    with pytest.raises(ConfigError):  # an edgelr error too, for the CLI
        ours().predict(X)
    model = ours().fit(X, y)
    with pytest.raises(DataError, match="X has 3 features, but LogisticRegression is expecting 4 features"):
        model.predict(X[:, :3])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(DataError, match=r"row 3, column 2 is NaN; expected finite numbers .*impute="):
        ours().fit(bad, y)
    bad[3, 2] = np.inf
    with pytest.raises(DataError, match="row 3, column 2 is inf"):
        model.predict_proba(bad)
    with pytest.raises(ValueError, match="Unknown label type"):
        ours().fit(X, np.linspace(0, 1, 20))
    with pytest.raises(ValueError, match="Negative values in data passed to `sample_weight`"):
        ours().fit(X, y, sample_weight=np.where(y == 0, -1.0, 1.0))
    for class_weight in (None, "balanced"):
        with pytest.raises(DataError, match="every row of class 1 weighs 0"):
            ours(class_weight=class_weight).fit(X, y, sample_weight=1.0 - y)
    for weight in (-1.0, "2", None, np.nan):
        with pytest.raises(ConfigError, match="class_weight .* expected"):
            ours(class_weight={0: weight}).fit(X, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, 1e300])
def test_fit_on_huge_or_infinite_values_is_one_error_without_warnings(dtype, bad):
    """The statistics pass names the value; numpy's overflow and inf - inf stay quiet on the way."""
    X = np.random.default_rng(1).normal(size=(300, 3)).astype(dtype)
    y = np.arange(300) % 2
    with np.errstate(over="ignore"):  # 1e300 is inf in float32
        X[7, 1] = X[8, 1] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        with pytest.raises(DataError, match="row 7, column 1 is -?inf|column 1: values too large"):
            ours().fit(X, y)


def test_edge_commands_never_import_sklearn(tmp_path):
    """scikit-learn is a training-side dependency: predict, info and evaluate run without it."""
    model = Path(__file__).parent.parent / "models" / "reference" / "students-v0.3.0.onnx"
    data = tmp_path / "rows.csv"
    data.write_text("lecture_hours,lab_hours,passed\n1,2,0\n5,3,1\n")
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import edgelr, edgelr.runtime\n"
        "from edgelr.cli import main\n"
        f"for args in (['predict', {str(model)!r}, {str(data)!r}], ['info', {str(model)!r}],\n"
        f"             ['evaluate', {str(model)!r}, {str(data)!r}, '--label', 'passed']):\n"
        "    r = CliRunner().invoke(main, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_training_never_imports_sklearn(tmp_path):
    """scikit-learn is imported only by scikit-learn: fit on arrays and frames, and `edgelr train`, go without it."""
    data = tmp_path / "rows.csv"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": (X[:, 0] > 0).astype(int)}).to_csv(data,
                                                                                                      index=False)
    code = (
        "import sys\n"
        "import numpy as np, pandas as pd\n"
        "from click.testing import CliRunner\n"
        "import edgelr, edgelr.estimator, edgelr.workflow\n"
        "from edgelr.cli import main\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.normal(size=(100, 3)).astype(np.float32)\n"
        "y = (X[:, 0] > 0).astype(int)\n"
        "model = edgelr.LogisticRegression(device='cpu').fit(X, y, sample_weight=np.ones(100))\n"
        "model.predict(X), model.score(X, y), repr(model), model.get_params()\n"
        "edgelr.LogisticRegression(device='cpu', l1_ratio=1.0, class_weight={0: 2.0, 1: 1.0}).fit(\n"
        "    pd.DataFrame(X, columns=['a', 'b', 'c']), y)\n"
        f"r = CliRunner().invoke(main, ['train', {str(data)!r}, '-o', {str(tmp_path / 'm.pt')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_not_fitted_error_is_sklearns_once_it_is_loaded():
    """The error is an edgelr ConfigError and, with scikit-learn imported (as here), scikit-learn's NotFittedError."""
    with pytest.raises(NotFittedError) as info:
        ours().predict_proba(np.ones((2, 2)))
    assert isinstance(info.value, ConfigError) and isinstance(info.value, AttributeError)
    assert not hasattr(ours(), "coef_")


def test_protocol_without_sklearn_base():
    """get_params / set_params / repr as BaseEstimator's; unknown parameters are rejected in its words."""
    model = ours(C=0.5, l1_ratio=0.25)
    params = model.get_params()
    assert list(params) == sorted(params) and params["C"] == 0.5 and params["l1_ratio"] == 0.25
    assert repr(model) == "LogisticRegression(C=0.5, l1_ratio=0.25, device='cpu')"
    assert model.set_params(C=2.0) is model and model.C == 2.0
    with pytest.raises(ValueError, match="Invalid parameter 'alpha' for estimator"):
        model.set_params(alpha=1.0)
    from sklearn.base import is_classifier

    assert is_classifier(model)


@pytest.mark.parametrize(("X", "match"), [
    (np.ones(20), "Expected 2D array, got 1D array instead.*Reshape your data"),
    (np.ones((20, 2)) + 1j, "Complex data not supported"),
    (np.ones((20, 0)), r"0 feature\(s\) \(shape=\(20, 0\)\) while a minimum of 1 is required"),
    (np.ones((0, 2)), r"0 sample\(s\)"),
])
def test_array_checks_in_sklearns_words(X, match):
    with pytest.raises(DataError, match=match):
        ours().fit(X, np.arange(len(X)) % 2)


def test_sparse_and_non_numbers_are_refused():
    from scipy import sparse

    y = np.arange(20) % 2
    with pytest.raises(DataError, match="sparse input is not supported"):
        ours().fit(sparse.csr_matrix(np.ones((20, 2))), y)
    X = np.ones((20, 2), dtype=object)
    X[0, 0] = {"a": 1}
    with pytest.raises(TypeError, match="argument must be .* string.* number"):
        ours().fit(X, y)
    with pytest.warns(UserWarning, match="A column-vector y was passed"):
        ours().fit(np.random.default_rng(0).normal(size=(20, 2)), y[:, None])


def test_fit_on_read_only_arrays_and_pandas_columns_warns_nothing():
    """pandas 3 hands out read-only arrays (copy on write; pandas 2 writable ones), as np.load's memory
    maps are: training only reads them, so torch's warning about writing to them is not the user's
    concern. In a fresh process: torch gives that warning once per process."""
    code = """
import numpy as np, pandas as pd
import edgelr
rng = np.random.default_rng(3)
frame = pd.DataFrame({"a": rng.normal(size=3000), "city": rng.choice(["x", "y", "z"], 3000)})
frame["label"] = (frame["a"] + rng.normal(size=3000) > 0).astype(np.int64)
edgelr.LogisticRegression(device="cpu").fit(frame.drop(columns=["label"]), frame["label"])
X = rng.normal(size=(3000, 4)).astype(np.float32)
y, weight = (X[:, 0] > 0).astype(np.int64), rng.uniform(0.5, 2.0, 3000)
for array in (X, y, weight):
    array.setflags(write=False)
edgelr.LogisticRegression(device="cpu").fit(X, y, sample_weight=weight)
"""
    proc = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
