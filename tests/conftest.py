"""Shared fixtures: small generated data sets as CSV files, a trained checkpoint, an export."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

# Feature offsets and spreads far from standardized, so standardization matters.
_SCALES = np.array([1.0, 10.0, 100.0, 0.1, 5.0])
_OFFSETS = np.array([0.0, 5.0, -3.0, 1000.0, 0.0])


def write_csv(path: Path, header: list[str], rows) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_data(n_classes: int, *, n_rows: int = 400, seed: int = 0, string_labels: bool = False):
    """(X, labels): informative but overlapping classes, so the optimum is finite."""
    X, y = make_classification(
        n_samples=n_rows, n_features=5, n_informative=3, n_redundant=1, n_classes=n_classes,
        n_clusters_per_class=1, class_sep=0.8, flip_y=0.05, random_state=seed,
    )
    X = X * _SCALES + _OFFSETS
    labels = np.array(["setosa", "versicolor", "virginica", "zebra"])[y] if string_labels else y
    return X, labels


def data_csv(path: Path, X, labels) -> Path:
    header = [f"f{i}" for i in range(X.shape[1])] + ["target"]
    return write_csv(path, header, [[*map(repr, row), label] for row, label in zip(X.tolist(), labels)])


@pytest.fixture(scope="session")
def binary_csv(tmp_path_factory) -> Path:
    X, y = make_data(2, seed=1)
    return data_csv(tmp_path_factory.mktemp("data") / "binary.csv", X, y)


@pytest.fixture(scope="session")
def multiclass_csv(tmp_path_factory) -> Path:
    X, y = make_data(3, seed=2, string_labels=True)
    return data_csv(tmp_path_factory.mktemp("data") / "multiclass.csv", X, y)


@pytest.fixture(scope="session")
def binary_checkpoint(tmp_path_factory, binary_csv) -> Path:
    from edgelr.data import read_csv
    from edgelr.estimator import LogisticRegression
    from edgelr.workflow import train_checkpoint

    out = tmp_path_factory.mktemp("models") / "binary.pt"
    train_checkpoint(read_csv(binary_csv), LogisticRegression(device="cpu"), out, val_fraction=0.25)
    return out


@pytest.fixture(scope="session")
def multiclass_checkpoint(tmp_path_factory, multiclass_csv) -> Path:
    from edgelr.data import read_csv
    from edgelr.estimator import LogisticRegression
    from edgelr.workflow import train_checkpoint

    out = tmp_path_factory.mktemp("models") / "multiclass.pt"
    train_checkpoint(read_csv(multiclass_csv), LogisticRegression(device="cpu"), out, val_fraction=0.25)
    return out


@pytest.fixture(scope="session")
def binary_onnx(binary_checkpoint) -> Path:
    from edgelr.export import export_checkpoint

    out = binary_checkpoint.with_suffix(".onnx")
    export_checkpoint(binary_checkpoint, out)
    return out


@pytest.fixture(scope="session")
def multiclass_onnx(multiclass_checkpoint) -> Path:
    from edgelr.export import export_checkpoint

    out = multiclass_checkpoint.with_suffix(".onnx")
    export_checkpoint(multiclass_checkpoint, out)
    return out


def make_table(n_rows: int = 3000, *, n_classes: int = 2, seed: int = 0, missing: float = 0.1):
    """A pandas DataFrame like a real table: 4 numeric columns on different scales, 3 text
    columns (5, 60 and 4 categories), ``missing`` of the cells of 5 columns empty, and a
    ``label`` column that depends on numbers and categories alike."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    num = rng.normal(size=(n_rows, 4)) * [1.0, 10.0, 100.0, 0.1] + [0.0, 5.0, -3.0, 1000.0]
    color = rng.choice(["red", "green", "blue", "black", "white"], n_rows)
    city = rng.choice([f"city{i:02d}" for i in range(60)], n_rows)
    size = rng.choice(["S", "M", "L", "XL"], n_rows)
    z = (num[:, 0] + (num[:, 1] - 5) / 10 - (num[:, 2] + 3) / 100 + 1.5 * (color == "red") - (size == "S")
         + np.char.endswith(city.astype(str), "7"))
    noisy = z + rng.logistic(size=n_rows)
    y = (noisy > 0).astype(int) if n_classes == 2 else np.digitize(noisy, [-0.7, 0.7])
    frame = pd.DataFrame(num, columns=["a", "b", "c", "d"])
    frame["color"], frame["city"], frame["size"] = color, city, size
    for col in ["a", "b", "c", "color", "size"]:
        frame.loc[rng.random(n_rows) < missing, col] = np.nan
    frame["label"] = np.array(["maybe", "no", "yes"])[y] if n_classes > 2 else y
    return frame


TABLE_NUMERIC, TABLE_TEXT = ["a", "b", "c", "d"], ["color", "city", "size"]


def sklearn_table_pipeline(impute: str, indicator: bool, C: float = 1.0):
    """Spec section 2's reference: ColumnTransformer(imputer + scaler | one-hot) + LogisticRegression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def columns(frame, kind):
        return [c for c in frame.columns if (frame[c].dtype.kind in "biuf") == (kind == "num")]

    encode = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy=impute, add_indicator=indicator), StandardScaler()),
         lambda frame: columns(frame, "num")),
        ("cat", OneHotEncoder(handle_unknown="ignore"), lambda frame: columns(frame, "cat")),
    ])
    return make_pipeline(encode, LogisticRegression(C=C, tol=1e-12, max_iter=100_000))


def onnx_inputs(frame, numeric, text) -> dict:
    """A DataFrame's columns as the exported graph takes them: float32 with NaN, strings with "" for missing."""
    feeds = {"features": frame[numeric].to_numpy(np.float32)}
    if text:
        feeds["categories"] = frame[text].astype(object).where(frame[text].notna(), "").to_numpy(object)
    return feeds
