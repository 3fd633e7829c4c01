"""edgelr.metrics against scikit-learn's definitions (spec section 3, metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from edgelr.metrics import (
    average_precision,
    binary_scores,
    calibration_bins,
    classification_metrics,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    predicted_labels,
    roc_auc,
    roc_curve,
)


def random_problem(n_classes: int, n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, proba): labels covering every class, softmax probabilities of random logits."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n_rows - n_classes)])
    logits = rng.normal(scale=2.0, size=(n_rows, n_classes))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_match_sklearn(seed):
    y, proba = random_problem(2, 200, seed)
    got = classification_metrics(y, proba)
    pred = (proba[:, 1] > 0.5).astype(int)
    assert set(got) == {"accuracy", "log_loss", "precision", "recall", "f1", "roc_auc"}
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-12)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_metrics_match_sklearn(seed):
    y, proba = random_problem(3, 150, seed)
    got = classification_metrics(y, proba)
    assert set(got) == {"accuracy", "log_loss"}
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(axis=1)))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2]), rel=1e-12)


def test_metrics_are_plain_floats():
    y, proba = random_problem(2, 20, 0)
    assert all(type(v) is float for v in classification_metrics(y, proba).values())


def test_binary_threshold_is_strict_as_in_sklearn():
    """p1 == 0.5 predicts class 0, like scikit-learn's decision_function > 0."""
    proba = np.array([[0.5, 0.5], [0.4, 0.6], [0.6, 0.4]])
    np.testing.assert_array_equal(predicted_labels(proba), [0, 1, 0])
    np.testing.assert_array_equal(predicted_labels(proba, threshold=0.3), [1, 1, 1])


def test_log_loss_by_hand():
    y = np.array([0, 1, 1])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]])
    expected = -(np.log(0.8) + np.log(0.7) + np.log(0.5)) / 3
    assert log_loss(y, proba) == pytest.approx(expected, rel=1e-15)


def test_log_loss_of_a_certain_mistake_is_large_but_finite():
    y = np.array([0, 1])
    proba = np.array([[0.0, 1.0], [0.0, 1.0]])
    got = log_loss(y, proba)
    assert np.isfinite(got)
    assert got == pytest.approx(skm.log_loss(y, proba), rel=1e-6)


def test_roc_auc_with_ties_by_hand():
    """Pairs (pos, neg): 0.8>0.3, 0.8>0.5, 0.5=0.5 (half), 0.5>0.3 -> 3.5 of 4."""
    y = np.array([0, 0, 1, 1])
    score = np.array([0.3, 0.5, 0.5, 0.8])
    assert roc_auc(y, score) == pytest.approx(3.5 / 4)
    assert roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score))


def test_roc_auc_all_scores_tied_is_one_half():
    y = np.array([0, 1, 0, 1, 1])
    assert roc_auc(y, np.full(5, 0.7)) == 0.5


def test_roc_auc_is_none_with_one_class():
    assert roc_auc(np.array([1, 1, 1]), np.array([0.1, 0.5, 0.9])) is None
    assert roc_auc(np.array([0, 0]), np.array([0.1, 0.5])) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=2, max_size=60))
def test_roc_auc_with_heavy_ties_matches_sklearn(pairs):
    """Scores drawn from six values, so most of them tie."""
    y = np.array([p[0] for p in pairs])
    score = np.array([p[1] for p in pairs], dtype=np.float64) / 5
    if y.min() == y.max():
        assert roc_auc(y, score) is None
    else:
        assert roc_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=40))
def test_binary_scores_match_sklearn(pairs):
    """Including all-negative predictions and all-negative truth, where sklearn gives 0."""
    y = np.array([p[0] for p in pairs])
    pred = np.array([p[1] for p in pairs])
    got = binary_scores(y, pred)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, zero_division=0))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0))


def test_no_predicted_positives_gives_precision_zero():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])
    got = classification_metrics(y, proba)
    assert got["precision"] == 0.0
    assert got["recall"] == 0.0
    assert got["f1"] == 0.0
    assert got["accuracy"] == 0.5
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))


# -- curves of the report ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 10)), min_size=2, max_size=80))
def test_curves_with_heavy_ties_match_sklearn(pairs):
    """ROC, precision-recall, AP and calibration bins; scores on 0.0, 0.1, ..., 1.0 (bin edges)."""
    y = np.array([p[0] for p in pairs])
    score = np.array([p[1] for p in pairs], dtype=np.float64) / 10
    if y.min() == y.max():
        assert (average_precision(y, score) is None) == (y.max() == 0)
        return
    fpr, tpr, thresholds = roc_curve(y, score)
    sk_fpr, sk_tpr, sk_thresholds = skm.roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_array_equal(thresholds, sk_thresholds)
    assert skm.auc(fpr, tpr) == pytest.approx(roc_auc(y, score), abs=1e-12)

    precision, recall, thresholds = precision_recall_curve(y, score)
    sk_precision, sk_recall, sk_thresholds = skm.precision_recall_curve(y, score)
    np.testing.assert_allclose(precision, sk_precision)
    np.testing.assert_allclose(recall, sk_recall)
    np.testing.assert_array_equal(thresholds, sk_thresholds)
    assert average_precision(y, score) == pytest.approx(skm.average_precision_score(y, score), abs=1e-12)

    bins = calibration_bins(y, score, n_bins=10)
    observed, predicted = calibration_curve(y, score, n_bins=10)
    filled = bins["count"] > 0
    np.testing.assert_allclose(bins["fraction_positive"][filled], observed)
    np.testing.assert_allclose(bins["mean_predicted"][filled], predicted)
    assert bins["count"].sum() == y.size
    assert np.isnan(bins["mean_predicted"][~filled]).all()


def test_roc_curve_by_hand():
    """Thresholds inf, 0.8, 0.5, 0.3: the tied 0.5 pair moves both rates at once."""
    fpr, tpr, thresholds = roc_curve(np.array([0, 0, 1, 1]), np.array([0.3, 0.5, 0.5, 0.8]))
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_array_equal(thresholds, [np.inf, 0.8, 0.5, 0.3])


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_confusion_matrix_matches_sklearn(n_classes):
    y, proba = random_problem(n_classes, 200, seed=n_classes)
    pred = predicted_labels(proba)
    np.testing.assert_array_equal(confusion_matrix(y, pred, n_classes),
                                  skm.confusion_matrix(y, pred, labels=range(n_classes)))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_streaming_accumulator_equals_sklearn(n_classes):
    """MetricsAccumulator over uneven chunks gives scikit-learn's numbers (ties in the scores included)."""
    from sklearn import metrics as skm

    from edgelr.metrics import MetricsAccumulator

    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 997)
    proba = rng.dirichlet(np.ones(n_classes), size=997).round(2)  # rounding makes ties
    proba /= proba.sum(axis=1, keepdims=True)
    acc = MetricsAccumulator()
    for chunk in np.array_split(np.arange(997), [10, 400, 401, 900]):
        acc.update(y[chunk], proba[chunk])
    got = acc.result()
    pred = (proba[:, 1] > 0.5).astype(int) if n_classes == 2 else proba.argmax(1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=list(range(n_classes))), rel=1e-12)
    if n_classes == 2:
        assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
        assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
        assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    else:
        assert "roc_auc" not in got


def test_streaming_accumulator_at_another_threshold_with_saturated_scores_equals_sklearn():
    """A binary model's metrics at a chosen threshold, on scores with many exact 0s, 1s and ties."""
    from edgelr.metrics import MetricsAccumulator

    rng = np.random.default_rng(7)
    p1 = np.clip(rng.normal(0.5, 0.6, 5_000), 0.0, 1.0).round(3)  # a third saturated at 0 or 1
    y = (rng.random(5_000) < p1).astype(np.int64)
    acc = MetricsAccumulator()
    for chunk in np.array_split(np.arange(5_000), 7):
        acc.update(y[chunk], np.stack([1.0 - p1[chunk], p1[chunk]], axis=1))
    got, pred = acc.result(0.3), (p1 > 0.3).astype(int)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), rel=1e-15)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred), rel=1e-15)
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred), rel=1e-15)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred), rel=1e-12)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1), rel=1e-12)
