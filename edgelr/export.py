"""Checkpoint -> ONNX with the parity gate (spec section 5).

The graph takes raw float32 features and does the standardization itself. Three
variants, fastest first; the first that passes the parity check is written:

- ``folded``: standardization folded into the weights, one MatMul + Add. Loses
  float32 precision on features with a large mean and a small spread (timestamps).
- ``standardized``: ``(x - mean) / scale`` in float32, then the linear layer.
- ``float64``: standardization and logits in float64, probabilities cast to float32.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from edgelr import __version__
from edgelr.checkpoint import load_checkpoint
from edgelr.data import read_features
from edgelr.errors import ConfigError, ModelFileError, ParityError
from edgelr.fileio import atomic_path
from edgelr.model import probabilities
from edgelr.parity import DEFAULT_ATOL, DEFAULT_RTOL, ParityReport, check_parity, session_for
from edgelr.runtime import Predictor

GRAPHS = ("folded", "standardized", "float64")
MIN_OPSET = 18  # the dynamo exporter's lowest opset
METADATA_FORMAT = "1"


class ExportGraph(nn.Module):
    """features (batch, n_features) float32 -> label (batch,) int64, probabilities (batch, n_classes) float32."""

    def __init__(self, state: dict, variant: str):
        super().__init__()
        W, b = state["weight"].double(), state["bias"].double()  # (n_out, d), (n_out,)
        mean, scale = state["mean"].double(), state["scale"].double()
        self.variant = variant
        self.binary = W.shape[0] == 1
        self.threshold = float(state["threshold"])
        if variant == "folded":
            # w . (x - m) / s + b == (w / s) . x + (b - (w / s) . m)
            W_raw = W / scale
            self.register_buffer("weight_t", W_raw.T.float().contiguous())  # (d, n_out)
            self.register_buffer("bias", (b - W_raw @ mean).float())
        else:
            dtype = torch.float64 if variant == "float64" else torch.float32
            self.register_buffer("mean", mean.to(dtype))
            self.register_buffer("inv_scale", (1.0 / scale).to(dtype))
            self.register_buffer("weight_t", W.T.to(dtype).contiguous())
            self.register_buffer("bias", b.to(dtype))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.variant == "folded":
            logits = features @ self.weight_t + self.bias
        else:
            x = features.to(self.mean.dtype)
            logits = ((x - self.mean) * self.inv_scale) @ self.weight_t + self.bias
        proba = probabilities(logits).clamp(0.0, 1.0).to(torch.float32)  # (batch, n_classes)
        if self.binary:
            label = (proba[:, 1] > self.threshold).to(torch.int64)  # the threshold lives in the graph
        else:
            label = torch.argmax(logits, dim=1)
        return label, proba


@dataclass
class ExportResult:
    path: str
    graph: str
    report: ParityReport
    notes: list[str]


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> ExportResult:
    """Export, verify against torch, and write ``out`` only if parity holds."""
    _check_tolerances(atol, rtol)
    _check_opset(opset)
    if os.path.exists(out) and os.path.samefile(out, checkpoint):
        raise ConfigError(f"{os.fspath(out)}: is the checkpoint being exported; expected a different -o path")
    state = load_checkpoint(checkpoint)
    rows = read_features(data, state["feature_names"]) if data is not None else None
    notes: list[str] = []
    failure: ParityError | None = None
    for variant in GRAPHS:
        model = to_onnx(state, variant, opset)
        try:
            report = check_parity(state, session_for(model.SerializeToString()), data=rows, atol=atol, rtol=rtol)
        except ParityError as exc:
            failure = exc
            notes.append(f"{variant} graph failed the parity check ({exc}); trying a more precise graph")
            continue
        add_metadata(model, state, {"edgelr.parity": report.to_metadata(variant)})
        onnx.checker.check_model(model, full_check=True)
        with atomic_path(out) as tmp:
            onnx.save_model(model, os.fspath(tmp))
        return ExportResult(os.fspath(out), variant, report, notes)
    assert failure is not None
    raise failure


def to_onnx(state: dict, variant: str, opset: int | None = None) -> onnx.ModelProto:
    """Trace one graph variant with the dynamo exporter; batch is a symbolic axis."""
    n_features = len(state["feature_names"])
    # A dummy batch of 2: the exporter would specialize a size-0 or size-1 dimension.
    dummy = torch.zeros(2, n_features, dtype=torch.float32)
    program = _quietly(
        lambda: torch.onnx.export(
            ExportGraph(state, variant).eval(),
            (dummy,),
            None,
            dynamo=True,
            input_names=["features"],
            output_names=["label", "probabilities"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),  # by position: forward's arg name is free
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    )
    model = program.model_proto
    model.producer_name = "edgelr"
    model.producer_version = __version__
    model.graph.name = "edgelr_logistic_regression"
    return model


def add_metadata(model: onnx.ModelProto, state: dict, extra: dict) -> None:
    """The metadata_props of the ONNX contract; JSON for structured values."""
    props = {
        "edgelr.format": METADATA_FORMAT,
        "edgelr.version": __version__,
        "edgelr.feature_names": json.dumps(state["feature_names"]),
        "edgelr.classes": json.dumps(state["classes"]),
        "edgelr.metrics": json.dumps(state["metrics"]),
        **({"edgelr.threshold": json.dumps(state["threshold"])} if len(state["classes"]) == 2 else {}),
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()},
    }
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        entry = existing.get(key) or model.metadata_props.add()
        entry.key, entry.value = key, value


def _quietly(fn: Callable):
    """Run the exporter without its console chatter (progress prints, warnings, logs)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    finally:
        logger.setLevel(level)


def _check_opset(opset: int | None) -> None:
    if opset is None:
        return
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ConfigError(f"--opset {opset} is not supported; expected {MIN_OPSET} to {newest}")


def _check_tolerances(atol: float, rtol: float) -> None:
    for name, value in (("atol", atol), ("rtol", rtol)):
        if not (np.isfinite(value) and value >= 0):
            raise ConfigError(f"--{name} must be a finite number >= 0, got {value}")


def verify_model(
    checkpoint: str | os.PathLike,
    model_path: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> ParityReport:
    """The export's parity check on an existing ONNX file (``edgelr verify``)."""
    _check_tolerances(atol, rtol)
    state = load_checkpoint(checkpoint)
    # The edge Predictor's own checks: an edgelr model, self-contained, readable metadata.
    model = Predictor(model_path)
    for key, found in (("feature_names", model.feature_names), ("classes", model.classes)):
        if found != state[key]:
            raise ModelFileError(
                f"{model.path}: {key} {json.dumps(found)} differ from the checkpoint's "
                f"{json.dumps(state[key])}; expected the model exported from {os.fspath(checkpoint)}"
            )
    rows = read_features(data, state["feature_names"]) if data is not None else None
    return check_parity(state, model.session, data=rows, atol=atol, rtol=rtol)
