"""Real tables through the CLI (issue 10): text columns and missing values, encoded in the graph.

The reference is spec section 2's scikit-learn pipeline (ColumnTransformer of
SimpleImputer + StandardScaler and OneHotEncoder, then LogisticRegression), fitted on the
same rows read by pandas; the exported file is run by a plain onnxruntime session on
raw values. The real data set is palmerpenguins' table (it ships in the PyPI package):
three species, text columns island and sex, and empty cells in five columns.
"""

from __future__ import annotations

import csv
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.metrics import log_loss

from edgelr.checkpoint import load_checkpoint
from edgelr.cli import main
from edgelr.estimator import LogisticRegression
from edgelr.runtime import Predictor, PredictorError
from tests.conftest import TABLE_NUMERIC, TABLE_TEXT, make_table, onnx_inputs, sklearn_table_pipeline, write_csv

PENGUINS = Path(str(importlib.resources.files("palmerpenguins") / "data" / "penguins.csv"))


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args: object) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


def train_export(tmp_path: Path, data: Path, *flags: object, name: str = "m") -> Path:
    """``edgelr train`` on every row, then ``edgelr export``; the ONNX path."""
    ok("train", data, "--val-fraction", "0", "-o", tmp_path / f"{name}.pt", *flags)
    ok("export", tmp_path / f"{name}.pt", "-o", tmp_path / f"{name}.onnx", "--data", data)
    return tmp_path / f"{name}.onnx"


def session_proba(model: Path, frame: pd.DataFrame, numeric: list[str], text: list[str]) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], onnx_inputs(frame, numeric, text))[0].astype(np.float64)


def assert_matches_sklearn(model: Path, frame: pd.DataFrame, label: str, impute: str, indicator: bool) -> None:
    X, y = frame.drop(columns=[label]), frame[label]
    reference = sklearn_table_pipeline(impute, indicator).fit(X, y)
    numeric = [c for c in X.columns if X[c].dtype.kind in "biuf"]
    text = [c for c in X.columns if c not in numeric]
    assert Predictor(model).feature_names == numeric and Predictor(model).categorical_names == text
    p_ref = reference.predict_proba(X)
    p = session_proba(model, X, numeric, text)
    assert np.abs(p - p_ref).max() < 1e-3
    # float32 rows sum to 1 within ~1e-7; scikit-learn warns unless they are renormalized
    p_norm = p / p.sum(axis=1, keepdims=True)
    assert log_loss(y, p_norm, labels=reference.classes_) == pytest.approx(log_loss(y, p_ref), rel=1e-4)


# -- the same optimum as scikit-learn's ColumnTransformer pipeline --------------------------


@pytest.mark.parametrize(("n_classes", "impute", "indicator"),
                         [(2, "mean", False), (2, "median", True), (3, "mean", True), (3, "median", False)])
def test_generated_table_matches_sklearn_column_transformer(tmp_path, n_classes, impute, indicator):
    frame = make_table(n_classes=n_classes, seed=n_classes)
    data = tmp_path / "table.csv"
    frame.to_csv(data, index=False)
    flags = ["--impute", impute, *(["--missing-indicator"] if indicator else [])]
    assert_matches_sklearn(train_export(tmp_path, data, *flags), frame, "label", impute, indicator)


def test_penguins_species_three_classes(tmp_path):
    model = train_export(tmp_path, PENGUINS, "--label", "species", "--impute", "median", "--missing-indicator")
    assert_matches_sklearn(model, pd.read_csv(PENGUINS), "species", "median", True)
    assert "island (3 categories: Biscoe, Dream, Torgersen)" in ok("info", model)


def test_penguins_sex_binary(tmp_path):
    frame = pd.read_csv(PENGUINS).dropna(subset=["sex"])  # a label is never missing
    data = tmp_path / "penguins_sex.csv"
    frame.to_csv(data, index=False)
    model = train_export(tmp_path, data, "--label", "sex", "--impute", "mean")
    assert_matches_sklearn(model, frame, "sex", "mean", False)


# -- the graph on raw values: plain onnxruntime == edgelr predict == a hand computation ----


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("table")
    frame = make_table(n_rows=1500, n_classes=2, seed=4)
    data = tmp / "table.csv"
    frame.to_csv(data, index=False)
    return train_export(tmp, data, "--impute", "median", "--missing-indicator"), frame


def odd_rows() -> pd.DataFrame:
    """Rows with unseen categories, missing cells of every kind, and ordinary ones."""
    return pd.DataFrame({
        "a": [0.5, np.nan, 1.0, np.nan, -1.0],
        "b": [5.0, 7.0, np.nan, 3.0, 4.0],
        "c": [-3.0, 10.0, 0.0, np.nan, 2.0],
        "d": [1000.0, 1000.1, 999.9, 1000.0, 1000.05],
        "color": ["red", "purple", np.nan, "blue", "white"],  # purple: never seen
        "city": ["city07", "city01", "atlantis", np.nan, "city59"],  # atlantis: never seen
        "size": ["S", np.nan, "XXL", "M", "L"],
    })


def test_raw_onnxruntime_equals_edgelr_predict_with_unseen_and_missing(tmp_path, table_model):
    model, _ = table_model
    rows = odd_rows()
    p_session = session_proba(model, rows, TABLE_NUMERIC, TABLE_TEXT)
    rows.assign(id=range(5)).to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "scores.csv"
    ok("predict", model, tmp_path / "rows.csv", "-o", out)
    scored = pd.read_csv(out)
    np.testing.assert_allclose(scored[["probability_0", "probability_1"]].to_numpy(), p_session, rtol=1e-6)
    predictor = Predictor(model)
    np.testing.assert_array_equal(predictor.predict_proba(rows), p_session.astype(np.float32))
    by_mapping = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
                  for row in rows.to_dict("records")]
    np.testing.assert_array_equal(predictor.predict_proba(by_mapping), p_session.astype(np.float32))


def test_unseen_categories_score_as_zeros_by_hand(table_model):
    """The logit from the checkpoint's coefficients: imputed, standardized numbers, then
    the categories' coefficients, none for an unseen value (missing: its own category)."""
    model, frame = table_model
    state = load_checkpoint(model.with_suffix(".pt"))
    enc = state["encoding"]
    w, b = state["weight"][0].double().numpy(), float(state["bias"][0])
    mean, scale = state["mean"].numpy(), state["scale"].numpy()
    rows = odd_rows()
    medians = frame[TABLE_NUMERIC].median().to_numpy()
    names = [f"{c}={v}" for c, cats in zip(TABLE_TEXT, enc["categories"]) for v in cats]
    logits = []
    for _, row in rows.iterrows():
        x = row[TABLE_NUMERIC].to_numpy(dtype=float)
        missing = np.isnan(x)
        design = np.r_[np.where(missing, medians, x), missing[enc["indicators"]]]
        z = b + w[: design.size] @ ((design - mean) / scale)
        for col in TABLE_TEXT:
            value = "" if pd.isna(row[col]) else row[col]
            if f"{col}={value}" in names:
                z += w[design.size + names.index(f"{col}={value}")]
        logits.append(z)
    p = session_proba(model, rows, TABLE_NUMERIC, TABLE_TEXT)[:, 1]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-np.array(logits))), atol=1e-5)


# -- every training path gives the same model -------------------------------------------


@pytest.fixture(scope="module")
def gappy_csv(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    frame = make_table(n_rows=5000, n_classes=3, seed=9)
    path = tmp_path_factory.mktemp("paths") / "gappy.csv"
    frame.to_csv(path, index=False)
    return path, frame


def proba_of(checkpoint: Path, frame: pd.DataFrame) -> np.ndarray:
    return LogisticRegression.load(checkpoint).predict_proba(frame.drop(columns=["label"]))


@pytest.mark.parametrize("impute", ["mean", "median"])
def test_streamed_equals_in_memory_with_text_and_gaps(tmp_path, gappy_csv, impute):
    path, frame = gappy_csv
    flags = ["--impute", impute, "--missing-indicator"]
    ok("train", path, "-o", tmp_path / "mem.pt", *flags)
    out = ok("train", path, "-o", tmp_path / "str.pt", "--memory-budget", "200kB", *flags)
    assert "streamed from a disk cache" in out
    assert np.abs(proba_of(tmp_path / "mem.pt", frame) - proba_of(tmp_path / "str.pt", frame)).max() < 1e-4
    mem, streamed = load_checkpoint(tmp_path / "mem.pt"), load_checkpoint(tmp_path / "str.pt")
    # Medians are exact on either path; means are sums in another order.
    np.testing.assert_allclose(mem["encoding"]["fill"], streamed["encoding"]["fill"], rtol=0 if impute == "median"
                               else 1e-12)
    assert mem["encoding"]["categories"] == streamed["encoding"]["categories"]


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is installed with torch; this environment has no torchrun script")
def test_torchrun_two_ranks_equal_one_process_with_text_and_gaps(tmp_path, gappy_csv):
    path, frame = gappy_csv
    flags = ["--impute", "median", "--missing-indicator"]
    ok("train", path, "-o", tmp_path / "one.pt", *flags)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    for extra, name in (([], "ddp.pt"), (["--memory-budget", "200kB"], "ddp_streamed.pt")):
        result = subprocess.run(
            [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "edgelr", "train", str(path),
             "-o", str(tmp_path / name), "--json", *flags, *extra],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr[-2000:]
        assert json.loads(result.stdout.strip().splitlines()[-1])["world_size"] == 2
        assert np.abs(proba_of(tmp_path / "one.pt", frame) - proba_of(tmp_path / name, frame)).max() < 1e-4
        assert load_checkpoint(tmp_path / name)["encoding"]["fill"] == load_checkpoint(tmp_path / "one.pt")[
            "encoding"]["fill"]


def test_python_api_on_a_dataframe_equals_the_cli(tmp_path, gappy_csv):
    path, frame = gappy_csv
    ok("train", path, "--val-fraction", "0", "--impute", "mean", "-o", tmp_path / "cli.pt")
    api = LogisticRegression(impute="mean", device="cpu").fit(frame.drop(columns=["label"]), frame["label"])
    X = frame.drop(columns=["label"])
    assert np.abs(api.predict_proba(X) - proba_of(tmp_path / "cli.pt", frame)).max() < 1e-4
    assert list(api.feature_names_in_) == TABLE_NUMERIC + TABLE_TEXT
    assert api.coef_.shape == (3, 4 + 5 + 60 + 4 + 2)  # color and size have a missing category
    assert api.design_names_[4] == "color=black" and api.categories_["size"][-1] == ""


def test_categorical_codes_are_one_hot(tmp_path):
    """Numbers used as codes (a zip code) read as categories with --categorical / categorical=."""
    rng = np.random.default_rng(1)
    zips = rng.choice([10115, 20095, 80331], 600)
    x = rng.normal(size=600)
    y = ((zips == 20095) + x + rng.logistic(size=600) > 0.5).astype(int)
    data = write_csv(tmp_path / "zips.csv", ["zip", "x", "y"], zip(zips, x, y))
    model = train_export(tmp_path, data, "--categorical", "zip")
    predictor = Predictor(model)
    assert predictor.feature_names == ["x"] and predictor.categories == {"zip": ["10115", "20095", "80331"]}
    frame = pd.DataFrame({"zip": zips, "x": x})
    api = LogisticRegression(categorical=["zip"], device="cpu").fit(frame, y)
    np.testing.assert_allclose(predictor.predict_proba(frame), api.predict_proba(frame), atol=1e-5)


# -- bad input: one line naming file, line and column -------------------------------------


HEADER = ["a", "b", "label"]
BAD_TABLES = {
    "mixed column": ([[1, "x", 0], [2, "3", 1]], [], ["line 3", "column 'b'", "got 'x'", "--categorical b"]),
    "missing number": ([[1, 2, 0], [2, "", 1]], [], ["line 3", "column 'b'", "empty cell", "--impute"]),
    "missing text": ([[1, "x", 0], [2, "NA", 1]], [], ["line 3", "column 'b'", "missing cell 'NA'", "--impute"]),
    "underscore number": ([[1, 2, 0], [2, "1_000", 1]], [], ["line 3", "column 'b'", "got '1_000'"]),
    "arabic-indic digits": ([[1, 2, 0], [2, "\u0661\u0662", 1]], [], ["line 3", "column 'b'", "got '\u0661\u0662'"]),
    "overflowing number": ([[1, 2, 0], [2, "1e400", 1]], [], ["line 3", "column 'b'", "got '1e400' (not finite)"]),
    "too many categories": ([[1, f"id{i}", i % 2] for i in range(6)], ["--max-categories", "4"],
                            ["line 6", "column 'b'", "more than 4 distinct values", "looks like an id column"]),
    "all cells missing": ([[1, "", 0], [2, "NA", 1]], ["--impute", "mean"], ["column 'b'", "every cell is missing"]),
    "unknown categorical": ([[1, 2, 0], [2, 3, 1]], ["--categorical", "zip"], ["--categorical names 'zip'"]),
    "indicator without impute": ([[1, 2, 0], [2, 3, 1]], ["--missing-indicator"], ["--impute mean|median"]),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_tables_are_one_error_line(tmp_path, case):
    rows, flags, fragments = BAD_TABLES[case]
    path = write_csv(tmp_path / "bad.csv", HEADER, rows)
    result = run("train", path, "-o", tmp_path / "m.pt", *flags)
    assert result.exit_code == 1, result.output
    line = result.output.strip()
    assert line.startswith("Error: ") and "\n" not in line and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in line
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("memory_budget", [[], ["--memory-budget", "1kB"]])
def test_streamed_reading_names_the_same_problems(tmp_path, memory_budget):
    rows = [[i, "x" if i % 2 else "y", i % 2] for i in range(3000)] + [[1, 5, 0]]
    path = write_csv(tmp_path / "late.csv", HEADER, rows)
    result = run("train", path, "-o", tmp_path / "m.pt", *memory_budget)
    assert result.exit_code == 1
    assert "line 2, column 'b': got 'y' in a column that also holds numbers (line 3002: '5')" in result.output


def test_predict_names_bad_cells_of_a_text_model(tmp_path, table_model):
    model, _ = table_model
    header = [*TABLE_NUMERIC, *TABLE_TEXT]
    word = write_csv(tmp_path / "word.csv", header, [[1, "many", 3, 4, "red", "city01", "S"]])
    result = run("predict", model, word)
    assert result.exit_code == 1 and "line 2, column 'b': got 'many'; expected a number" in result.output


def test_models_without_imputation_refuse_missing_numbers(tmp_path, binary_onnx):
    rows = write_csv(tmp_path / "rows.csv", ["f0", "f1", "f2", "f3", "f4"], [[1, 2, 3, 4, 5], [1, "", 3, 4, 5]])
    result = run("predict", binary_onnx, rows)
    assert result.exit_code == 1
    assert "line 3, column 'f1': empty cell" in result.output and "trained without --impute" in result.output
    with pytest.raises(PredictorError, match="row 0, feature 'f1' is nan; .*trained without --impute"):
        Predictor(binary_onnx).predict_proba([[1, np.nan, 3, 4, 5]])


def test_predictor_inputs_of_a_text_model(table_model):
    model, _ = table_model
    predictor = Predictor(model)
    with pytest.raises(PredictorError, match="takes rows by column name"):
        predictor.predict_proba([[1, 2, 3, 4]])
    row = odd_rows().iloc[0].to_dict()
    with pytest.raises(PredictorError, match="row 0: missing city"):
        predictor.predict_proba([{k: v for k, v in row.items() if k != "city"}])
    with pytest.raises(PredictorError, match="row 0, feature 'a' is 'high'; expected a number"):
        predictor.predict_proba([{**row, "a": "high"}])
    with pytest.raises(PredictorError, match="row 0, feature 'b' is inf"):
        predictor.predict_proba([{**row, "b": float("inf")}])
    assert predictor.predict([row]).shape == (1,)


def test_info_and_model_card_show_text_columns(tmp_path, table_model):
    model, frame = table_model
    text = ok("info", model.with_suffix(".pt"))
    assert "text        3: color (6 categories: black, blue, green, red, white, (missing))" in text
    assert "numbers filled with the training median" in text
    data = tmp_path / "labelled.csv"
    frame.to_csv(data, index=False)
    ok("report", model.with_suffix(".pt"), data, "-o", tmp_path / "report")
    card = (tmp_path / "report" / "model_card.md").read_text()
    assert "| city | 60: `city00`, `city01`" in card and "take the training median" in card
    assert '"color": "black"' in card  # the device example feeds text values too
    metrics = json.loads(ok("evaluate", model, data, "--label", "label", "--json"))
    assert metrics["accuracy"] > 0.7
    assert "text        3: color (6 categories" in ok("evaluate", model, data, "--label", "label")


def test_csv_text_cells_keep_their_spelling(tmp_path):
    """Text values are compared as written (quotes, commas, spaces inside), as pandas reads them."""
    rows = [[i % 7, ["a, b", " c", "d"][i % 3], (i % 3 == 0) ^ (i % 5 == 0)] for i in range(300)]
    path = tmp_path / "quoted.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *rows])
    model = train_export(tmp_path, path)
    assert Predictor(model).categories == {"b": [" c", "a, b", "d"]}


def test_pandas_reader_of_text_tables_equals_the_exact_reader(tmp_path, monkeypatch):
    """Tables with text columns and gaps are parsed by pandas as strings, then classified; the
    exact reader (Python's csv module, which names any problem) is the reference."""
    import edgelr.data as data

    frame = make_table(n_rows=2000, n_classes=3, seed=12)
    frame.insert(7, "code", np.arange(2000) % 7 + 100)  # numbers used as codes: --categorical
    frame.loc[3, "city"] = " padded, with a comma "
    frame["b"] = frame["b"].astype(object)
    frame.loc[5, "b"] = " NA "  # a missing token with spaces around it
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    options = data.ReadOptions(impute=True, categorical=("code",))
    fast = data.read_csv(path, options=options)
    monkeypatch.setattr(data, "_read_table_pandas", lambda *args: None)
    exact = data.read_csv(path, options=options)
    np.testing.assert_array_equal(fast.X, exact.X)
    assert fast.kinds == exact.kinds == ["numeric"] * 4 + ["text"] * 4
    assert fast.vocab == exact.vocab and fast.classes == exact.classes
    np.testing.assert_array_equal(fast.y, exact.y)
    assert np.isnan(fast.X[5, 1]) and " padded, with a comma " in fast.vocab["city"]
