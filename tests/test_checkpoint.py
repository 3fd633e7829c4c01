"""edgelr.checkpoint: the self-describing .pt file, and every file it must refuse (spec sections 4 and 8)."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from edgelr import LogisticRegression
from edgelr.checkpoint import FORMAT, FORMAT_VERSION, build_model, load_checkpoint, save_checkpoint
from edgelr.errors import CheckpointError

FEATURES = ["hours", "lab", "sleep"]


def tiny_data(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes, features far from standardized."""
    rng = np.random.default_rng(n_classes)
    y = np.arange(40) % n_classes
    X = rng.normal(size=(40, 3)) * [1.0, 10.0, 0.1] + [5.0, -20.0, 7.0] + y[:, None] * 0.5
    return X, np.array(["ant", "bee", "cat"])[y] if n_classes == 3 else y


def save_tiny(path: Path, n_classes: int = 2) -> Path:
    X, y = tiny_data(n_classes)
    LogisticRegression(device="cpu").fit(X, y, feature_names=FEATURES).save(path)
    return path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return save_tiny(tmp_path / "model.pt")


def refused(path: Path, message: str):
    """pytest.raises for a CheckpointError whose message starts with the file name."""
    return pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: {message}")


class Sentinel:
    """Unpickling this creates a file: what a malicious checkpoint would do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# -- round trip ------------------------------------------------------------------------


@pytest.mark.parametrize(("n_classes", "classes"), [(2, [0, 1]), (3, ["ant", "bee", "cat"])])
def test_round_trip(tmp_path, n_classes, classes):
    path = save_tiny(tmp_path / "model.pt", n_classes)
    X, _ = tiny_data(n_classes)
    state = load_checkpoint(path)
    assert state["format"] == FORMAT
    assert state["format_version"] == FORMAT_VERSION
    assert state["feature_names"] == FEATURES
    assert state["classes"] == classes
    torch.testing.assert_close(state["mean"], torch.as_tensor(X.mean(axis=0)))
    torch.testing.assert_close(state["scale"], torch.as_tensor(X.std(axis=0)))
    units = 1 if n_classes == 2 else n_classes
    assert state["weight"].shape == (units, 3)
    assert state["bias"].shape == (units,)
    assert isinstance(state["config"], dict) and isinstance(state["history"], list)


def test_loaded_tensors_equal_the_fitted_ones(tmp_path):
    X, y = tiny_data(2)
    est = LogisticRegression(device="cpu").fit(X, y)
    est.save(tmp_path / "m.pt")
    state = load_checkpoint(tmp_path / "m.pt")
    np.testing.assert_array_equal(state["weight"].double().numpy(), est.coef_)
    np.testing.assert_array_equal(state["bias"].double().numpy(), est.intercept_)
    assert not np.allclose(est.coef_, 0)  # a trained model, not the zero start


def test_plain_torch_load_with_weights_only_reads_it(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    assert state["format"] == FORMAT
    assert state["feature_names"] == FEATURES


def test_build_model_computes_standardized_sigmoid_by_hand(checkpoint):
    state = load_checkpoint(checkpoint)
    X = np.array([[5.0, -20.0, 7.0], [0.0, 3.0, -1.0], [1e3, 1e3, 1e3]])
    z = ((X - state["mean"].numpy()) / state["scale"].numpy()) @ state["weight"].double().numpy().T
    p1 = 1.0 / (1.0 + np.exp(-(z[:, 0] + state["bias"].double().numpy()[0])))
    model = build_model(state)
    assert not model.training
    with torch.no_grad():
        proba = model(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(proba, np.column_stack([1 - p1, p1]), rtol=1e-12, atol=1e-15)


def test_build_model_multiclass_is_softmax(tmp_path):
    state = load_checkpoint(save_tiny(tmp_path / "m.pt", 3))
    X = np.array([[5.0, -20.0, 7.0], [6.0, -10.0, 7.2]])
    z = ((X - state["mean"].numpy()) / state["scale"].numpy()) @ state["weight"].double().numpy().T
    z += state["bias"].double().numpy()
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    with torch.no_grad():
        proba = build_model(state)(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(proba, expected, rtol=1e-12)


# -- refusals --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "absent.pt"
    with refused(path, "no such checkpoint file"):
        load_checkpoint(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with refused(path, r"not a torch checkpoint \(the file is empty\)"):
        load_checkpoint(path)


def test_truncated_checkpoint(checkpoint):
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    with refused(checkpoint, "not a torch checkpoint .*truncated"):
        load_checkpoint(checkpoint)


def test_onnx_file(tmp_path):
    from onnx import TensorProto, helper, save_model

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "model.onnx"
    save_model(helper.make_model(graph, producer_name="pytorch"), str(path))
    with refused(path, r"not a torch checkpoint \(it looks like an ONNX model\)"):
        load_checkpoint(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with refused(path, "not a torch checkpoint"):
        load_checkpoint(path)


def test_zip_that_is_not_a_torch_file(tmp_path):
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not torch")
    with refused(path, "unreadable or truncated torch file"):
        load_checkpoint(path)


def test_torch_file_that_is_not_an_edgelr_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"a": 1}, path)
    with refused(path, "a torch file but not an edgelr checkpoint"):
        load_checkpoint(path)


def test_state_dict_of_another_model_is_refused(tmp_path):
    path = tmp_path / "state_dict.pt"
    torch.save(torch.nn.Linear(3, 1).state_dict(), path)
    with refused(path, "a torch file but not an edgelr checkpoint"):
        load_checkpoint(path)


def test_newer_format_version(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    torch.save({**state, "format_version": 99}, checkpoint)
    with refused(checkpoint, "checkpoint format version 99 is newer than this edgelr reads"):
        load_checkpoint(checkpoint)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weight": torch.zeros(1, 5)}, r"damaged checkpoint: 'weight' has shape \(1, 5\), expected \(1, 3\)"),
        ({"mean": torch.zeros(2, dtype=torch.float64)}, r"damaged checkpoint: 'mean' has shape \(2,\)"),
        ({"classes": ["only"]}, "damaged checkpoint"),
        ({"bias": [0.0]}, "damaged checkpoint: 'bias' is missing or not a Tensor"),
        ({"feature_names": None}, "damaged checkpoint: 'feature_names' is missing"),
    ],
)
def test_damaged_checkpoint(checkpoint, change, message):
    state = torch.load(checkpoint, weights_only=True)
    torch.save({**state, **change}, checkpoint)
    with refused(checkpoint, message):
        load_checkpoint(checkpoint)


def test_malicious_pickle_in_a_torch_file_is_not_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": Sentinel(sentinel)}, path)
    with refused(path, "holds Python objects that are only loadable by running code"):
        load_checkpoint(path)
    assert not sentinel.exists()


def test_bare_malicious_pickle_is_not_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Sentinel(sentinel)))
    with refused(path, r"not a torch checkpoint \(it is a bare pickle\)"):
        load_checkpoint(path)
    assert not sentinel.exists()


# -- atomic writes ---------------------------------------------------------------------


def test_failed_save_leaves_the_earlier_file_and_no_temp_file(checkpoint, monkeypatch):
    before = checkpoint.read_bytes()
    state = load_checkpoint(checkpoint)

    def half_write_then_fail(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(state, checkpoint)
    assert checkpoint.read_bytes() == before
    assert sorted(os.listdir(checkpoint.parent)) == [checkpoint.name]


def test_save_refuses_an_invalid_state_before_touching_the_file(checkpoint):
    before = checkpoint.read_bytes()
    state = load_checkpoint(checkpoint)
    with pytest.raises(CheckpointError, match="'weight' has shape"):
        save_checkpoint({**state, "weight": torch.zeros(2, 2)}, checkpoint)
    assert checkpoint.read_bytes() == before


def test_save_creates_the_folder_and_leaves_no_temp_file(tmp_path, checkpoint):
    target = tmp_path / "new" / "dir" / "copy.pt"
    save_checkpoint(load_checkpoint(checkpoint), target)
    assert os.listdir(target.parent) == ["copy.pt"]
    assert load_checkpoint(target)["feature_names"] == FEATURES
