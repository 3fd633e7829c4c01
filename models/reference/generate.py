"""Write this version's reference models, once per release: ``python models/reference/generate.py [NAME ...]``.

Each model is exported from a freshly trained checkpoint as ONNX and ORT, next to a JSON
file recording rows and the probabilities the *torch* model gave for them (float64,
independent of onnxruntime). tests/test_reference_models.py loads every recorded model
with the current runtime and must get those answers: the compatibility promise.
Existing files are never overwritten; a new release adds its own (NAME: only those;
0.2.0 added ``pumps``, the first with text columns and missing values, and kept the
0.1.0 numeric ones as they were; 0.3.0 recorded all three again, its graphs making a row
with a non-finite input NaN: metadata ``edgelr.non_finite``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgelr import __version__
from edgelr.checkpoint import build_model, load_checkpoint
from edgelr.data import PUMPS_NAME, Dataset, ReadOptions, builtin, students
from edgelr.encoding import Layout
from edgelr.estimator import LogisticRegression
from edgelr.export import export_checkpoint
from edgelr.workflow import train_checkpoint

HERE = Path(__file__).parent


def three_classes() -> Dataset:
    """Three string classes, four features on different scales (standardization matters)."""
    rng = np.random.default_rng(2026)
    centers = np.array([[0.0, 0.0, 0.0, 0.0], [2.0, -1.0, 1.0, 0.5], [-1.5, 2.0, 0.5, -1.0]])
    y = np.repeat(np.arange(3), 40)
    X = (centers[y] + rng.normal(size=(120, 4))) * [1.0, 10.0, 100.0, 0.1] + [0.0, 50.0, -300.0, 7.0]
    return Dataset(X=X, y=y, feature_names=["temp", "humidity", "pressure", "vibration"],
                   classes=["fault", "idle", "running"], label_name="state", source="synthetic (reference)")


def record(name: str, dataset: Dataset, rows: np.ndarray, estimator: LogisticRegression | None = None) -> None:
    base = f"{name}-v{__version__}"  # not Path.with_suffix: the version has dots
    onnx_path, manifest_path = HERE / f"{base}.onnx", HERE / f"{base}.json"
    if manifest_path.exists():
        sys.exit(f"{manifest_path} exists; reference models are never overwritten")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "model.pt"
        train_checkpoint(dataset, estimator or LogisticRegression(device="cpu"), checkpoint, val_fraction=0)
        result = export_checkpoint(checkpoint, onnx_path, ort_format=True)
        Path(result.ort_paths[1]).unlink()  # the operators config: for device builds, not for tests
        state = load_checkpoint(checkpoint)
        numbers, text = Layout.of(dataset).values(rows)
        with torch.no_grad():
            proba = build_model(state)(torch.from_numpy(numbers.astype(np.float32)).double(), text).numpy()
    if text is None:
        recorded = numbers.tolist()  # rows of numbers, in feature order
    else:  # rows by column name, None where missing, as a device would send them
        recorded = [{c: (None if isinstance(v, float) and np.isnan(v) else v or None) for c, v in zip(
            state["feature_names"] + state["categorical_names"], [*n, *t])} for n, t in zip(numbers.tolist(), text)]
    manifest = {
        "edgelr_version": __version__,
        "models": [onnx_path.name, Path(result.ort_paths[0]).name],
        "feature_names": state["feature_names"],
        **({"categorical_names": state["categorical_names"]} if text is not None else {}),
        "classes": dataset.classes,
        "rows": recorded,
        "probabilities": proba.tolist(),  # from torch, float64
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {', '.join(manifest['models'])} and {manifest_path.name}")


def pumps_rows(data: Dataset) -> np.ndarray:
    """Every 8th pump, and rows with a site never seen in training and with every cell missing."""
    rows = data.X[::8].copy()
    unseen = rows[:2].copy()
    unseen[:, data.feature_names.index("site")] = data.vocab["site"].index("harbour")
    return np.vstack([rows, unseen, np.full((1, rows.shape[1]), np.nan)])


def main(names: list[str]) -> None:
    if not names or "students" in names:
        tutorial = students()
        grid = np.array([[h, lab] for h in (0.0, 1.0, 3.5, 6.0, 9.0) for lab in (0.0, 2.0, 4.0)])
        record("students", tutorial, np.vstack([tutorial.X, grid]))
    if not names or "three-classes" in names:
        data = three_classes()
        record("three-classes", data, data.X[::6])
    if not names or PUMPS_NAME in names:
        data = builtin(PUMPS_NAME, ReadOptions(impute=True))
        data.vocab["site"] = [*data.vocab["site"], "harbour"]  # the unseen site of pumps_rows
        record(PUMPS_NAME, data, pumps_rows(data), LogisticRegression(impute="median", missing_indicator=True,
                                                                      device="cpu"))


if __name__ == "__main__":
    main(sys.argv[1:])
