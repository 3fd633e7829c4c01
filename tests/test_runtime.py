"""The torch-free predictor and the predict / evaluate commands."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from onnx.external_data_helper import convert_model_to_external_data
from sklearn.metrics import accuracy_score, log_loss

import edgelr.runtime as runtime
from edgelr.cli import main
from edgelr.runtime import Predictor, PredictorError
from tests.conftest import make_data, write_csv

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "reference"


@pytest.fixture(scope="module")
def binary(binary_onnx) -> Predictor:
    return Predictor(binary_onnx)


@pytest.fixture(scope="module")
def multiclass(multiclass_onnx) -> Predictor:
    return Predictor(multiclass_onnx)


def check_predictions(predictor: Predictor, X) -> np.ndarray:
    """scikit-learn's helper, here: shape, rows sum to 1, in [0, 1], predict agrees with the rule."""
    proba = predictor.predict_proba(X)
    assert proba.dtype == np.float32 and proba.shape == (len(X), len(predictor.classes))
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    rule = proba[:, 1] > predictor.threshold if len(predictor.classes) == 2 else proba.argmax(axis=1)
    np.testing.assert_array_equal(predictor.predict(X), np.asarray(predictor.classes)[rule.astype(int)])
    return proba


finite_rows = arrays(np.float64, st.tuples(st.integers(1, 20), st.just(5)),
                     elements=st.floats(-1e4, 1e4, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(X=finite_rows)
def test_properties_binary(binary, X):
    proba = check_predictions(binary, X)
    one_by_one = np.vstack([binary.predict_proba(row) for row in X])
    np.testing.assert_allclose(one_by_one, proba, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(X=finite_rows, order=st.permutations(range(5)))
def test_properties_multiclass_and_mapping_order(multiclass, X, order):
    proba = check_predictions(multiclass, X)
    names = multiclass.feature_names
    rows = [{names[j]: row[j] for j in order} for row in X]
    np.testing.assert_array_equal(multiclass.predict_proba(rows), proba)


@settings(max_examples=60, deadline=None)
@given(X=finite_rows, data=st.data())
def test_any_non_finite_value_is_named(binary, multiclass, X, data):
    """NaN or +-inf anywhere, in any number of cells: the error names the first one (row-major)."""
    X = X.copy()
    cells = data.draw(st.lists(st.tuples(st.integers(0, X.shape[0] - 1), st.integers(0, 4)), min_size=1, max_size=4))
    for row, col in cells:
        X[row, col] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    row, col = np.argwhere(~np.isfinite(X))[0]  # the reference: numpy on the input itself
    for predictor in (binary, multiclass):
        with pytest.raises(PredictorError, match=rf"^row {row}, feature 'f{col}' is (nan|inf|-inf); expected finite"):
            predictor.predict_proba(X)


def test_metadata_and_dtypes(binary, multiclass):
    assert binary.feature_names == ["f0", "f1", "f2", "f3", "f4"]
    assert binary.classes == [0, 1] and binary.threshold == 0.5
    assert multiclass.classes == ["setosa", "versicolor", "virginica"] and multiclass.threshold is None
    assert binary.metadata["edgelr.format"] == "1"
    ints = np.arange(10, dtype=np.int32).reshape(2, 5)
    np.testing.assert_array_equal(binary.predict_proba(ints), binary.predict_proba(ints.astype(np.float32)))


def test_threads_and_concurrent_use(binary_onnx):
    predictor = Predictor(binary_onnx, threads=1)
    X, _ = make_data(2, n_rows=200, seed=3)
    expected = predictor.predict_proba(X)
    results = [None] * 8

    def work(i):
        results[i] = predictor.predict_proba(X)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("X,match", [
    ([[1.0, 2.0]], r"shape \(1, 2\); expected \(n_rows, 5\) with the features f0, f1"),
    ([[1, 2, 3, 4, np.nan]], "row 0, feature 'f4' is nan; expected finite numbers"),
    ([[1, 2, 3, 4, np.inf]], "feature 'f4' is inf"),
    ([["a", 2, 3, 4, 5]], "row 0, feature 'f0' is 'a'; expected a number"),
    (np.array([["1", "2", "1_0", "4", "5"]]), "row 0, feature 'f2' is '1_0'; expected a number"),
    ([{"f0": 1, "f1": 2, "f2": 3, "f3": 4}], "row 0: missing f4; expected the features"),
    ([{"f0": 1, "f1": 2, "f2": 3, "f3": 4, "f4": 5, "zz": 0}], "row 0: unknown zz"),
])
def test_bad_input_names_the_expected_features(binary, X, match):
    with pytest.raises(PredictorError, match=match):
        binary.predict(X)


def test_refuses_foreign_truncated_and_external_models(tmp_path, binary_onnx):
    model = onnx.load(str(binary_onnx))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "plain.onnx"))
    with pytest.raises(PredictorError, match="not an edgelr model"):
        Predictor(tmp_path / "plain.onnx")

    data = binary_onnx.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(PredictorError, match="truncated or not an ONNX/ORT model"):
        Predictor(tmp_path / "cut.onnx")

    model = onnx.load(str(binary_onnx))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save(model, str(tmp_path / "external.onnx"))
    with pytest.raises(PredictorError, match="external data"):
        Predictor(tmp_path / "external.onnx")
    with pytest.raises(PredictorError, match="no such model file"):
        Predictor(tmp_path / "missing.onnx")


def test_predict_command_selects_columns_by_name(tmp_path, binary, binary_onnx):
    X, y = make_data(2, n_rows=50, seed=4)
    rows = [[i, label, *reversed(row)] for i, (row, label) in enumerate(zip(X.tolist(), y))]
    path = write_csv(tmp_path / "in.csv", ["id", "target", "f4", "f3", "f2", "f1", "f0"], rows)
    result = CliRunner().invoke(main, ["predict", str(binary_onnx), str(path), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", newline="") as handle:
        out = list(csv.DictReader(handle))
    assert list(out[0]) == ["label", "probability_0", "probability_1"]
    proba = np.array([[float(r["probability_0"]), float(r["probability_1"])] for r in out])
    np.testing.assert_allclose(proba, binary.predict_proba(X), rtol=1e-7)
    assert [int(r["label"]) for r in out] == binary.predict(X).tolist()


def test_predict_bad_input_leaves_no_file(tmp_path, binary_onnx):
    path = write_csv(tmp_path / "in.csv", ["f0", "f1", "f2", "f3", "f4"], [[1, 2, 3, 4, 5], [1, "x", 3, 4, 5]])
    result = CliRunner().invoke(main, ["predict", str(binary_onnx), str(path), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 1
    assert "line 3, column 'f1': got 'x'" in result.stderr
    assert not (tmp_path / "out.csv").exists()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    bad = CliRunner().invoke(main, ["predict", str(binary_onnx), str(empty)])
    assert bad.exit_code == 1 and "the file is empty" in bad.stderr
    missing = write_csv(tmp_path / "missing.csv", ["f0", "f1"], [[1, 2]])
    to_stdout = CliRunner().invoke(main, ["predict", str(binary_onnx), str(missing)])
    assert to_stdout.exit_code == 1 and to_stdout.stdout == ""  # no header line before the error
    assert "feature column 'f2', 'f3', 'f4' not found" in to_stdout.stderr


def test_evaluate_matches_sklearn_metrics(tmp_path, multiclass, multiclass_onnx, multiclass_csv):
    result = CliRunner().invoke(main, ["evaluate", str(multiclass_onnx), str(multiclass_csv), "--label", "target",
                                       "--json"])
    assert result.exit_code == 0, result.output
    import json

    metrics = json.loads(result.stdout)
    with open(multiclass_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    X = np.array([[float(r[f"f{i}"]) for i in range(5)] for r in rows])
    y = [r["target"] for r in rows]
    proba = multiclass.predict_proba(X)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, multiclass.predict(X)))
    assert metrics["log_loss"] == pytest.approx(log_loss(y, proba, labels=multiclass.classes), rel=1e-6)


def test_evaluate_unknown_label(tmp_path, binary_onnx):
    path = write_csv(tmp_path / "in.csv", ["f0", "f1", "f2", "f3", "f4", "y"], [[1, 2, 3, 4, 5, 7]])
    result = CliRunner().invoke(main, ["evaluate", str(binary_onnx), str(path), "--label", "y"])
    assert result.exit_code == 1 and "label '7' is not one of the model's classes 0, 1" in result.stderr


def _labelled_rows(n: int, seed: int = 5) -> tuple[np.ndarray, list[str]]:
    """(X, label cells): rows on the training data's scale, labels spelled as files spell them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 2.0, size=(n, 5))
    spellings = {0: ["0", "0.0", " 0"], 1: ["1", "1.0", "1e0"]}
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    return X, [spellings[int(c)][i % 3] for i, c in enumerate(y)]


def _write_labelled(path: Path, X: np.ndarray, cells: list[str], newline: str = "\n") -> Path:
    with open(path, "w", newline="") as handle:
        handle.write("f0,f1,f2,f3,f4,y" + newline)
        handle.writelines(",".join(f"{v:.7g}" for v in row) + f",{c}{newline}" for row, c in zip(X, cells))
    return path


def test_evaluate_streams_a_clean_file_block_by_block_and_matches_sklearn(tmp_path, binary, binary_onnx,
                                                                           monkeypatch):
    """A numeric file of several parse blocks goes through the fast parse (the whole-file reader is
    disabled) and gives scikit-learn's metrics of the Predictor's probabilities."""
    from sklearn.metrics import f1_score, roc_auc_score

    import edgelr.scoring as scoring

    X, cells = _labelled_rows(40_000)
    path = _write_labelled(tmp_path / "clean.csv", X, cells)
    assert path.stat().st_size > 3 * (1 << 19)  # more than three of csvblocks' blocks

    def whole_file(*args, **kwargs):
        raise AssertionError("the whole-file reader read a clean file")

    monkeypatch.setattr(scoring, "read_label_cells", whole_file)
    result = CliRunner().invoke(main, ["evaluate", str(binary_onnx), str(path), "--label", "y", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    values = np.array([[float(f"{v:.7g}") for v in row] for row in X])  # as written
    y = np.array([int(float(c)) for c in cells])
    proba = binary.predict_proba(values)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, proba[:, 1] > binary.threshold), abs=1e-12)
    assert metrics["log_loss"] == pytest.approx(log_loss(y, proba.astype(np.float64)), rel=1e-9)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]), rel=1e-12)
    assert metrics["f1"] == pytest.approx(f1_score(y, proba[:, 1] > binary.threshold), rel=1e-12)


def test_evaluate_of_a_file_the_fast_parse_declines_is_the_exact_readers(tmp_path, binary_onnx):
    """CRLF lines and one quoted cell send the file to the exact reader: the same metrics to the bit as the
    clean file's; a label that is no class, or an empty one, says what it always said."""
    X, cells = _labelled_rows(2_000)
    clean = _write_labelled(tmp_path / "clean.csv", X, cells)
    quoted = _write_labelled(tmp_path / "quoted.csv", X, cells, newline="\r\n")
    text = quoted.read_text().replace(f",{cells[1500]}\r\n", f',"{cells[1500]}"\r\n', 1)
    quoted.write_text(text)

    def evaluate(path):
        return CliRunner().invoke(main, ["evaluate", str(binary_onnx), str(path), "--label", "y", "--json"])

    fast, exact = evaluate(clean), evaluate(quoted)
    assert fast.exit_code == 0 and exact.exit_code == 0, fast.output + exact.output
    assert json.loads(fast.stdout) == json.loads(exact.stdout)
    for cell, message in (("7", "label '7' is not one of the model's classes 0, 1"),
                          ("", "line 1802, column 'y': empty label")):
        bad = _write_labelled(tmp_path / "bad.csv", X, [*cells[:1800], cell, *cells[1801:]])
        result = evaluate(bad)
        assert result.exit_code == 1 and message in result.stderr, result.output


def test_runtime_and_predict_import_no_torch_or_onnx(binary_onnx, tmp_path):
    path = write_csv(tmp_path / "in.csv", ["f0", "f1", "f2", "f3", "f4"], [[1, 2, 3, 4, 5]])
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "import edgelr.runtime\n"
        "from edgelr.cli import main\n"
        f"r = CliRunner().invoke(main, ['predict', {str(binary_onnx)!r}, {str(path)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxscript')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_runtime_imports_no_other_edgelr_module():
    """runtime.py must work when copied alone next to a model."""
    import ast
    import inspect

    import edgelr.runtime

    tree = ast.parse(inspect.getsource(edgelr.runtime))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "json", "math", "os", "re", "_thread", "collections", "numpy", "onnxruntime"}


def test_pandas_dataframe_columns_by_name(binary):
    """A DataFrame is selected by column name: extra columns and any order are fine."""
    pd = pytest.importorskip("pandas", reason="pandas is optional on the device; the dev extra installs it")
    X, _ = make_data(2, n_rows=30, seed=9)
    frame = pd.DataFrame(X, columns=binary.feature_names)
    shuffled = frame[["f3", "f0", "f4", "f2", "f1"]].assign(row_id=range(30), note="x")
    np.testing.assert_array_equal(binary.predict_proba(shuffled), binary.predict_proba(X))
    with pytest.raises(PredictorError, match="the DataFrame: missing f1; expected the features"):
        binary.predict_proba(frame.drop(columns=["f1"]))


def test_finite_but_overflowing_features_are_an_error_not_nan(multiclass):
    X = np.zeros((3, 5), dtype=np.float32)
    X[2] = [3e38, -3e38, 3e38, -3e38, 3e38]  # finite in float32; the logits overflow to inf - inf
    raw = multiclass.session.run(None, {"features": X})[1]
    assert np.isnan(raw[2]).any() and np.isfinite(raw[:2]).all()  # what the graph alone would return
    with pytest.raises(PredictorError, match="row 2: feature values too large to score in float32"):
        multiclass.predict_proba(X)


# -- the hot path (issue 11): rows independent of the batch, non-finite inputs from NaN rows ---


@pytest.fixture(scope="module")
def imputing_onnx(tmp_path_factory) -> Path:
    """A numeric model trained with --impute mean on rows with empty cells."""
    tmp = tmp_path_factory.mktemp("impute")
    X, y = make_data(2, n_rows=400, seed=7)
    rows = [["" if (i + j) % 11 == 0 else repr(v) for j, v in enumerate(row)] + [label]
            for i, (row, label) in enumerate(zip(X.tolist(), y))]
    data = write_csv(tmp / "train.csv", ["f0", "f1", "f2", "f3", "f4", "target"], rows)
    runner = CliRunner()
    for args in (["train", str(data), "--impute", "mean", "--val-fraction", "0", "-o", str(tmp / "m.pt")],
                 ["export", str(tmp / "m.pt"), "-o", str(tmp / "m.onnx")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
    return tmp / "m.onnx"


@pytest.fixture(params=["binary", "multiclass"])
def predictor(request) -> Predictor:
    return Predictor(request.getfixturevalue(f"{request.param}_onnx"))


def saturating_rows(n: int, seed: int) -> np.ndarray:
    """Rows of which about a third lie far out: probabilities exactly 0 or 1 in float32."""
    X, _ = make_data(2, n_rows=n, seed=seed)
    rng = np.random.default_rng(seed)
    far = rng.random(n) < 0.3
    X[far] = X[far] * 400.0
    return X.astype(np.float32)


def split(predictor: Predictor, monkeypatch, chunk: int = 64, threads: int = 3) -> None:
    """The big-batch path on a small batch: chunks of ``chunk`` rows, pieces on ``threads`` threads."""
    monkeypatch.setattr(runtime, "_CHUNK_ROWS", chunk)
    monkeypatch.setattr(runtime, "_SPLIT_ROWS", 100)
    monkeypatch.setattr(predictor, "_threads", threads)


def test_rows_score_the_same_whatever_the_batch(predictor, monkeypatch):
    """Bit for bit: alone, in batches of any size, across the chunks and threads of a big batch."""
    split(predictor, monkeypatch)
    X = saturating_rows(1000, seed=1)
    whole = predictor.predict_proba(X)
    assert (whole == 0).any()  # some rows saturate
    labels = predictor.predict(X)
    alone = np.vstack([predictor.predict_proba(X[i:i + 1]) for i in range(0, 1000, 7)])
    np.testing.assert_array_equal(alone, whole[::7])
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, 1000), 25, replace=False))
    parts = np.split(np.arange(1000), cuts)
    np.testing.assert_array_equal(np.vstack([predictor.predict_proba(X[p]) for p in parts]), whole)
    np.testing.assert_array_equal(np.concatenate([predictor.predict(X[p]) for p in parts]), labels)
    both_labels, both = predictor.predict_with_proba(X)
    np.testing.assert_array_equal(both, whole)
    np.testing.assert_array_equal(both_labels, labels)


def test_small_batches_share_no_rows_between_calls_or_threads(predictor):
    """Batches under 16 rows run in a panel each thread reuses: earlier rows, bad ones too, change nothing."""
    X = saturating_rows(400, seed=2)
    whole = predictor.predict_proba(X)
    bad = X[:15].copy()
    bad[3, 1] = np.inf
    with pytest.raises(PredictorError, match="^row 3, feature"):
        predictor.predict_proba(bad)  # the panel now holds an infinity in row 3
    first = predictor.predict_proba(X[:2])
    np.testing.assert_array_equal(predictor.predict_proba(X[10:11]), whole[10:11])
    np.testing.assert_array_equal(first, whole[:2])  # its own array: the next call wrote the panel's outputs
    labels = predictor.predict(X)
    np.testing.assert_array_equal(np.concatenate([predictor.predict(X[i : i + 1]) for i in range(40)]), labels[:40])
    one_labels, one = predictor.predict_with_proba(X[7:12])
    np.testing.assert_array_equal(one_labels, labels[7:12])
    np.testing.assert_array_equal(one, whole[7:12])
    batches = [slice(i, min(400, i + 1 + i % 15)) for i in range(400)]  # 1 to 15 rows
    results: dict[int, list[np.ndarray]] = {}

    def score(start: int) -> None:
        results[start] = [predictor.predict_proba(X[rows]) for rows in batches[start::2]]

    threads = [threading.Thread(target=score, args=(start,)) for start in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for start in (0, 1):
        for rows, got in zip(batches[start::2], results[start]):
            np.testing.assert_array_equal(got, whole[rows])


@pytest.mark.parametrize("chunk", [None, 64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_named_in_saturated_and_ordinary_rows(predictor, monkeypatch, chunk, bad):
    if chunk:
        split(predictor, monkeypatch, chunk)  # 600 rows: 3 pieces of 200 rows on 3 threads, then 8 padded
    X = saturating_rows(608 + 5, seed=2)
    proba = predictor.predict_proba(X)  # saturated finite rows: no error
    saturated = np.flatnonzero((proba == 0).any(axis=1))
    ordinary = np.flatnonzero((proba > 1e-3).all(axis=1))
    assert saturated.size > 20 and ordinary.size > 20
    rows = (saturated[11], ordinary[13], saturated[-2], ordinary[-2], 205, 405, len(X) - 2)  # 205, 405: pieces 2, 3
    for row in rows:
        for col in (0, 4):
            Y = X.copy()
            Y[row, col] = bad
            Y[row + 1:, 2] = bad  # later bad cells: the first one is named
            with pytest.raises(PredictorError, match=rf"^row {row}, feature 'f{col}' is (nan|inf|-inf); expected "):
                predictor.predict_proba(Y)
            with pytest.raises(PredictorError, match=rf"^row {row}, feature 'f{col}'"):
                predictor.predict(Y)


def test_imputing_model_takes_nan_and_refuses_infinity(imputing_onnx, monkeypatch):
    predictor = Predictor(imputing_onnx)
    X = saturating_rows(300, seed=3)
    X[::5, 1] = np.nan  # missing: imputed in the graph
    for chunk in (None, 32):
        if chunk:
            monkeypatch.setattr(runtime, "_CHUNK_ROWS", chunk)
        proba = predictor.predict_proba(X)
        assert np.isfinite(proba).all()
        for row in (7, 250):
            Y = X.copy()
            Y[row, 3] = np.inf
            with pytest.raises(PredictorError, match=rf"^row {row}, feature 'f3' is inf"):
                predictor.predict_proba(Y)


def test_threads_bound_the_pieces_and_change_no_value(predictor, monkeypatch):
    X = saturating_rows(1000, seed=4)
    split(predictor, monkeypatch, threads=4)
    started = []
    start = runtime._thread.start_new_thread
    monkeypatch.setattr(runtime._thread, "start_new_thread", lambda *args: started.append(args) or start(*args))
    proba, labels = predictor.predict_proba(X), predictor.predict(X)
    assert len(started) == 2 * 3  # 4 pieces per call: the calling thread scores the first
    started.clear()
    monkeypatch.setattr(predictor, "_threads", 1)
    np.testing.assert_array_equal(predictor.predict_proba(X), proba)
    np.testing.assert_array_equal(predictor.predict(X), labels)
    assert not started


def test_finite_inputs_whose_logits_overflow_are_an_error(predictor):
    """An error exactly when the graph's logits overflow float32 (its output has NaN for the row)."""
    for values in ([3e38, -3e38, 3e38, -3e38, 3e38], [3e38] * 5, [-3e38] * 5, [1e30] * 5):
        X = np.zeros((40, 5), dtype=np.float32)
        X[33] = values
        raw = predictor.session.run(["probabilities"], {"features": X})[0]
        if np.isnan(raw[33]).any():
            with pytest.raises(PredictorError, match="^row 33: feature values too large to score in float32"):
                predictor.predict_proba(X)
        else:
            np.testing.assert_array_equal(predictor.predict_proba(X), raw)


@pytest.mark.parametrize("name", ["students-v0.1.0.onnx", "three-classes-v0.1.0.onnx", "students-v0.1.0.ort"])
def test_earlier_files_keep_the_exact_zero_check(name, monkeypatch):
    """Exported before edgelr.non_finite: a non-finite input still found, saturated rows still fine."""
    predictor = Predictor(REFERENCE / name)
    assert runtime.NAN_ROWS_KEY not in predictor.metadata
    rows = json.loads((REFERENCE / name.replace(".onnx", ".json").replace(".ort", ".json")).read_text())["rows"]
    X = np.asarray(rows, dtype=np.float32)
    X = np.vstack([X, X * 1e4, X * -1e4] * 30)  # far out: exact zeros
    for chunk in (None, 16):
        if chunk:
            split(predictor, monkeypatch, chunk)
        proba = predictor.predict_proba(X)
        assert (proba == 0).any()
        Y = X.copy()
        Y[len(X) - 5, 1] = np.inf
        with pytest.raises(PredictorError, match=rf"^row {len(X) - 5}, feature '{predictor.feature_names[1]}' is inf"):
            predictor.predict_proba(Y)


def test_export_marks_and_propagates_non_finite_rows(binary_onnx, multiclass_onnx):
    for path in (binary_onnx, multiclass_onnx):
        model = onnx.load(str(path))
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta[runtime.NAN_ROWS_KEY] == runtime.NAN_ROWS
        assert [o.name for o in model.graph.output] == ["label", "probabilities"]  # the contract's outputs only
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        X = np.ones((4, 5), dtype=np.float32)
        X[1, 0], X[2, 3], X[3] = np.inf, -np.inf, 1e5
        proba = session.run(["probabilities"], {"features": X})[0]
        assert np.isnan(proba[1:3]).all() and np.isfinite(proba[[0, 3]]).all()


def test_ort_format_keeps_non_finite_rows_nan(tmp_path, binary_checkpoint):
    """onnxruntime's full optimization (the .ort conversion) must not fold z + (z - z) away."""
    from edgelr.export import export_checkpoint

    result = export_checkpoint(binary_checkpoint, tmp_path / "m.onnx", ort_format=True)
    ort_path = next(p for p in map(Path, result.ort_paths) if p.suffix == ".ort")
    X = np.ones((3, 5), dtype=np.float32)
    X[1, 2] = np.inf
    proba = ort.InferenceSession(str(ort_path), providers=["CPUExecutionProvider"]).run(["probabilities"],
                                                                                         {"features": X})[0]
    assert np.isnan(proba[1]).all() and np.isfinite(proba[[0, 2]]).all()
    with pytest.raises(PredictorError, match="^row 1, feature 'f2' is inf"):
        Predictor(ort_path).predict_proba(X)
