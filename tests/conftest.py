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
