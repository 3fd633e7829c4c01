"""Checkpoint -> ONNX with the parity gate (spec section 5).

The graph takes raw float32 features (NaN where missing) and, for a model with text
columns, their raw strings, and does the whole encoding itself: imputation, missing
indicators, standardization, and the category lookup. torch.onnx.export traces the
numeric part with the category ids as an int64 input; the encoding then prepends its
string lookup (edgelr.encoding.category_lookup) in place of that input. Three variants,
fastest first; the first that passes the parity check is written:

- ``folded``: standardization folded into the weights, one Gemm. Loses float32
  precision on features with a large mean and a small spread (timestamps).
- ``standardized``: ``(x - mean) / scale`` in float32, then the linear layer.
- ``float64``: standardization and logits in float64, probabilities cast to float32.

Every variant makes a row's probabilities NaN when its logits are not finite (a NaN or an
infinity among its inputs, NaN where the model does not impute, or logits past float32),
where the plain sigmoid or softmax would give a confident 0 or 1 for an infinity: the
metadata key ``edgelr.non_finite`` = ``"nan"`` says so, and the edge Predictor then finds
bad inputs from the NaN rows alone, without rescanning rows that merely saturate.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from edgelr import __version__
from edgelr.checkpoint import encoding_of, load_checkpoint
from edgelr.data import read_raw
from edgelr.encoding import Encoding, category_lookup, value_ids
from edgelr.errors import ConfigError, ModelFileError, ParityError
from edgelr.fileio import atomic_path
from edgelr.model import category_table, probabilities
from edgelr.parity import DEFAULT_ATOL, DEFAULT_RTOL, ParityReport, check_logits, check_parity, session_for
from edgelr.runtime import NAN_ROWS, NAN_ROWS_KEY, Predictor

GRAPHS = ("folded", "standardized", "float64")
MIN_OPSET = 18  # the dynamo exporter's lowest opset
METADATA_FORMAT = "1"
# Named as onnxruntime's convert_onnx_models_to_ort names them, so its docs apply as written.
ORT_CONFIG_SUFFIX = ".required_operators_and_types.config"


class ExportGraph(nn.Module):
    """features (batch, n_features) float32 [, ids (batch, n_text) int64, edgelr.encoding.value_ids] ->
    label (batch,) int64, probabilities (batch, n_classes) float32."""

    def __init__(self, state: dict, variant: str):
        super().__init__()
        enc = encoding_of(state)
        W, b = state["weight"].double(), state["bias"].double()  # (n_out, n_design), (n_out,)
        W_num = W[:, : enc.n_numeric]
        mean, scale = torch.as_tensor(enc.mean), torch.as_tensor(enc.scale)
        self.variant = variant
        self.binary = W.shape[0] == 1
        self.threshold = float(state["threshold"])
        self.impute = enc.impute is not None
        self.indicators = list(enc.indicators)
        self.text = bool(enc.text)
        dtype = torch.float64 if variant == "float64" else torch.float32
        fill = torch.as_tensor(np.nan_to_num(enc.fill))  # (d,) the raw numeric columns' imputation values
        d = fill.numel()
        if variant == "folded":
            # w . (x - m) / s + b == (w / s) . x + (b - (w / s) . m). With imputation the
            # design is [x0 + miss * fill, miss[:, indicators]] (x0: x with 0 for NaN), so the
            # missing mask gets its own weights: (w / s) * fill, plus the indicators'.
            W_raw = W_num / scale
            W_missing = W_raw[:, :d] * fill
            W_missing[:, self.indicators] += W_raw[:, d:]
            self.register_buffer("weight", W_raw[:, :d].float().contiguous())  # (n_out, d)
            if self.impute:
                self.register_buffer("weight_missing", W_missing.float().contiguous())  # (n_out, d)
            self.register_buffer("bias", (b - W_raw @ mean).float())
        else:
            self.register_buffer("mean", mean.to(dtype))
            self.register_buffer("inv_scale", (1.0 / scale).to(dtype))
            self.register_buffer("weight", W_num.to(dtype).contiguous())
            self.register_buffer("bias", b.to(dtype))
            self.register_buffer("fill", fill.to(dtype))
            self.register_buffer("indicator_index", torch.as_tensor(self.indicators, dtype=torch.int64))
        # The coefficients of each (value id, column): (n_ids, n_text, n_out), binary (n_ids, n_text).
        table = category_table(W, enc.n_numeric).to(dtype)  # per slot, then the unknown slot's 0
        by_value = table[torch.as_tensor(value_ids(enc)[1])] if self.text else table[:0]
        self.register_buffer("by_value", by_value[..., 0].contiguous() if self.binary else by_value.contiguous())
        t = self.threshold
        logit_t = math.log(t / (1.0 - t)) if 0.0 < t < 1.0 else (-math.inf if t <= 0.0 else math.inf)
        self.register_buffer("logit_threshold", torch.tensor(logit_t, dtype=dtype))

    def _categories(self, ids: torch.Tensor) -> torch.Tensor:
        """Sum of each row's category coefficients: (batch,) binary, (batch, n_classes) otherwise.

        by_value[ids[b, j], j] as a gather along the ids (one GatherElements), cheaper in
        onnxruntime than looking up slots and then their coefficients.
        """
        if self.binary:
            return torch.gather(self.by_value, 0, ids).sum(dim=1)
        k = self.by_value.shape[2]
        return torch.gather(self.by_value, 0, ids[:, :, None].expand(-1, -1, k)).sum(dim=1)

    def _linear(self, W: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x @ W^T (+ bias): (batch,) for a binary model, (batch, n_classes) otherwise."""
        if not self.binary:
            return x @ W.T if bias is None else x @ W.T + bias
        # w x^T, a Gemm with one row, rather than x w^T, a Gemm with one column: onnxruntime
        # runs the first ~3x faster on a tall batch. The reshape is free; a transpose would
        # be fused back into the slow form. The bias rides in the Gemm's C input (addmm's
        # transpose of x is fused into the Gemm's transB): one node less per call.
        if bias is None:
            return F.linear(W, x).reshape(-1)
        return torch.addmm(bias.reshape(1, 1), W, x.T).reshape(-1)

    def _numeric(self, features: torch.Tensor) -> torch.Tensor:
        """The numeric part of the logits, imputation included."""
        x, miss = features, None
        if self.impute:
            missing = torch.isnan(x)
            # A scalar fill: onnxruntime's Where runs ~2.5x faster than with a per-column one.
            x = torch.where(missing, torch.zeros((), dtype=x.dtype), x)
            miss = missing.to(x.dtype)  # (batch, d) 0/1
        if self.variant == "folded":
            z = self._linear(self.weight, x, self.bias)
            return z if miss is None else z + self._linear(self.weight_missing, miss)
        x = x.to(self.mean.dtype)
        if miss is not None:
            x = x + miss.to(x.dtype) * self.fill
            if self.indicators:
                x = torch.cat([x, miss.index_select(1, self.indicator_index).to(x.dtype)], dim=1)
        return self._linear(self.weight, (x - self.mean) * self.inv_scale, self.bias)

    def forward(self, features: torch.Tensor, ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z = self._numeric(features)  # (batch,) binary, (batch, n_classes) otherwise
        if self.text:
            z = z + self._categories(ids)  # each row's category coefficients
        # z - z is 0 for a finite logit and NaN for an infinite one: a row whose logits are not
        # finite scores NaN probabilities, not a confident 0 or 1 (edgelr.non_finite = "nan").
        z = z + (z - z)
        if not self.binary:
            return torch.argmax(z, dim=1), probabilities(z).to(torch.float32)
        # (batch, 2): one Sigmoid on [-z, z], which is probabilities(z[:, None]) value for value (column 0
        # is sigmoid(-z)), one node less than a Sigmoid per column and the same one Concat; it stays in [0, 1].
        zc = z[:, None]
        proba = torch.sigmoid(torch.cat([-zc, zc], dim=1)).to(torch.float32)
        # The threshold lives in the graph, applied to the logit: p > t <=> z > logit(t).
        return (z > self.logit_threshold).to(torch.int64), proba


@dataclass
class OrtFiles:
    """The ORT-format model and the config a reduced onnxruntime build is made from."""

    model: bytes
    config: str  # onnxruntime's required-operators-and-types format


@dataclass
class ExportResult:
    path: str
    graph: str
    report: ParityReport
    notes: list[str]
    ort_paths: list[str] = field(default_factory=list)  # with --ort: the .ort model and its config
    ort_report: ParityReport | None = None


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    ort_format: bool = False,
    threshold: float | None = None,
) -> ExportResult:
    """Export, verify against torch, and write ``out`` only if parity holds.

    With ``ort_format``, also write ``out`` with suffix ``.ort`` (onnxruntime's format
    for its mobile and minimal builds) and its required-operators config; the ORT
    model passes the same parity check, and nothing is written unless both pass.
    ``threshold``: a binary model's threshold in place of the checkpoint's (``export --threshold``).
    """
    _check_tolerances(atol, rtol)
    _check_opset(opset)
    if os.path.exists(out) and os.path.samefile(out, checkpoint):
        raise ConfigError(f"{os.fspath(out)}: is the checkpoint being exported; expected a different -o path")
    if ort_format and Path(out).suffix.lower() == ".ort":
        raise ConfigError(f"{os.fspath(out)}: -o names the ONNX file, and --ort writes the .ort beside it; "
                          "expected an -o path ending in .onnx")
    state = load_checkpoint(checkpoint)
    notes: list[str] = []
    if threshold is not None:
        state = _at_threshold(state, threshold, os.fspath(checkpoint), notes)
    rows = _data_rows(state, data)
    failure: ParityError | None = None
    for variant in GRAPHS:
        model = to_onnx(state, variant, opset)
        ort_files = ort_report = None
        try:
            session = session_for(model.SerializeToString())
            report = check_parity(state, session, data=rows, atol=atol, rtol=rtol)
            check_logits(state, session, data=rows)  # explanations add up to the logits it gives
            add_metadata(model, state, {"edgelr.parity": report.to_metadata(variant)})
            if ort_format:  # the ORT model is optimized further: it must pass on its own
                ort_files = to_ort(model.SerializeToString(), Path(out).with_suffix(".ort").name)
                ort_report = check_parity(state, session_for(ort_files.model), data=rows, atol=atol, rtol=rtol)
        except ParityError as exc:
            failure = exc
            notes.append(f"{variant} graph failed the parity check ({exc}); trying a more precise graph")
            continue
        onnx.checker.check_model(model, full_check=True)
        result = ExportResult(os.fspath(out), variant, report, notes, ort_report=ort_report)
        with atomic_path(out) as tmp:
            onnx.save_model(model, os.fspath(tmp))
        if ort_files is not None:
            result.ort_paths = _write_ort(ort_files, Path(out))
        return result
    assert failure is not None
    raise failure


_THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1")  # measured at the training threshold


def _at_threshold(state: dict, threshold: float, name: str, notes: list[str]) -> dict:
    """The checkpoint's state with its binary threshold replaced; the checkpoint itself is left as it is.

    Its accuracy, precision, recall and f1 were measured at the training threshold, so
    they are left out of the model's metrics (``edgelr evaluate`` measures them at the
    new one), and ``notes`` says so.
    """
    if len(state["classes"]) != 2:
        raise ConfigError(f"{name}: --threshold is for binary models, and this one has {len(state['classes'])} "
                          "classes (it labels the most probable one); expected no --threshold")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"--threshold {threshold:g}: expected a probability strictly between 0 and 1")
    trained_at = state["threshold"]
    if threshold == trained_at:
        return state
    notes.append(f"threshold {threshold:g} instead of the checkpoint's {trained_at:g}; its accuracy, "
                 "precision, recall and f1 (measured at that one) are left out of the model's metrics")
    metrics = {split: None if m is None else {k: v for k, v in m.items() if k not in _THRESHOLD_METRICS}
               for split, m in state["metrics"].items()}
    return {**state, "threshold": float(threshold), "metrics": metrics}


def to_ort(onnx_model: bytes, name: str) -> OrtFiles:
    """Convert to the ORT format as onnxruntime's convert_onnx_models_to_ort does by default.

    "Fixed" optimization style at the "all" level minus the NCHWc layout transformer, which
    would tie the file to x86 CPUs: the result runs on ARM devices too.
    """
    from onnxruntime.tools.ort_format_model import create_config_from_models

    with tempfile.TemporaryDirectory(prefix="edgelr-ort-") as folder:
        ort_path = Path(folder) / name
        options = ort.SessionOptions()
        options.optimized_model_filepath = os.fspath(ort_path)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.save_model_format", "ORT")
        options.log_severity_level = 3
        ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"],
                             disabled_optimizers=["NchwcTransformer"])
        config_path = ort_path.with_suffix(ORT_CONFIG_SUFFIX)
        tools_logger = logging.getLogger("ort_format_model.utils")  # logs "Created config" at INFO
        level = tools_logger.level
        tools_logger.setLevel(logging.WARNING)
        try:
            create_config_from_models([ort_path], config_path, enable_type_reduction=True)
        finally:
            tools_logger.setLevel(level)
        # The config names the model it came from: the final name, not the temporary folder.
        config = config_path.read_text().replace(os.fspath(ort_path), name)
        return OrtFiles(ort_path.read_bytes(), config)


def _write_ort(files: OrtFiles, onnx_path: Path) -> list[str]:
    ort_path, config_path = onnx_path.with_suffix(".ort"), onnx_path.with_suffix(ORT_CONFIG_SUFFIX)
    with atomic_path(ort_path) as tmp:
        tmp.write_bytes(files.model)
    with atomic_path(config_path) as tmp:
        tmp.write_text(files.config)
    return [os.fspath(ort_path), os.fspath(config_path)]


def to_onnx(state: dict, variant: str, opset: int | None = None) -> onnx.ModelProto:
    """Trace one graph variant with the dynamo exporter; batch is a symbolic axis."""
    encoding = encoding_of(state)
    n_features, n_text = len(encoding.numeric), len(encoding.text)
    # A dummy batch of 2: the exporter would specialize a size-0 or size-1 dimension.
    batch = torch.export.Dim("batch")
    inputs = (torch.zeros(2, n_features, dtype=torch.float32),)
    if n_text:
        inputs += (torch.zeros(2, n_text, dtype=torch.int64),)
    program = _quietly(
        lambda: torch.onnx.export(
            ExportGraph(state, variant).eval(),
            inputs,
            None,
            dynamo=True,
            input_names=["features", "ids"][: len(inputs)],
            output_names=["label", "probabilities"],
            dynamic_shapes=tuple({0: batch} for _ in inputs),  # by position: forward's arg names are free
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    )
    model = program.model_proto
    if n_text:
        _take_strings(model, encoding)
    model.producer_name = "edgelr"
    model.producer_version = __version__
    model.graph.name = "edgelr_logistic_regression"
    return model


def _take_strings(model: onnx.ModelProto, encoding: Encoding) -> None:
    """Replace the traced graph's int64 ``ids`` input by a string ``categories`` input and the encoding's lookup."""
    graph = model.graph
    ids = next(i for i in graph.input if i.name == "ids")
    batch = ids.type.tensor_type.shape.dim[0].dim_param
    categories = onnx.helper.make_tensor_value_info("categories", onnx.TensorProto.STRING, [batch, len(encoding.text)])
    nodes, opsets = category_lookup(encoding, "categories", "ids")
    graph.input.remove(ids)
    graph.input.append(categories)
    existing = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + existing)  # the lookup first: nodes are in topological order
    for opset in opsets:  # the exporter may already import the domain (at version 1): one import per domain
        found = next((o for o in model.opset_import if o.domain == opset.domain), None)
        if found is None:
            model.opset_import.append(opset)
        else:
            found.version = max(found.version, opset.version)


def _data_rows(state: dict, data) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The ``--data`` rows as the model's inputs: (numbers, text or None), or None without ``--data``."""
    if data is None:
        return None
    encoding = encoding_of(state)
    numbers, text = read_raw(data, encoding.numeric, encoding.text, allow_missing=encoding.impute is not None)
    return numbers, text if encoding.text else None


def add_metadata(model: onnx.ModelProto, state: dict, extra: dict) -> None:
    """The metadata_props of the ONNX contract; JSON for structured values."""
    encoding = encoding_of(state)
    text = {
        "edgelr.categorical_names": json.dumps(encoding.text),
        "edgelr.categories": json.dumps(dict(zip(encoding.text, encoding.categories))),
    } if encoding.text else {}
    # Each numeric column's training range, for the device's drift warnings (none for a version-1 checkpoint).
    ranges = {"edgelr.ranges": json.dumps({c: [lo, hi] for c, lo, hi in zip(encoding.numeric, encoding.low.tolist(),
                                                                           encoding.high.tolist())})
              } if np.isfinite(encoding.low).all() else {}
    props = {
        **text,
        **ranges,
        "edgelr.coefficients": json.dumps(coefficients_of(state, encoding)),
        # Columns an L1 penalty left with only zero coefficients: a device need not measure them.
        "edgelr.zero_weight_columns": json.dumps(encoding.unused_columns(state["weight"].double().numpy())),
        **({"edgelr.impute": encoding.impute} if encoding.impute else {}),
        "edgelr.format": METADATA_FORMAT,
        NAN_ROWS_KEY: NAN_ROWS,
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


def coefficients_of(state: dict, encoding: Encoding) -> dict:
    """The model's coefficients in float64, for the runtime's explanations (``Predictor.explain``).

    ``intercept`` (n_outputs,), ``weight`` (n_outputs, n_design) in the encoding's design
    order (numeric columns, their missing indicators, then each text column's categories in
    ``edgelr.categories`` order), ``mean`` and ``scale`` (n_numeric design columns), ``fill``
    (n_numeric columns, null without imputation) and ``indicators`` (numeric positions).
    """
    return {
        "intercept": state["bias"].double().tolist(),
        "weight": state["weight"].double().tolist(),
        "mean": [float(v) for v in encoding.mean],
        "scale": [float(v) for v in encoding.scale],
        "fill": [None if math.isnan(v) else float(v) for v in encoding.fill],
        "indicators": [int(i) for i in encoding.indicators],
    }


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
    return check_parity(state, model.session, data=_data_rows(state, data), atol=atol, rtol=rtol)
