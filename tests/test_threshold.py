"""edgelr.threshold: parsing --threshold, and the rules checked by hand and against scikit-learn's curve."""

import numpy as np
import pytest

from edgelr.errors import ConfigError
from edgelr.threshold import ThresholdRule, choose_threshold, parse_threshold

sklearn_metrics = pytest.importorskip("sklearn.metrics")

# Eight rows by hand, scores high to low (one tie, 0.6):
#   score 0.9 0.8 0.7 0.6 0.6 0.4 0.3 0.2
#   y      1   1   0   1   0   1   0   0
# cut (labelled positive: p >= s)   tp  predicted  precision  recall  f1
#   s=0.9                            1      1        1.0       0.25   0.4
#   s=0.8                            2      2        1.0       0.50   0.667
#   s=0.7                            2      3        0.667     0.50   0.571
#   s=0.6                            3      5        0.6       0.75   0.667
#   s=0.4                            4      6        0.667     1.0    0.8
#   s=0.3, s=0.2                     4      7, 8     0.571, 0.5  1.0  0.727, 0.667
Y = np.array([1, 1, 0, 1, 0, 1, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.6, 0.6, 0.4, 0.3, 0.2])


@pytest.mark.parametrize("text, rule", [
    ("0.3", ThresholdRule("value", 0.3)),
    ("max-f1", ThresholdRule("max-f1")),
    ("MAX-F1", ThresholdRule("max-f1")),
    ("precision:0.9", ThresholdRule("precision", 0.9)),
    ("recall:1", ThresholdRule("recall", 1.0)),
    (" recall:0.98 ", ThresholdRule("recall", 0.98)),
])
def test_parse(text, rule):
    assert parse_threshold(text) == rule


@pytest.mark.parametrize("text, message", [
    ("0", "not a probability strictly between 0 and 1"),
    ("1", "not a probability strictly between 0 and 1"),
    ("1.5", "not a probability strictly between 0 and 1"),
    ("nan", "is not a threshold"),
    ("high", "is not a threshold"),
    ("precision:", "is not a number"),
    ("precision:1.2", "a precision target must be in \\(0, 1\\], got 1.2"),
    ("recall:0", "a recall target must be in \\(0, 1\\], got 0"),
    ("f1:0.5", "is not a threshold rule"),
])
def test_parse_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_threshold(text)


def labels(p, t):
    return (np.asarray(p) > t).astype(int)


def test_precision_rule_by_hand():
    # precision >= 0.65: the cuts s=0.9, 0.8, 0.7 and 0.4; the most positives: s=0.4 (6 rows),
    # so t lies in [0.3, 0.4): the middle, 0.35
    assert choose_threshold(parse_threshold("precision:0.65"), Y, P) == pytest.approx(0.35)
    # precision 1 only for the two top rows: t in [0.7, 0.8)
    assert choose_threshold(parse_threshold("precision:1"), Y, P) == pytest.approx(0.75)


def test_recall_rule_by_hand():
    # recall >= 0.7: the cut s=0.6 (both tied rows positive), t in [0.4, 0.6)
    t = choose_threshold(parse_threshold("recall:0.7"), Y, P)
    assert t == pytest.approx(0.5)
    assert labels(P, t).tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    # recall 0.5 is reached by the cut s=0.8: the fewest positives, t in [0.7, 0.8)
    assert choose_threshold(parse_threshold("recall:0.5"), Y, P) == pytest.approx(0.75)


def test_max_f1_by_hand():
    assert choose_threshold(parse_threshold("max-f1"), Y, P) == pytest.approx(0.35)  # f1 0.8 at s=0.4


def test_a_number_is_taken_as_it_is():
    assert choose_threshold(parse_threshold("0.42"), np.zeros(0), np.zeros(0)) == 0.42


def test_every_row_positive_gives_half_the_lowest_score():
    y, p = np.array([1, 1, 0]), np.array([0.9, 0.5, 0.2])
    t = choose_threshold(parse_threshold("recall:1"), y, p)  # the cut at 0.5 already has recall 1
    assert t == pytest.approx(0.35)
    t = choose_threshold(parse_threshold("precision:0.6"), y, p)  # every row: precision 2/3
    assert t == pytest.approx(0.1)
    assert labels(p, t).tolist() == [1, 1, 1]


@pytest.mark.parametrize("seed", range(5))
def test_rules_match_scikit_learns_precision_recall_curve(seed):
    """The same cut as scikit-learn's curve (labels score >= its threshold), with labels p > t."""
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.3).astype(int)
    p = np.clip(np.round(0.3 * y + 0.7 * rng.random(300), 2), 0.01, 0.99)  # rounded: many ties
    precision, recall, thresholds = sklearn_metrics.precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    for target in (0.5, 0.8, 0.95):
        t = choose_threshold(parse_threshold(f"precision:{target}"), y, p)
        sk = thresholds[precision >= target].min()  # the smallest threshold reaching the precision
        np.testing.assert_array_equal(labels(p, t), (p >= sk).astype(int))
        assert sklearn_metrics.precision_score(y, labels(p, t)) >= target
    for target in (0.5, 0.9, 0.98, 1.0):
        t = choose_threshold(parse_threshold(f"recall:{target}"), y, p)
        sk = thresholds[recall >= target].max()  # the largest threshold reaching the recall
        np.testing.assert_array_equal(labels(p, t), (p >= sk).astype(int))
        assert sklearn_metrics.recall_score(y, labels(p, t)) >= target
    t = choose_threshold(parse_threshold("max-f1"), y, p)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=precision + recall > 0)
    assert sklearn_metrics.f1_score(y, labels(p, t)) == pytest.approx(f1.max())


def test_unreachable_precision_and_missing_rows_are_errors():
    with pytest.raises(ConfigError, match="no threshold reaches precision 0.99 on the validation rows "
                                          "\\(the highest is 0.6667\\)"):  # 2 of the top 3
        choose_threshold(parse_threshold("precision:0.99"), np.array([0, 1, 1, 0, 1]),
                         np.array([0.9, 0.8, 0.7, 0.6, 0.1]))
    with pytest.raises(ConfigError, match="there are none; expected a --val-fraction above 0"):
        choose_threshold(parse_threshold("max-f1"), np.zeros(0), np.zeros(0))
    with pytest.raises(ConfigError, match="hold no row of the positive class"):
        choose_threshold(parse_threshold("recall:0.9"), np.zeros(4), np.linspace(0.1, 0.9, 4))


def test_evaluate_and_metrics_label_at_the_models_threshold(tmp_path, binary_csv):
    # The labels edgelr predicts are p > threshold; so are the labels behind evaluate's accuracy.
    import json

    from click.testing import CliRunner
    from sklearn.metrics import accuracy_score, recall_score

    from edgelr import LogisticRegression
    from edgelr.cli import main
    from edgelr.data import read_label_cells
    from edgelr.runtime import Predictor

    runner = CliRunner()
    out = tmp_path / "m.pt"
    assert runner.invoke(main, ["train", str(binary_csv), "--threshold", "0.2", "-o", str(out)]).exit_code == 0
    assert runner.invoke(main, ["export", str(out), "-o", str(tmp_path / "m.onnx")]).exit_code == 0
    result = runner.invoke(main, ["evaluate", str(tmp_path / "m.onnx"), str(binary_csv), "--label", "target",
                                  "--json"])
    assert result.exit_code == 0, result.output
    predictor = Predictor(tmp_path / "m.onnx")
    numbers, text, cells = read_label_cells(binary_csv, predictor.feature_names, "target", [], allow_missing=False)
    y = np.array([predictor.classes.index(int(c)) for c in cells])
    p1 = predictor.score(numbers, text)[1][:, 1]
    metrics = json.loads(result.output)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, p1 > 0.2))
    assert metrics["recall"] == pytest.approx(recall_score(y, p1 > 0.2))
    assert metrics["accuracy"] != pytest.approx(accuracy_score(y, p1 > 0.5))  # the case tells them apart
    model = LogisticRegression.load(out)
    assert model.metrics(numbers, y)["accuracy"] == pytest.approx(accuracy_score(y, p1 > 0.2), abs=1e-3)
