"""``edgelr train --report`` and ``edgelr report``: readable PNG plots and a model card (spec section 3).

Plots are opened as files (PNG signature, IHDR size, pixels); the numbers on them and in
the card are checked against scikit-learn and the checkpoint, never against the code
that drew them.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from matplotlib.image import imread
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from edgelr.cli import main
from edgelr.estimator import LogisticRegression
from edgelr.report import Scored, calibration_figure, loss_figure, pr_figure, roc_figure
from edgelr.runtime import Predictor
from tests.conftest import write_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BINARY_PLOTS = {"loss.png", "confusion.png", "roc.png", "precision_recall.png", "calibration.png"}
MULTICLASS_PLOTS = BINARY_PLOTS - {"calibration.png"}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_error(result, *fragments: str) -> None:
    """Exit 1, one ``Error:`` line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr


def check_png(path: Path) -> None:
    """A real PNG of at least 400 x 300 pixels with something drawn on it."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    length, kind, width, height = struct.unpack(">I4sII", data[8:24])
    assert (length, kind) == (13, b"IHDR"), path
    assert width >= 400 and height >= 300, (path, width, height)
    pixels = imread(path)[..., :3]
    assert pixels.shape[:2] == (height, width)
    ink = np.any(pixels < 0.9, axis=-1).mean()  # share of pixels that are not (near) white
    assert 0.01 < ink < 0.9 and pixels.std() > 0.05, (path, ink, pixels.std())


def card_metrics(card: str) -> dict[str, dict[str, float | None]]:
    """The card's metrics table as {column: {metric: value}}."""
    section = card.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    header, body = rows[0], rows[2:]
    return {col: {r[0]: (None if r[i] == "-" else float(r[i])) for r in body} for i, col in enumerate(header)
            if i > 0}


def read_card(folder: Path) -> str:
    card = (folder / "model_card.md").read_text(encoding="utf-8")
    for png in folder.glob("*.png"):
        assert f"]({png.name})" in card, f"{png.name} is not linked from the card"
    return card


def labels_of(csv_path: Path) -> np.ndarray:
    return np.loadtxt(csv_path, delimiter=",", skiprows=1, usecols=-1, dtype=str)


# -- edgelr train --report ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_train_report_writes_readable_plots_and_a_card(tmp_path, kind, request):
    data = request.getfixturevalue(f"{kind}_csv")
    pt, folder = tmp_path / "m.pt", tmp_path / "rep"
    result = run("train", data, "-o", pt, "--report", folder, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # --json keeps stdout to the one object
    assert f"report: {folder / 'model_card.md'}" in result.stderr

    expected = BINARY_PLOTS if kind == "binary" else MULTICLASS_PLOTS
    assert {p.name for p in folder.glob("*.png")} == expected
    for png in folder.glob("*.png"):
        check_png(png)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*expected, "model_card.md"])  # no temp files

    card = read_card(folder)
    table = card_metrics(card)
    assert set(table) == {"train", "validation"}
    for split in ("train", "validation"):
        for name, value in summary["metrics"][split].items():
            assert table[split][name] == pytest.approx(value, abs=5e-5), (split, name)
    # The plots show the validation split: 20% of 400 rows, stratified.
    assert "validation split, 80 rows" in card
    classes, counts = np.unique(labels_of(data), return_counts=True)
    for c, n in zip(classes, counts):
        assert re.search(rf"\| {c} \| {n} \| {100 * n / counts.sum():.1f}% \| \d+ \|", card), c
    state = torch.load(pt, weights_only=True)
    for name, mean, scale in zip(state["feature_names"], state["mean"].tolist(), state["scale"].tolist()):
        assert f"| {name} | {mean:.6g} | {scale:.6g} |" in card
    assert "| optimizer | lbfgs |" in card and "| C | 1.0 |" in card
    assert "edgelr predict" in card and "from edgelr.runtime import Predictor" in card
    assert "Not exported yet" in card
    explained = card.split("### How to read explanations", 1)[1]
    assert "`contribution_<column>`" in explained and "`w * (x - mean) / scale`" in explained
    assert ("log-odds of class 1" if kind == "binary" else "of the class each row is predicted") in explained


def test_train_report_without_validation_rows_plots_the_training_rows(tmp_path):
    folder = tmp_path / "rep"
    result = run("train", "--val-fraction", "0", "-o", tmp_path / "m.pt", "--report", folder)
    assert result.exit_code == 0, result.output
    card = read_card(folder)
    assert "training rows (no validation split), 6 rows" in card
    assert card_metrics(card)["validation"]["accuracy"] is None
    for png in folder.glob("*.png"):
        check_png(png)


def test_train_report_into_a_file_is_refused_before_training(tmp_path, binary_csv):
    (tmp_path / "rep").write_text("not a folder")
    result = run("train", binary_csv, "-o", tmp_path / "m.pt", "--report", tmp_path / "rep")
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_report_into_an_unwritable_place(tmp_path, binary_checkpoint, binary_csv):
    (tmp_path / "file").write_text("")
    assert_error(run("report", binary_checkpoint, binary_csv, "-o", tmp_path / "file" / "rep"),
                 "cannot write there")


# -- edgelr report on an existing checkpoint ------------------------------------------


def test_report_on_a_checkpoint_scores_the_data_and_reads_the_export_parity(tmp_path, binary_checkpoint,
                                                                            binary_onnx, binary_csv):
    folder = tmp_path / "rep"
    result = run("report", binary_checkpoint, binary_csv, "-o", folder)
    assert result.exit_code == 0, result.output
    assert {p.name for p in folder.glob("*.png")} == BINARY_PLOTS
    for png in folder.glob("*.png"):
        check_png(png)
    card = read_card(folder)

    X = np.loadtxt(binary_csv, delimiter=",", skiprows=1)
    y = X[:, -1].astype(int)
    proba = LogisticRegression.load(binary_checkpoint).predict_proba(X[:, :-1])
    scored = card_metrics(card)["binary.csv"]
    assert scored["accuracy"] == pytest.approx(skm.accuracy_score(y, proba[:, 1] > 0.5), abs=5e-5)
    assert scored["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), abs=5e-5)
    assert scored["log_loss"] == pytest.approx(skm.log_loss(y, proba), abs=5e-5)
    assert "binary.csv, 400 rows" in card

    parity = json.loads(Predictor(binary_onnx).metadata["edgelr.parity"])
    assert f"ONNX model `{binary_onnx}`" in card
    assert f"| {parity['max_abs_diff']:.3g} |" in card
    assert f"| onnxruntime | {parity['onnxruntime']} |" in card


def test_report_multiclass_with_an_explicit_model(tmp_path, multiclass_checkpoint, multiclass_onnx,
                                                 multiclass_csv):
    folder = tmp_path / "rep"
    result = run("report", multiclass_checkpoint, multiclass_csv, "-o", folder, "--model", multiclass_onnx)
    assert result.exit_code == 0, result.output
    assert {p.name for p in folder.glob("*.png")} == MULTICLASS_PLOTS
    card = read_card(folder)
    assert "setosa" in card and "virginica" in card
    assert "## Export and parity" in card and "Not exported yet" not in card


def test_a_stale_export_beside_the_checkpoint_is_a_note_not_parity(tmp_path, binary_csv, binary_checkpoint):
    # A model trained with other settings, exported under the name the report looks for.
    other = tmp_path / "other.pt"
    assert run("train", binary_csv, "--C", "0.001", "-o", other, "--device", "cpu").exit_code == 0
    assert run("export", other, "-o", tmp_path / "m.onnx").exit_code == 0
    shutil.copy(binary_checkpoint, tmp_path / "m.pt")
    result = run("report", tmp_path / "m.pt", binary_csv, "-o", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert "note: not used for the parity figures" in result.stderr
    assert "exported from an earlier training" in result.stderr
    card = read_card(tmp_path / "rep")
    assert "Not exported yet" in card and "## Notes" in card


def test_explicit_model_of_another_checkpoint_is_an_error(tmp_path, binary_checkpoint, multiclass_onnx, binary_csv):
    folder = tmp_path / "rep"
    result = run("report", binary_checkpoint, binary_csv, "-o", folder, "--model", multiclass_onnx)
    assert_error(result, str(multiclass_onnx), "exported from another model")
    assert not folder.exists()


# -- the numbers drawn on the plots ----------------------------------------------------


def random_scored(n_classes: int, seed: int, n_rows: int = 300) -> Scored:
    """Probabilities rounded to 2 decimals, so scores tie as real model outputs can."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n_rows - n_classes)])
    logits = rng.normal(size=(n_rows, n_classes)) + 1.5 * np.eye(n_classes)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba = np.round(proba, 2)
    proba[:, -1] = 1 - proba[:, :-1].sum(axis=1)
    return Scored(y, proba, "test rows")


def lines_by_label(fig) -> dict[str, object]:
    ax = fig.axes[0]
    return {line.get_label(): line for line in ax.get_lines()}


@pytest.mark.parametrize("seed", range(3))
def test_binary_curves_match_sklearn(seed):
    scored = random_scored(2, seed)
    y, p = scored.y, scored.proba[:, 1]

    auc = skm.roc_auc_score(y, p)
    roc = lines_by_label(roc_figure(scored, ["0", "1"]))[f"class 1 vs 0: AUC = {auc:.3f}"]
    fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
    np.testing.assert_allclose(roc.get_xdata(), fpr)
    np.testing.assert_allclose(roc.get_ydata(), tpr)
    assert skm.auc(roc.get_xdata(), roc.get_ydata()) == pytest.approx(auc)

    ap = skm.average_precision_score(y, p)
    pr = lines_by_label(pr_figure(scored, ["0", "1"]))[f"class 1 vs 0: AP = {ap:.3f} (chance {y.mean():.3f})"]
    precision, recall, _ = skm.precision_recall_curve(y, p)
    np.testing.assert_allclose(pr.get_xdata(), recall)
    np.testing.assert_allclose(pr.get_ydata(), precision)

    fig = calibration_figure(scored, ["0", "1"])
    reliability = next(line for line in fig.axes[0].get_lines() if line.get_label().startswith("model"))
    observed, predicted = calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose(reliability.get_xdata(), predicted)
    np.testing.assert_allclose(reliability.get_ydata(), observed)
    counts = [patch.get_height() for patch in fig.axes[1].patches]
    # scikit-learn's bins are closed on the right, (0.1, 0.2]; numpy's on the left: count -p instead.
    edges = np.linspace(0, 1, 11)
    np.testing.assert_array_equal(counts, np.histogram(-p, bins=-edges[::-1])[0][::-1])


def test_multiclass_curves_are_one_vs_rest_as_sklearn():
    scored = random_scored(3, seed=7)
    names = ["a", "b", "c"]
    roc, pr = lines_by_label(roc_figure(scored, names)), lines_by_label(pr_figure(scored, names))
    for k, name in enumerate(names):
        y, p = (scored.y == k).astype(int), scored.proba[:, k]
        line = roc[f"{name}: AUC = {skm.roc_auc_score(y, p):.3f}"]
        fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
        np.testing.assert_allclose(line.get_xdata(), fpr)
        np.testing.assert_allclose(line.get_ydata(), tpr)
        line = pr[f"{name}: AP = {skm.average_precision_score(y, p):.3f} (chance {y.mean():.3f})"]
        precision, recall, _ = skm.precision_recall_curve(y, p)
        np.testing.assert_allclose(line.get_xdata(), recall)
        np.testing.assert_allclose(line.get_ydata(), precision)


def test_confusion_matrix_counts_match_sklearn():
    from edgelr.report import confusion_figure

    scored = random_scored(3, seed=3)
    fig = confusion_figure(scored, ["a", "b", "c"])
    counts = np.array(fig.axes[0].images[0].get_array())
    expected = skm.confusion_matrix(scored.y, scored.proba.argmax(axis=1))
    np.testing.assert_allclose(counts, expected / expected.max())
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [str(v) for v in expected.ravel()]
    shares = [t.get_text() for t in fig.axes[1].texts]
    row_share = expected / expected.sum(axis=1, keepdims=True)
    assert shares == [f"{100 * v:.1f}%" for v in row_share.ravel()]


def test_loss_plot_shows_validation_loss_when_the_history_has_it():
    history = [{"epoch": e, "loss": 1 / (e + 1)} for e in range(6)]
    labels = set(lines_by_label(loss_figure(history)))
    assert labels == {"training objective (final 0.1667)"}

    with_val = [{**h, "val_loss": 1.2 / (h["epoch"] + 1) + 0.05 * h["epoch"]} for h in history]
    labels = set(lines_by_label(loss_figure(with_val)))
    assert labels == {"training objective (final 0.1667)", "validation loss (final 0.4500)"}


# -- without matplotlib, and bad inputs ------------------------------------------------


@pytest.fixture
def no_matplotlib(monkeypatch):
    """An install without the report extra: find_spec and import both fail."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_train_report_without_matplotlib_fails_before_training(tmp_path, binary_csv, no_matplotlib):
    pt, folder = tmp_path / "m.pt", tmp_path / "rep"
    assert_error(run("train", binary_csv, "-o", pt, "--report", folder),
                 "'edgelr train --report' needs matplotlib", "pip install 'edgelr[report]'")
    assert not pt.exists() and not folder.exists()


def test_report_command_without_matplotlib(tmp_path, binary_checkpoint, binary_csv, no_matplotlib):
    assert_error(run("report", binary_checkpoint, binary_csv, "-o", tmp_path / "rep"),
                 "pip install 'edgelr[report]'")
    assert not (tmp_path / "rep").exists()


def test_missing_label_column(tmp_path, binary_checkpoint):
    data = write_csv(tmp_path / "unlabelled.csv", ["f0", "f1", "f2", "f3", "f4"], [[1, 2, 3, 4, 5]])
    assert_error(run("report", binary_checkpoint, data, "-o", tmp_path / "rep"),
                 "unlabelled.csv", "'target' not found", "the header has: f0, f1, f2, f3, f4")
    assert_error(run("report", binary_checkpoint, data, "-o", tmp_path / "rep", "--label", "nope"),
                 "unlabelled.csv", "'nope' not found")
    assert_error(run("report", binary_checkpoint, data, "-o", tmp_path / "rep", "--label", "f4"),
                 "unlabelled.csv", "--label 'f4' is one of the model's features")
    assert not (tmp_path / "rep").exists()


def test_labels_the_model_does_not_know(tmp_path, binary_checkpoint):
    data = write_csv(tmp_path / "d.csv", ["f0", "f1", "f2", "f3", "f4", "target"], [[1, 2, 3, 4, 5, 7]])
    assert_error(run("report", binary_checkpoint, data, "-o", tmp_path / "rep"),
                 "d.csv, column 'target'", "label '7' is not one of the model's classes 0, 1")


@pytest.mark.parametrize("content,fragment", [
    (b"a,b\n1,2\n", "not a torch checkpoint"),
    (b"", "the file is empty"),
])
def test_a_file_that_is_not_a_checkpoint(tmp_path, binary_csv, content, fragment):
    (tmp_path / "model.pt").write_bytes(content)
    assert_error(run("report", tmp_path / "model.pt", binary_csv, "-o", tmp_path / "rep"), "model.pt", fragment)
    assert not (tmp_path / "rep").exists()


def test_a_failed_report_writes_no_file(tmp_path, binary_checkpoint, binary_csv, monkeypatch):
    import edgelr.report

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(edgelr.report, "calibration_figure", broken)
    result = run("report", binary_checkpoint, binary_csv, "-o", tmp_path / "rep")
    assert result.exit_code != 0
    assert not (tmp_path / "rep").exists() or not any((tmp_path / "rep").iterdir())
