"""edgelr.encoding: the fitted encoding against scikit-learn's ColumnTransformer, and its pieces.

The statistics must be the same whether the rows come in one piece or in chunks (the
streamed and torchrun paths merge them), and equal scikit-learn's SimpleImputer,
StandardScaler and OneHotEncoder fitted on the same table.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from edgelr.data import NUMERIC, TEXT, table_from_frame
from edgelr.encoding import (
    EncodingSpec,
    Layout,
    category_lookup,
    exact_medians,
    fit_encoding,
    stats_of,
    value_ids,
)
from edgelr.errors import ConfigError, DataError
from tests.conftest import TABLE_NUMERIC, TABLE_TEXT, make_table


def chunked(X: np.ndarray, rows: int):
    return lambda: (X[i : i + rows] for i in range(0, X.shape[0], rows))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e12, 1e12, allow_nan=False), st.sampled_from([0.0, -0.0, 1.5])),
                min_size=1, max_size=60),
       st.integers(1, 9))
def test_exact_medians_equal_nanmedian(values, rows):
    column = np.array([np.nan if v is None else v for v in values])
    if np.isnan(column).all():
        column[0] = 3.0
    X = np.c_[column, column[::-1] * 2]
    counts = (~np.isnan(X)).sum(axis=0)
    np.testing.assert_array_equal(exact_medians(chunked(X, rows), counts), np.nanmedian(X, axis=0))


def test_exact_medians_of_many_rows_take_the_radix_passes():
    """Past 65,536 values a column is narrowed by its bits first; the result is still exact."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=200_001) * 1e-3, rng.integers(0, 5, 200_001).astype(float), rng.lognormal(size=200_001)]
    X[rng.random(X.shape) < 0.1] = np.nan
    passes = []

    def chunks():
        passes.append(1)
        return (X[i : i + 30_000] for i in range(0, X.shape[0], 30_000))

    np.testing.assert_array_equal(exact_medians(chunks, (~np.isnan(X)).sum(axis=0)), np.nanmedian(X, axis=0))
    assert 2 <= len(passes) <= 9


def table(n_rows=2000, seed=0):
    frame = make_table(n_rows=n_rows, seed=seed).drop(columns=["label"])
    X, names, kinds, vocab = table_from_frame(frame, impute=True)
    return frame, X, Layout(names, kinds, vocab)


@pytest.mark.parametrize("impute", ["mean", "median"])
@pytest.mark.parametrize("indicator", [False, True])
def test_numeric_design_equals_imputer_and_scaler(impute, indicator):
    frame, X, layout = table()
    encoding = fit_encoding(layout, EncodingSpec(impute, indicator), chunked(X, 333))
    reference = make_pipeline(SimpleImputer(strategy=impute, add_indicator=indicator), StandardScaler())
    expected = reference.fit_transform(frame[TABLE_NUMERIC])
    design, _ = encoding.encode(X, encoding.remaps(layout.vocab))
    np.testing.assert_allclose(design, expected, rtol=1e-10, atol=1e-9)  # d: mean 1000, std 0.1
    assert [encoding.numeric[i] for i in encoding.indicators] == (["a", "b", "c"] if indicator else [])


def test_slots_are_the_one_hot_columns_of_one_hot_encoder():
    frame, X, layout = table()
    encoding = fit_encoding(layout, EncodingSpec("mean"), chunked(X, 500))
    ohe = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(frame[TABLE_TEXT])
    assert [len(c) for c in encoding.categories] == [len(c) for c in ohe.categories_]
    test = make_table(n_rows=300, seed=5).drop(columns=["label"])
    test.loc[:5, "city"] = "atlantis"  # unseen
    _, slots = encoding.encode_values(test[TABLE_NUMERIC].to_numpy(), test[TABLE_TEXT].to_numpy(object))
    dense = np.zeros((len(test), encoding.n_categories + 1))
    for j in range(slots.shape[1]):
        dense[np.arange(len(test)), slots[:, j]] = 1.0
    np.testing.assert_array_equal(dense[:, :-1], ohe.transform(test[TABLE_TEXT]))


def test_chunks_and_one_piece_give_the_same_statistics():
    _, X, layout = table(n_rows=1000, seed=2)
    whole, parts = stats_of([X], layout), stats_of((X[i : i + 37] for i in range(0, 1000, 37)), layout)
    np.testing.assert_allclose(parts.moments.mean, whole.moments.mean, rtol=1e-13)
    np.testing.assert_allclose(parts.moments.m2, whole.moments.m2, rtol=1e-12)
    np.testing.assert_array_equal(parts.missing, whole.missing)
    np.testing.assert_array_equal(parts.low, whole.low)
    np.testing.assert_array_equal(parts.high, whole.high)
    for a, b in zip(parts.counts, whole.counts):
        np.testing.assert_array_equal(a, b)


def test_categories_come_from_the_training_rows_only():
    layout = Layout(["c"], [TEXT], {"c": ["x", "y", "z"]})
    X = np.array([[0.0], [2.0], [np.nan], [0.0]])
    encoding = fit_encoding(layout, EncodingSpec("mean"), chunked(X, 2))
    assert encoding.categories == [["x", "z", ""]]  # y never occurs; the missing category last
    assert encoding.remaps(layout.vocab)[0].tolist() == [0, 3, 1, 2]  # y -> the unknown slot, missing -> 2


def test_graph_lookup_maps_strings_to_slots():
    """The graph's LabelEncoder gives each cell a value id; value_ids' table turns (id, column) into the slot
    that encode_values gives the same cell."""
    layout = Layout(["c", "d"], [TEXT, TEXT], {"c": ["x", "y"], "d": ["p", "q", "r"]})
    X = np.array([[0.0, 0.0], [1.0, np.nan], [0.0, 2.0]])
    encoding = fit_encoding(layout, EncodingSpec("median"), chunked(X, 5))
    nodes, opsets = category_lookup(encoding, "categories", "ids")
    graph = onnx.helper.make_graph(
        nodes, "lookup", [onnx.helper.make_tensor_value_info("categories", onnx.TensorProto.STRING, ["n", 2])],
        [onnx.helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["n", 2])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18), *opsets])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = np.array([["x", "p"], ["y", ""], ["never", "NA"], ["", "r"], ["x", "q"]], dtype=object)
    (ids,) = session.run(None, {"categories": values})
    slots = value_ids(encoding)[1][ids, np.arange(2)]
    np.testing.assert_array_equal(slots, encoding.slots_of(values))
    # c: x, y; d: p, r, (missing); unknown slot 5. q never occurred in these rows.
    assert slots.tolist() == [[0, 2], [1, 4], [5, 4], [5, 3], [0, 5]]


def test_kinds_from_a_dataframe():
    import pandas as pd

    frame = pd.DataFrame({"n": [1.0, np.nan, 3.0], "t": ["a", None, "b"], "code": [10, 20, 10]})
    X, names, kinds, vocab = table_from_frame(frame, categorical=["code"], impute=True)
    assert kinds == [NUMERIC, TEXT, TEXT] and vocab == {"t": ["a", "b"], "code": ["10", "20"]}
    np.testing.assert_array_equal(X[:, 1], [0, np.nan, 1])
    with pytest.raises(DataError, match=r"X: row 1, column 'n' is missing .*impute="):
        table_from_frame(frame)
    with pytest.raises(DataError, match=r"column 'm' mixes numbers and words .*categorical=\['m'\]"):
        table_from_frame(pd.DataFrame({"m": [1, "a"]}))


def test_missing_indicator_needs_imputation():
    with pytest.raises(ConfigError, match="--missing-indicator .* expected --impute"):
        EncodingSpec(None, True).validate()
