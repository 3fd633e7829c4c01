"""The ONNX contract: signature, metadata, a self-contained file, and a parity gate that bites."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from edgelr.checkpoint import build_model, load_checkpoint
from edgelr.cli import main
from edgelr.errors import ParityError
from edgelr.export import ExportGraph, export_checkpoint, to_onnx
from edgelr.parity import check_parity, session_for
from tests.conftest import data_csv

METADATA_KEYS = {"edgelr.format", "edgelr.version", "edgelr.feature_names", "edgelr.classes",
                 "edgelr.metrics", "edgelr.parity"}


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("which,n_classes", [("binary", 2), ("multiclass", 3)])
def test_signature_has_symbolic_batch_and_plain_tensors(request, which, n_classes):
    model = onnx.load(str(request.getfixturevalue(f"{which}_onnx")))
    (inp,) = model.graph.input
    outputs = {o.name: o for o in model.graph.output}
    assert inp.name == "features"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims(inp) == ["batch", 5]
    assert set(outputs) == {"label", "probabilities"}
    assert outputs["label"].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert dims(outputs["label"]) == ["batch"]
    assert outputs["probabilities"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert dims(outputs["probabilities"]) == ["batch", n_classes]
    assert "ZipMap" not in {n.op_type for n in model.graph.node}
    onnx.checker.check_model(model, full_check=True)


def test_metadata_and_producer(binary_onnx, binary_checkpoint):
    model = onnx.load(str(binary_onnx))
    meta = {p.key: p.value for p in model.metadata_props}
    state = load_checkpoint(binary_checkpoint)
    assert METADATA_KEYS | {"edgelr.threshold"} <= set(meta)
    assert model.producer_name == "edgelr"
    assert meta["edgelr.format"] == "1"
    assert json.loads(meta["edgelr.feature_names"]) == ["f0", "f1", "f2", "f3", "f4"]
    assert json.loads(meta["edgelr.classes"]) == [0, 1]
    assert json.loads(meta["edgelr.threshold"]) == 0.5
    assert json.loads(meta["edgelr.metrics"]) == state["metrics"]
    parity = json.loads(meta["edgelr.parity"])
    assert parity["batch_sizes"] == [1, 2, 7, 64, 4096]
    assert parity["atol"] == 1e-5 and parity["rtol"] == 1e-4
    assert parity["max_abs_diff"] <= parity["atol"] + parity["rtol"]  # allclose: atol + rtol * |p|, p <= 1
    assert parity["torch"] == torch.__version__ and parity["onnxruntime"] == ort.__version__


def test_multiclass_has_no_threshold(multiclass_onnx):
    meta = {p.key: p.value for p in onnx.load(str(multiclass_onnx)).metadata_props}
    assert METADATA_KEYS <= set(meta) and "edgelr.threshold" not in meta
    assert json.loads(meta["edgelr.classes"]) == ["setosa", "versicolor", "virginica"]


def test_file_is_self_contained(binary_onnx):
    model = onnx.load(str(binary_onnx), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert sorted(p.name for p in binary_onnx.parent.iterdir() if not p.name.startswith(".")) == [
        "binary.onnx", "binary.pt"]


@pytest.mark.parametrize("which", ["binary", "multiclass"])
@pytest.mark.parametrize("batch", [1, 3, 5000])
def test_onnxruntime_runs_other_batch_sizes_and_matches_torch(request, which, batch):
    """Batch sizes other than the export's dummy of 2; probabilities match the checkpoint's model."""
    session = ort.InferenceSession(str(request.getfixturevalue(f"{which}_onnx")))
    state = load_checkpoint(request.getfixturevalue(f"{which}_checkpoint"))
    gen = torch.Generator().manual_seed(batch)
    X = (state["mean"] + state["scale"] * torch.randn(batch, 5, dtype=torch.float64, generator=gen)).float()
    label, proba = session.run(None, {"features": X.numpy()})
    expected = build_model(state)(X.double()).detach().numpy()
    assert label.shape == (batch,) and proba.shape == expected.shape
    np.testing.assert_allclose(proba, expected, atol=1e-5, rtol=1e-4)  # the parity tolerances
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert ((proba >= 0) & (proba <= 1)).all()
    decided = expected[:, 1] > 0.5 if expected.shape[1] == 2 else expected.argmax(axis=1)
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4  # rows on the decision boundary may go either way
    np.testing.assert_array_equal(label[clear], decided[clear])


def test_corrupted_graph_fails_export_and_leaves_no_file(tmp_path, binary_checkpoint, monkeypatch):
    """A graph that shifts probabilities by 1e-3: every variant fails, nothing is written."""
    original = ExportGraph.forward

    def shifted(self, features):
        label, proba = original(self, features)
        return label, (proba + torch.tensor([-1e-3, 1e-3])).clamp(0, 1)

    monkeypatch.setattr(ExportGraph, "forward", shifted)
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["export", str(binary_checkpoint), "-o", str(out)])
    assert result.exit_code == 1
    assert "Error: onnxruntime and torch disagree: largest |diff| 0.001" in result.output
    assert "worst:" in result.output
    assert list(tmp_path.iterdir()) == []


def test_failed_export_keeps_the_earlier_file(tmp_path, binary_checkpoint, binary_onnx, monkeypatch):
    out = tmp_path / "m.onnx"
    out.write_bytes(binary_onnx.read_bytes())
    monkeypatch.setattr(ExportGraph, "forward", lambda self, x: (torch.zeros(x.shape[0], dtype=torch.int64),
                                                                 torch.full((x.shape[0], 2), 0.5)))
    with pytest.raises(ParityError):
        export_checkpoint(binary_checkpoint, out)
    assert out.read_bytes() == binary_onnx.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_verify_catches_corrupted_weights(tmp_path, binary_checkpoint, binary_onnx):
    """Scale one initializer of the exported file by 1.01: verify exits 1 and names the difference."""
    model = onnx.load(str(binary_onnx))
    weight = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))  # the (5, 1) weights
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.01, weight.name))
    corrupted = tmp_path / "corrupted.onnx"
    onnx.save(model, str(corrupted))

    result = CliRunner().invoke(main, ["verify", str(binary_checkpoint), str(corrupted)])
    assert result.exit_code == 1
    assert "Error: onnxruntime and torch disagree: largest |diff|" in result.output
    assert float(result.output.split("largest |diff| ")[1].split()[0]) > 1e-5


def test_verify_passes_on_the_real_export_and_prints_differences(binary_checkpoint, binary_onnx, binary_csv):
    result = CliRunner().invoke(main, ["verify", str(binary_checkpoint), str(binary_onnx), "--data", str(binary_csv)])
    assert result.exit_code == 0, result.output
    assert "parity: max |p_onnxruntime - p_torch|" in result.output
    assert "data" in result.output and "extreme logits" in result.output


def test_verify_refuses_a_model_of_another_checkpoint(binary_checkpoint, multiclass_onnx):
    result = CliRunner().invoke(main, ["verify", str(binary_checkpoint), str(multiclass_onnx)])
    assert result.exit_code == 1
    assert "differ from the checkpoint's" in result.output


def test_large_mean_feature_falls_back_to_a_precise_graph(tmp_path):
    """A timestamp-like feature (mean 1.7e9, std 50): folding loses float32 precision.

    The parity check must see it on the data rows, and export must pick a graph that passes.
    """
    rng = np.random.default_rng(0)
    n = 300
    stamp = 1.7e9 + rng.normal(0, 50, n).round()
    other = rng.normal(size=n)
    y = (0.08 * (stamp - 1.7e9) + other + rng.normal(size=n) > 0).astype(int)
    X = np.c_[stamp, other]
    csv_path = data_csv(tmp_path / "stamps.csv", X, y)
    runner = CliRunner()
    assert runner.invoke(main, ["train", str(csv_path), "--val-fraction", "0", "-o", str(tmp_path / "m.pt")]
                         ).exit_code == 0

    state = load_checkpoint(tmp_path / "m.pt")
    folded = session_for(to_onnx(state, "folded").SerializeToString())
    with pytest.raises(ParityError):
        check_parity(state, folded, data=(X, None))

    result = runner.invoke(main, ["export", str(tmp_path / "m.pt"), "--data", str(csv_path)])
    assert result.exit_code == 0, result.output
    assert "folded graph failed the parity check" in result.output
    parity = json.loads({p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}["edgelr.parity"])
    assert parity["graph"] != "folded" and parity["max_abs_diff"] <= 1e-5


def test_opset_is_honoured_and_checked(tmp_path, binary_checkpoint):
    runner = CliRunner()
    ok = runner.invoke(main, ["export", str(binary_checkpoint), "-o", str(tmp_path / "m.onnx"), "--opset", "18"])
    assert ok.exit_code == 0, ok.output
    assert {o.domain: o.version for o in onnx.load(str(tmp_path / "m.onnx")).opset_import}[""] == 18
    bad = runner.invoke(main, ["export", str(binary_checkpoint), "-o", str(tmp_path / "x.onnx"), "--opset", "7"])
    assert bad.exit_code == 1 and "Error: --opset 7 is not supported; expected 18 to" in bad.output
    assert not (tmp_path / "x.onnx").exists()


def test_export_keeps_exporter_chatter_out_of_stdout(tmp_path, binary_checkpoint):
    result = CliRunner().invoke(main, ["export", str(binary_checkpoint), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0
    assert "torch.onnx" not in result.output and "Warning" not in result.output
    # This data set's offsets (1000 at a spread of 0.1) cost the folded graph ~2e-4 of logit (parity.check_logits).
    assert result.stdout.splitlines()[-1] == f"exported {tmp_path / 'm.onnx'} (standardized graph)"


def test_nan_probabilities_fail_parity(binary_checkpoint):
    """NaN compares False with everything: the gate must still reject it."""

    class NanSession:
        def get_inputs(self):
            return session_for(str(_onnx_of(binary_checkpoint))).get_inputs()

        def get_outputs(self):
            return session_for(str(_onnx_of(binary_checkpoint))).get_outputs()

        def run(self, names, feeds):
            n = feeds["features"].shape[0]
            return [np.zeros(n, dtype=np.int64), np.full((n, 2), np.nan, dtype=np.float32)]

    with pytest.raises(ParityError, match="largest \\|diff\\| inf"):
        check_parity(load_checkpoint(binary_checkpoint), NanSession())


def _onnx_of(checkpoint):
    out = checkpoint.with_suffix(".onnx")
    if not out.exists():
        export_checkpoint(checkpoint, out)
    return out


@pytest.mark.parametrize("which", ["binary", "multiclass"])
def test_ort_format_matches_torch_and_lists_its_operators(request, tmp_path, which):
    """--ort: the .ort model gives the checkpoint's probabilities; its config names the graph's ops."""
    checkpoint = request.getfixturevalue(f"{which}_checkpoint")
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(out), "--ort"])
    assert result.exit_code == 0, result.output
    assert "ORT parity: max |p_onnxruntime - p_torch|" in result.output
    ort_file, config = tmp_path / "m.ort", tmp_path / "m.required_operators_and_types.config"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.onnx", ort_file.name, config.name])
    assert ort_file.read_bytes()[4:8] == b"ORTM"  # the flatbuffer identifier of the ORT format

    from edgelr.runtime import Predictor

    state = load_checkpoint(checkpoint)
    predictor = Predictor(ort_file)
    assert predictor.feature_names == state["feature_names"] and predictor.classes == state["classes"]
    X = np.random.default_rng(3).normal(size=(50, 5)) * 10
    with torch.no_grad():
        expected = build_model(state)(torch.from_numpy(X.astype(np.float32)).double()).numpy()
    np.testing.assert_allclose(predictor.predict_proba(X), expected, atol=1e-5)

    # Lines "domain;opset;Op{types},Op{types}" as onnxruntime's minimal build reads them.
    ops = {entry.split("{")[0] for line in config.read_text().splitlines() if not line.startswith("#")
           for entry in line.split(";")[2].split("},")}
    assert ("Sigmoid" if which == "binary" else "Softmax") in ops
    assert "# - m.ort" in config.read_text()  # names the model, not a temporary folder


def test_ort_refuses_an_ort_output_name_and_writes_nothing_on_failure(tmp_path, binary_checkpoint, monkeypatch):
    runner = CliRunner()
    bad = runner.invoke(main, ["export", str(binary_checkpoint), "-o", str(tmp_path / "m.ort"), "--ort"])
    assert bad.exit_code == 1 and "expected an -o path ending in .onnx" in bad.output
    original = ExportGraph.forward
    monkeypatch.setattr(ExportGraph, "forward", lambda self, x: (original(self, x)[0], original(self, x)[1] * 0.9))
    failed = runner.invoke(main, ["export", str(binary_checkpoint), "-o", str(tmp_path / "m.onnx"), "--ort"])
    assert failed.exit_code == 1 and "Error: onnxruntime and torch disagree" in failed.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("variant", ["folded", "standardized", "float64"])
@pytest.mark.parametrize("which", ["binary", "multiclass"])
def test_every_graph_variant_lets_the_predictor_find_non_finite_input(request, tmp_path, which, variant):
    """The Predictor finds NaN/inf from the outputs (NaN or exact 0 probabilities) in every graph."""
    from edgelr.export import add_metadata
    from edgelr.runtime import Predictor, PredictorError

    state = load_checkpoint(request.getfixturevalue(f"{which}_checkpoint"))
    model = to_onnx(state, variant)
    add_metadata(model, state, {})
    onnx.save(model, str(tmp_path / "m.onnx"))
    predictor = Predictor(tmp_path / "m.onnx")
    for bad in (np.nan, np.inf, -np.inf):
        for col in range(5):
            X = np.ones((3, 5))
            X[1, col] = bad
            with pytest.raises(PredictorError, match=f"row 1, feature 'f{col}' is"):
                predictor.predict_proba(X)


def test_explanations_add_up_so_graphs_whose_logits_drift_are_passed_over(binary_checkpoint):
    """The folded graph loses ~2e-4 of logit on features at 1000 +- 0.1; explanations need 1e-4."""
    from edgelr.parity import LOGIT_ATOL, check_logits

    state = load_checkpoint(binary_checkpoint)
    with pytest.raises(ParityError, match="logits differ from the float64 model's"):
        check_logits(state, session_for(to_onnx(state, "folded").SerializeToString()))
    assert check_logits(state, session_for(to_onnx(state, "standardized").SerializeToString())) < LOGIT_ATOL
