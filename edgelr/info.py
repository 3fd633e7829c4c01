"""Readable summaries of checkpoints and ONNX models (``edgelr info``).

ONNX files are read with onnxruntime alone, so ``edgelr info model.onnx`` works on a
device without torch or onnx; only a checkpoint summary imports torch.
"""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile

from edgelr.errors import MissingExtraError, ModelFileError
from edgelr.metrics import METRIC_NAMES


def describe(path: str | os.PathLike) -> list[str]:
    """Summary lines for a checkpoint (.pt, a zip archive) or an edgelr ONNX model."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise ModelFileError(f"{name}: is a directory; expected a checkpoint (.pt) or an ONNX model (.onnx)")
    if not os.path.isfile(name):
        raise ModelFileError(f"{name}: no such file; expected a checkpoint (.pt) or an ONNX model (.onnx)")
    if zipfile.is_zipfile(name):
        if importlib.util.find_spec("torch") is None:
            raise MissingExtraError(f"{name}: reading a checkpoint needs torch; install the training extra: "
                                    "pip install 'edgelr[train]'")
        from edgelr.checkpoint import load_checkpoint  # torch, only for checkpoints

        return describe_checkpoint(name, load_checkpoint(name))
    return describe_onnx(name)


def describe_checkpoint(name: str, state: dict) -> list[str]:
    config, data = state["config"], state.get("data", {})
    encoding = state.get("encoding") or {}
    text = [c for c, k in zip(encoding.get("columns", []), encoding.get("kinds", [])) if k == "text"]
    lines = [
        f"edgelr checkpoint: {name}",
        f"  format      {state['format']} v{state['format_version']} (edgelr {state.get('edgelr_version', '?')})",
        *_model_lines(state["feature_names"], state["classes"], state["threshold"]),
        *encoding_lines(dict(zip(text, encoding.get("categories", []))), encoding.get("impute"),
                        [state["feature_names"][i] for i in encoding.get("indicators", [])]),
    ]
    if data:
        lines.append(f"  data        {data['source']}: {data['rows']} rows ({data['train_rows']} train, "
                     f"{data['validation_rows']} validation), label '{data['label']}'")
    settings = ", ".join(f"{k}={config[k]}" for k in ("optimizer", "penalty", "C", "l1_ratio", "class_weight",
                                                     "standardize", "device") if k in config)
    lines.append(f"  training    {settings}")
    lines += unused_lines(unused_columns(state))
    if config.get("threshold_rule"):
        lines.append(f"  threshold   {state['threshold']:.6g}, chosen by {config['threshold_rule']} "
                     "on the validation rows")
    cv = state.get("cv")
    if isinstance(cv, dict) and cv.get("scores"):
        lines += cv_lines(cv, cv.get("folds"))
    history = state["history"]
    if history:
        lines.append(f"  loss        {history[0]['loss']:.6f} at epoch 0 -> {history[-1]['loss']:.6f} "
                     f"at epoch {history[-1]['epoch']}")
    return lines + metrics_table(state["metrics"])


def describe_onnx(name: str) -> list[str]:
    from edgelr.runtime import Predictor  # validates the file and its metadata, torch-free

    model = Predictor(name)
    meta = model.metadata
    lines = [
        f"edgelr {'ORT-format' if name.lower().endswith('.ort') else 'ONNX'} model: {name}",
        f"  format      edgelr ONNX {meta['edgelr.format']} (edgelr {meta.get('edgelr.version', '?')})",
        *_model_lines(model.feature_names, model.classes, model.threshold),
        *encoding_lines(model.categories, model.impute),
        *(f"  {kind:<11} {arg.name} {arg.type} {arg.shape}" for kind, arg in model.signature()),
        *unused_lines(_json_or_none(meta.get("edgelr.zero_weight_columns")) or []),
    ]
    parity = parity_figures(meta.get("edgelr.parity"))
    if parity is not None:
        lines.append(f"  parity      max diff {parity['max_abs_diff']:.3g} over {parity.get('rows_checked', '?')} "
                     f"rows (atol {parity['atol']:g}, rtol {parity['rtol']:g}; {parity.get('graph', '?')} graph; "
                     f"torch {parity.get('torch', '?')}, onnxruntime {parity.get('onnxruntime', '?')})")
    metrics = _json_or_none(meta.get("edgelr.metrics"))
    return lines + (metrics_table(metrics) if isinstance(metrics, dict) else [])


def unused_columns(state: dict) -> list[str]:
    """A checkpoint's input columns whose every coefficient is 0 (an L1 penalty's doing)."""
    from edgelr.checkpoint import encoding_of  # torch: only checkpoints are read here

    return encoding_of(state).unused_columns(state["weight"].numpy())


def unused_lines(columns: list[str]) -> list[str]:
    """The columns with only zero weights, which a device need not measure."""
    if not columns:
        return []
    return [f"  zero weight {len(columns)} column{'s' if len(columns) > 1 else ''} the model ignores "
            f"(a device need not measure them): {', '.join(columns)}"]


def parity_figures(text: str | None) -> dict | None:
    """The ``edgelr.parity`` metadata as a dict, or None when absent or not readable."""
    figures = _json_or_none(text)
    return figures if isinstance(figures, dict) and {"atol", "rtol", "max_abs_diff"} <= set(figures) else None


def _json_or_none(text: str | None):
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def encoding_lines(categories: dict[str, list[str]], impute: str | None,
                   indicators: list[str] | None = None) -> list[str]:
    """How the model reads its columns: text columns and their categories, imputation, and the
    numeric columns with a missing indicator."""
    lines = []
    if categories:
        lines.append(f"  text        {len(categories)}: " + ", ".join(
            f"{c} ({len(v)} categories: {_preview(v)})" for c, v in categories.items()))
    if impute:
        extra = f"; missing indicators for {', '.join(indicators)}" if indicators else ""
        text = "; a missing text value is a category of its own" if categories else ""
        lines.append(f"  missing     numbers filled with the training {impute}{extra}{text}")
    return lines


def _preview(values: list[str], most: int = 6) -> str:
    shown = ", ".join("(missing)" if v == "" else v for v in values[:most])
    return shown + (f", ... {len(values) - most} more" if len(values) > most else "")


def metrics_table(metrics: dict) -> list[str]:
    """Train and validation metrics side by side; '-' where a value is missing."""
    splits = [s for s in ("train", "validation", "evaluation") if s in metrics]
    if not splits:
        return []
    names = [m for m in METRIC_NAMES if any((metrics[s] or {}).get(m) is not None for s in splits)]
    lines = ["  metrics     " + "".join(f"{s:>12}" for s in splits)]
    for m in names:
        cells = [(metrics[s] or {}).get(m) for s in splits]
        lines.append(f"    {m:<10}" + "".join(f"{c:>12.4f}" if c is not None else f"{'-':>12}" for c in cells))
    return lines


def cv_lines(cv: dict, folds: int | None) -> list[str]:
    """The choice of C (``--cv``): each candidate's mean held-out log loss, the chosen one marked."""
    head = f"  C chosen    {cv['C']:g} by {folds or '?'}-fold cross-validation (mean held-out log loss):"
    return [head, *(f"    C={s['C']:<10g}{s['log_loss']:>12.6f}{'  <- chosen' if s['C'] == cv['C'] else ''}"
                    for s in cv["scores"])]


def _model_lines(features: list, classes: list, threshold) -> list[str]:
    kind = f"binary, threshold {threshold}" if len(classes) == 2 else "multinomial"
    return [
        f"  features    {len(features)}: {', '.join(map(str, features))}",
        f"  classes     {len(classes)}: {', '.join(map(str, classes))} ({kind})",
    ]
