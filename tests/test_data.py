"""edgelr.data: reading CSVs, labels, standardization and the stratified split (spec section 2)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.preprocessing import StandardScaler

from edgelr.data import encode_labels, read_csv, read_features, stratified_split, students
from edgelr.encoding import EncodingSpec, Layout
from edgelr.errors import DataError
from edgelr.rows import encode_in_memory


def csv_file(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    """Write ``text`` verbatim (header included) and return the path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def where(path: Path, line: int | None = None, column: str | None = None) -> str:
    """The regex for the 'file, line N, column 'c'' prefix of a DataError message."""
    text = str(path)
    if line is not None:
        text += f", line {line}"
    if column is not None:
        text += f", column '{column}'"
    return re.escape(text)


# -- reading ---------------------------------------------------------------------------


def test_default_label_is_last_column_and_features_the_rest(tmp_path):
    path = csv_file(tmp_path, "a,b,y\n1,2,0\n3,4.5,1\n-1,0,1\n")
    data = read_csv(path)
    assert data.label_name == "y"
    assert data.feature_names == ["a", "b"]
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4.5], [-1, 0]])
    assert data.X.dtype == np.float64
    assert data.classes == [0, 1]
    np.testing.assert_array_equal(data.y, [0, 1, 1])
    assert data.n_rows == 3


def test_label_option_picks_a_middle_column(tmp_path):
    path = csv_file(tmp_path, "a,y,b\n1,no,2\n3,yes,4\n")
    data = read_csv(path, label="y")
    assert data.feature_names == ["a", "b"]
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4]])
    assert data.classes == ["no", "yes"]


def test_features_option_selects_columns_in_the_given_order(tmp_path):
    path = csv_file(tmp_path, "a,b,c,y\n1,2,3,0\n4,5,6,1\n")
    data = read_csv(path, features=["c", "a"])
    assert data.feature_names == ["c", "a"]
    np.testing.assert_array_equal(data.X, [[3, 1], [6, 4]])


def test_numeric_labels_are_ints_sorted_numerically(tmp_path):
    path = csv_file(tmp_path, "x,y\n1,2\n2,10\n3,9\n4,2\n")
    data = read_csv(path)
    assert data.classes == [2, 9, 10]
    assert all(type(c) is int for c in data.classes)
    np.testing.assert_array_equal(data.y, [0, 2, 1, 0])


def test_string_labels_are_sorted(tmp_path):
    path = csv_file(tmp_path, "x,y\n1,virginica\n2,setosa\n3,versicolor\n4,setosa\n")
    data = read_csv(path)
    assert data.classes == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(data.y, [2, 0, 1, 0])


def test_float_spelled_integral_labels_become_ints(tmp_path):
    path = csv_file(tmp_path, "x,y\n1,1.0\n2,0.0\n3,1.0\n")
    data = read_csv(path)
    assert data.classes == [0, 1]
    assert all(type(c) is int for c in data.classes)
    np.testing.assert_array_equal(data.y, [1, 0, 1])


def test_utf8_bom_and_header_spaces_are_tolerated(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffa , b,y\n1,2,0\n3,4,1\n".encode())
    assert read_csv(path).feature_names == ["a", "b"]


def test_blank_trailing_lines_are_not_rows(tmp_path):
    path = csv_file(tmp_path, "x,y\n1,0\n2,1\n\n\n")
    assert read_csv(path).n_rows == 2


def test_students_is_the_tutorial_table():
    data = students()
    np.testing.assert_array_equal(data.X, [[1, 2], [2, 3], [3, 1], [4, 3], [5, 3], [6, 2]])
    np.testing.assert_array_equal(data.y, [0, 0, 0, 1, 1, 1])
    assert data.classes == [0, 1]
    assert len(data.feature_names) == 2


def test_read_features_picks_columns_by_name_and_ignores_the_rest(tmp_path):
    path = csv_file(tmp_path, "id,b,a,extra\n7,2,1,x\n8,4,3,y\n")
    X = read_features(path, ["a", "b"])
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


def test_read_features_missing_column(tmp_path):
    path = csv_file(tmp_path, "a,b\n1,2\n")
    with pytest.raises(DataError, match=f"{where(path)}.*'c' not found"):
        read_features(path, ["a", "c"])


# -- labels through the Python API -----------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "classes", "y"),
    [
        ([10, 2, 9, 2], [2, 9, 10], [2, 0, 1, 0]),
        (["b", "a", "b"], ["a", "b"], [1, 0, 1]),
        (np.array([1.5, 0.5, 1.5]), [0.5, 1.5], [1, 0, 1]),
        (np.array(["x", "y"], dtype=object), ["x", "y"], [0, 1]),
    ],
)
def test_encode_labels_sorts_classes(labels, classes, y):
    got_classes, got_y = encode_labels(labels, where="y")
    assert got_classes == classes
    assert all(not isinstance(c, np.generic) for c in got_classes)  # plain JSON-able values
    np.testing.assert_array_equal(got_y, y)
    assert got_y.dtype == np.int64


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([1, 1, 1], "only one class: 1"),
        ([0.0, np.nan, 1.0], "NaN or infinity"),
        ([0.0, np.inf, 1.0], "NaN or infinity"),
        (np.array([0, "a", 1], dtype=object), "mix numbers and strings"),
        ([0, "a", 1], "mix numbers and strings"),
        ([[0, 1], [1, 0]], r"1-D .* shape \(2, 2\)"),
    ],
)
def test_encode_labels_rejects(labels, message):
    with pytest.raises(DataError, match=f"^y: .*{message}"):
        encode_labels(labels, where="y")


def test_estimator_fit_reports_bad_labels_via_the_api_path():
    from edgelr import LogisticRegression

    with pytest.raises(DataError, match="y: .*only one class"):
        LogisticRegression(device="cpu").fit([[0.0], [1.0]], ["a", "a"])


# -- standardization -------------------------------------------------------------------


def fitted_rows(X):
    """Standardize X as fit() does: moments and the float32 copy in one pass; (rows, mean, scale)."""
    layout = Layout.numeric([f"x{i}" for i in range(X.shape[1])])
    rows, encoding = encode_in_memory(X, layout, EncodingSpec(), np.zeros(X.shape[0], dtype=np.int64), None,
                                      torch.device("cpu"))
    return rows, encoding.mean, encoding.scale


def test_standardization_matches_standard_scaler():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)) * [1, 10, 1e-3, 1e4] + [0, -5, 3, 1e6]
    _, mean, scale = fitted_rows(X)
    ref = StandardScaler().fit(X)
    np.testing.assert_allclose(mean, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(scale, ref.scale_, rtol=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_standardized_copy_keeps_float32_precision(threads):
    """A mean far from 0 with a small spread, drifting along the file (the pilot mean is off
    by many spreads at any one place): the float32 copy still matches StandardScaler's
    float64 transform to float32 resolution, with one thread and with two."""
    rng = np.random.default_rng(1)
    n = 300_000  # several chunks
    X = np.column_stack([1e6 + rng.normal(size=n) * 1e-2 + np.linspace(0, 0.5, n),
                         rng.normal(size=n) * 1e4, np.full(n, 3.0)])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows, _, _ = fitted_rows(X)
    finally:
        torch.set_num_threads(before)
    ref = StandardScaler().fit_transform(X)
    assert rows.X.dtype == torch.float32
    np.testing.assert_allclose(rows.X.numpy(), ref, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(ref).max())


def test_standardization_names_the_first_non_finite_cell():
    X = np.ones((100_000, 3))
    X[70_001, 2] = np.nan
    with pytest.raises(DataError, match="row 70001, column 2 is NaN"):
        fitted_rows(X)


@pytest.mark.parametrize("value", [0.0, 7.0, 0.1, 1e6 + 0.1])
def test_constant_column_gets_scale_one(value):
    """Like StandardScaler: a constant column, even one whose mean rounds, gets scale 1."""
    X = np.column_stack([np.full(10, value), np.arange(10.0)])
    _, mean, scale = fitted_rows(X)
    ref = StandardScaler().fit(X)
    np.testing.assert_allclose(mean, ref.mean_)
    np.testing.assert_array_equal(scale, ref.scale_)
    assert scale[0] == 1.0


# -- stratified split ------------------------------------------------------------------


def test_split_keeps_class_proportions():
    y = np.array([0] * 50 + [1] * 10 + [2] * 20)
    train, val = stratified_split(y, 0.2, seed=0)
    assert np.bincount(y[val]).tolist() == [10, 2, 4]
    assert np.bincount(y[train]).tolist() == [40, 8, 16]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(y.size))


def test_split_keeps_at_least_one_training_row_per_class():
    y = np.array([0] * 20 + [1])
    train, val = stratified_split(y, 0.9, seed=0)
    assert 20 in train
    assert 20 not in val


def test_split_is_reproducible_by_seed():
    y = np.repeat([0, 1], 50)
    a = stratified_split(y, 0.3, seed=42)
    b = stratified_split(y, 0.3, seed=42)
    c = stratified_split(y, 0.3, seed=43)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_split_fraction_zero_has_no_validation_rows():
    y = np.repeat([0, 1, 2], 5)
    train, val = stratified_split(y, 0.0, seed=0)
    assert val.size == 0
    np.testing.assert_array_equal(train, np.arange(y.size))


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_rejects_fraction_out_of_range(fraction):
    with pytest.raises(DataError, match=r"--val-fraction must be in \[0, 1\)"):
        stratified_split(np.array([0, 1]), fraction, seed=0)


# -- bad input: every message names the file, and the line and column where there is one -


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("a,b,y\n1,2,0\n3,abc,1\n", 3, "b", "got 'abc'"),
        ("a,b,y\n1,2,0\n,4,1\n", 3, "a", "empty cell"),
        ("a,b,y\n1,2,0\n3, ,1\n", 3, "b", "empty cell"),
        ("a,b,y\n1,nan,0\n3,4,1\n", 2, "b", "missing cell 'nan'; expected a value, or --impute"),
        ("a,b,y\n1,2,0\n3,4,1\n-inf,4,0\n", 4, "a", "not finite"),
        ("a,b,y\n1,2,0\n3,infinity,1\n", 3, "b", "not finite"),
        ("a,b,y\n1,2,0\n3,4,\n", 3, "y", "empty label"),
    ],
)
def test_bad_cell_names_file_line_and_column(tmp_path, text, line, column, problem):
    path = csv_file(tmp_path, text)
    with pytest.raises(DataError, match=f"^{where(path, line, column)}: .*{problem}"):
        read_csv(path)


def test_nan_label_is_an_error_not_a_string_class(tmp_path):
    """A 'nan' among numeric labels must not silently turn every class into a string."""
    path = csv_file(tmp_path, "a,y\n1,0\n2,1\n3,nan\n")
    with pytest.raises(DataError, match=f"^{where(path)}.*line 4.*column 'y'"):
        read_csv(path)


@pytest.mark.parametrize(
    ("text", "line", "fields"),
    [
        ("a,b,y\n1,2,0\n3,4,1,9\n", 3, 4),
        ("a,b,y\n1,2,0\n5,6,1\n3,4\n", 4, 2),
    ],
)
def test_ragged_row_names_file_and_line(tmp_path, text, line, fields):
    path = csv_file(tmp_path, text)
    with pytest.raises(DataError, match=f"^{where(path, line)}: {fields} fields, expected 3"):
        read_csv(path)


def test_missing_label_column(tmp_path):
    path = csv_file(tmp_path, "a,b\n1,0\n2,1\n")
    with pytest.raises(DataError, match=f"^{where(path)}: label column 'target' not found; the header has: a, b"):
        read_csv(path, label="target")


def test_missing_feature_column(tmp_path):
    path = csv_file(tmp_path, "a,b,y\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError, match=f"^{where(path)}: feature column 'zz' not found"):
        read_csv(path, features=["a", "zz"])


def test_label_listed_as_a_feature(tmp_path):
    path = csv_file(tmp_path, "a,b,y\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError, match=f"^{where(path)}: column 'y' is both the label and a feature"):
        read_csv(path, features=["a", "y"])


def test_one_class_only(tmp_path):
    path = csv_file(tmp_path, "a,y\n1,yes\n2,yes\n")
    with pytest.raises(DataError, match=f"^{where(path, column='y')}: .*only one class: yes"):
        read_csv(path)


def test_header_but_no_rows(tmp_path):
    path = csv_file(tmp_path, "a,b,y\n")
    with pytest.raises(DataError, match=f"^{where(path)}: the header has no data rows"):
        read_csv(path)


@pytest.mark.parametrize("text", ["", "\n", " , \n"])
def test_empty_file(tmp_path, text):
    path = csv_file(tmp_path, text)
    with pytest.raises(DataError, match=f"^{where(path)}: the file is empty"):
        read_csv(path)


def test_duplicate_header_names(tmp_path):
    path = csv_file(tmp_path, "a,b,a,y\n1,2,3,0\n4,5,6,1\n")
    with pytest.raises(DataError, match=f"^{where(path, 1)}: duplicate column names in the header: a$"):
        read_csv(path)


@pytest.mark.parametrize("line", [1, 3])
def test_non_utf8_bytes_name_the_line(tmp_path, line):
    lines = [b"a,b,y", b"1,2,0", b"3,4,1"]
    lines[line - 1] = lines[line - 1].replace(b"1", b"\xff", 1).replace(b"a", b"\xe9", 1)
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataError, match=f"^{where(path, line)}: not UTF-8 text"):
        read_csv(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=f"^{where(path)}: no such file"):
        read_csv(path)


def test_numeric_fast_path_matches_pandas_and_the_exact_reader(tmp_path, monkeypatch):
    """All-numeric files take numpy's C parser; pandas is the independent reference."""
    import pandas as pd

    import edgelr.data as data

    rng = np.random.default_rng(7)
    X = rng.normal(size=(3000, 4)) * [1, 1e3, 1e-3, 7]
    path = tmp_path / "big.csv"
    path.write_text("a,b,c,d,label\n" + "".join(f"{r[0]!r},{r[1]!r},{r[2]!r},{r[3]!r},{i % 3}.0\n"
                                                for i, r in enumerate(X.tolist())))
    fast = read_csv(path)
    reference = pd.read_csv(path)
    np.testing.assert_array_equal(fast.X, reference[["a", "b", "c", "d"]].to_numpy())
    assert fast.classes == [0, 1, 2] and all(isinstance(c, int) for c in fast.classes)
    np.testing.assert_array_equal(fast.y, reference["label"].to_numpy().astype(int))
    monkeypatch.setattr(data, "_all_numeric", data._all_numeric_numpy)  # an install without pandas
    numpy_path = read_csv(path)
    np.testing.assert_array_equal(numpy_path.X, fast.X)
    monkeypatch.setattr(data, "_all_numeric", lambda path, width, **_: None)  # force the exact reader
    exact = read_csv(path)
    np.testing.assert_array_equal(exact.X, fast.X)
    assert exact.classes == fast.classes == numpy_path.classes


@pytest.mark.parametrize("body,match", [
    ("1,2,0\n3,4,1,9\n", "line 3: 4 fields, expected 3"),
    ("1,2,0\n3,nan,1\n", "line 3, column 'b': missing cell 'nan'"),
    ("1,2,0\n3,inf,1\n", "line 3, column 'b': got 'inf' \\(not finite\\)"),
    ("1,2,0\n3,,1\n", "line 3, column 'b': empty cell"),
])
@pytest.mark.parametrize("reader", ["pandas", "numpy"])
def test_fast_path_failures_still_name_line_and_column(tmp_path, monkeypatch, body, match, reader):
    import edgelr.data as data

    if reader == "numpy":
        monkeypatch.setattr(data, "_all_numeric", data._all_numeric_numpy)
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n" + body)
    with pytest.raises(DataError, match=match):
        read_csv(path)


def test_rows_one_field_longer_than_the_header_are_an_error(tmp_path):
    """pandas would read the extra field as a row index and shift every column: never a model."""
    path = tmp_path / "shifted.csv"
    path.write_text("a,b,y\n1,2,0,7\n3,4,1,8\n5,6,0,9\n")
    with pytest.raises(DataError, match="line 2: 4 fields, expected 3 as in the header"):
        read_csv(path)


# -- one rank's share of a file ---------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("trailing", [True, False])
@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_shares_of_a_file_are_its_rows_in_order(tmp_path, newline, trailing, parts):
    """Byte ranges cut at line ends: the parts, in order, are the exact reader's rows,
    whatever the line ends, a BOM, or a last line without its newline."""
    from edgelr.data import read_numeric_share

    lines = ["a,b,label,c"] + [f"{i}.25,{-i * 3},{i % 3},{i * 1e-3:.6f}" for i in range(1, 40)]
    path = tmp_path / "data.csv"
    path.write_bytes(("\ufeff" + newline.join(lines) + (newline if trailing else "")).encode("utf-8"))
    full = read_csv(path, label="label", features=["c", "a"])
    got = [read_numeric_share(path, label="label", features=["c", "a"], part=k, parts=parts) for k in range(parts)]
    assert all(g[:2] == (["c", "a"], "label") for g in got)
    np.testing.assert_array_equal(np.concatenate([g[2] for g in got]), full.X)
    np.testing.assert_array_equal(np.concatenate([g[3] for g in got]), np.asarray(full.classes)[full.y])
    sizes = [g[2].shape[0] for g in got]
    assert max(sizes) - min(sizes) <= 2  # about equal bytes, so about equal rows


@pytest.mark.parametrize("text", [
    "a,label\n1,x\n2,y\n3,x\n4,y\n",  # text labels: the exact reader makes the classes
    "a,label\n1,0\n2,\n3,1\n4,0\n",  # an empty cell: the exact reader names it
    "a,label\n1,0\n",  # fewer rows than parts
])
def test_shares_fall_back_to_the_exact_reader(tmp_path, text):
    from edgelr.data import read_numeric_share

    path = csv_file(tmp_path, text)
    assert any(read_numeric_share(path, label=None, features=None, part=k, parts=2) is None for k in range(2))


@pytest.mark.parametrize("parts", [1, 2, 5])
def test_streamed_chunks_of_byte_ranges_are_the_rows_in_order(tmp_path, parts):
    """numeric_chunks over each part's byte range, 4 rows at a time: together, every row once."""
    from edgelr.data import numeric_chunks

    lines = ["a,b"] + [f"{i}.5,{i % 2}" for i in range(37)]
    path = tmp_path / "data.csv"
    path.write_text("\r\n".join(lines) + "\r\n")
    blocks = []
    for k in range(parts):
        blocks += list(numeric_chunks(str(path), 2, 4, (k, parts)))
    assert all(b.shape[0] <= 4 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), np.loadtxt(path, delimiter=",", skiprows=1))
