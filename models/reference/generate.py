"""Write this version's reference models, once per release: ``.venv/bin/python models/reference/generate.py``.

Each model is exported from a freshly trained checkpoint as ONNX and ORT, next to a JSON
file recording rows and the probabilities the *torch* model gave for them (float64,
independent of onnxruntime). tests/test_reference_models.py loads every recorded model
with the current runtime and must get those answers: the compatibility promise.
Existing files are never overwritten; a new release adds its own.
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
from edgelr.data import Dataset, students
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


def record(name: str, dataset: Dataset, rows: np.ndarray) -> None:
    base = f"{name}-v{__version__}"  # not Path.with_suffix: the version has dots
    onnx_path, manifest_path = HERE / f"{base}.onnx", HERE / f"{base}.json"
    if manifest_path.exists():
        sys.exit(f"{manifest_path} exists; reference models are never overwritten")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "model.pt"
        train_checkpoint(dataset, LogisticRegression(device="cpu"), checkpoint, val_fraction=0)
        result = export_checkpoint(checkpoint, onnx_path, ort_format=True)
        Path(result.ort_paths[1]).unlink()  # the operators config: for device builds, not for tests
        state = load_checkpoint(checkpoint)
        with torch.no_grad():
            proba = build_model(state)(torch.from_numpy(rows.astype(np.float32)).double()).numpy()
    manifest = {
        "edgelr_version": __version__,
        "models": [onnx_path.name, Path(result.ort_paths[0]).name],
        "feature_names": dataset.feature_names,
        "classes": dataset.classes,
        "rows": rows.tolist(),
        "probabilities": proba.tolist(),  # from torch, float64
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {', '.join(manifest['models'])} and {manifest_path.name}")


def main() -> None:
    tutorial = students()
    grid = np.array([[h, lab] for h in (0.0, 1.0, 3.5, 6.0, 9.0) for lab in (0.0, 2.0, 4.0)])
    record("students", tutorial, np.vstack([tutorial.X, grid]))
    data = three_classes()
    record("three-classes", data, data.X[::6])


if __name__ == "__main__":
    main()
