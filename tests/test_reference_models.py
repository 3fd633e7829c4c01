"""Reference models exported by earlier edgelr versions still load and give their recorded answers.

models/reference/*.json record, for each committed model (ONNX and ORT format), some rows
and the probabilities the torch model gave when it was exported. The current runtime
must reproduce them: the compatibility promise of spec section 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgelr.cli import main
from edgelr.runtime import Predictor
from tests.conftest import write_csv

REFERENCE = Path(__file__).resolve().parent.parent / "models" / "reference"
MANIFESTS = sorted(REFERENCE.glob("*.json"))
CASES = [(m, name) for m in MANIFESTS for name in json.loads(m.read_text())["models"]]


def test_reference_models_are_committed():
    assert len(MANIFESTS) >= 2 and any(name.endswith(".ort") for _, name in CASES)


@pytest.mark.parametrize("manifest_path,name", CASES, ids=[name for _, name in CASES])
def test_recorded_predictions(manifest_path, name):
    manifest = json.loads(manifest_path.read_text())
    predictor = Predictor(REFERENCE / name)
    assert predictor.feature_names == manifest["feature_names"] and predictor.classes == manifest["classes"]
    expected = np.asarray(manifest["probabilities"])
    proba = predictor.predict_proba(manifest["rows"])
    np.testing.assert_allclose(proba, expected, atol=1e-5, rtol=1e-4)  # the export's parity tolerance
    # Labels: the class with the largest recorded probability (binary: above the threshold).
    if predictor.threshold is not None:
        decided = (expected[:, 1] > predictor.threshold).astype(int)
    else:
        decided = expected.argmax(axis=1)
    clear = np.sort(expected, axis=1)[:, -1] - np.sort(expected, axis=1)[:, -2] > 1e-4
    assert clear.sum() >= len(clear) // 2  # the check below is not vacuous
    np.testing.assert_array_equal(predictor.predict(manifest["rows"])[clear],
                                  np.asarray(manifest["classes"])[decided][clear])


def test_a_reference_model_has_text_columns_and_missing_values():
    manifests = [json.loads(m.read_text()) for m in MANIFESTS]
    text = [m for m in manifests if m.get("categorical_names")]
    assert text and any(None in row.values() for row in text[0]["rows"])


ONNX_CASES = [(m, name) for m, name in CASES if name.endswith(".onnx")]


@pytest.mark.parametrize("manifest_path,name", ONNX_CASES, ids=[name for _, name in ONNX_CASES])
def test_predict_command_reads_reference_models(tmp_path, manifest_path, name):
    manifest = json.loads(manifest_path.read_text())
    header = manifest["feature_names"] + manifest.get("categorical_names", [])
    cells = [[row[c] if row[c] is not None else "" for c in header] if isinstance(row, dict) else row
             for row in manifest["rows"]]
    rows = write_csv(tmp_path / "rows.csv", header, cells)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(main, ["predict", str(REFERENCE / name), str(rows), "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = np.genfromtxt(out, delimiter=",", skip_header=1, dtype=str)
    np.testing.assert_allclose(table[:, 1:].astype(float), manifest["probabilities"], atol=1e-5, rtol=1e-4)
