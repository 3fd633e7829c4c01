"""Readable summaries of checkpoints and ONNX models (``edgelr info``).

ONNX files are read with onnxruntime alone, so ``edgelr info model.onnx`` works on a
device without torch or onnx; only a checkpoint summary imports torch.
"""

from __future__ import annotations

import json
import os
import zipfile

from edgelr.errors import ModelFileError

_METRIC_ORDER = ("accuracy", "log_loss", "precision", "recall", "f1", "roc_auc")


def describe(path: str | os.PathLike) -> list[str]:
    """Summary lines for a checkpoint (.pt, a zip archive) or an edgelr ONNX model."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise ModelFileError(f"{name}: no such file; expected a checkpoint (.pt) or an ONNX model (.onnx)")
    if zipfile.is_zipfile(name):
        from edgelr.checkpoint import load_checkpoint  # torch, only for checkpoints

        return describe_checkpoint(name, load_checkpoint(name))
    return describe_onnx(name)


def describe_checkpoint(name: str, state: dict) -> list[str]:
    config, data = state["config"], state.get("data", {})
    lines = [
        f"edgelr checkpoint: {name}",
        f"  format      {state['format']} v{state['format_version']} (edgelr {state.get('edgelr_version', '?')})",
        *_model_lines(state["feature_names"], state["classes"], state["threshold"]),
    ]
    if data:
        lines.append(f"  data        {data['source']}: {data['rows']} rows ({data['train_rows']} train, "
                     f"{data['validation_rows']} validation), label '{data['label']}'")
    settings = ", ".join(f"{k}={config[k]}" for k in ("optimizer", "penalty", "C", "class_weight",
                                                     "standardize", "device") if k in config)
    lines.append(f"  training    {settings}")
    history = state["history"]
    if history:
        lines.append(f"  loss        {history[0]['loss']:.6f} at epoch 0 -> {history[-1]['loss']:.6f} "
                     f"at epoch {history[-1]['epoch']}")
    return lines + metrics_table(state["metrics"])


def describe_onnx(name: str) -> list[str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(name, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFileError(f"{name}: neither a checkpoint nor a model onnxruntime can load; expected a .pt "
                             "from 'edgelr train' or an .onnx from 'edgelr export'") from exc
    meta = session.get_modelmeta().custom_metadata_map
    if "edgelr.format" not in meta:
        raise ModelFileError(f"{name}: an ONNX model but not an edgelr model (no edgelr.format in its metadata)")
    classes = json.loads(meta["edgelr.classes"])
    threshold = json.loads(meta["edgelr.threshold"]) if "edgelr.threshold" in meta else None
    lines = [
        f"edgelr ONNX model: {name}",
        f"  format      edgelr ONNX {meta['edgelr.format']} (edgelr {meta.get('edgelr.version', '?')})",
        *_model_lines(json.loads(meta["edgelr.feature_names"]), classes, threshold),
        *(f"  {'input' if kind == 'in' else 'output':<11} {arg.name} {arg.type} {arg.shape}"
          for kind, args in (("in", session.get_inputs()), ("out", session.get_outputs())) for arg in args),
    ]
    if "edgelr.parity" in meta:
        p = json.loads(meta["edgelr.parity"])
        lines.append(f"  parity      max diff {p['max_abs_diff']:.3g} over {p.get('rows_checked', '?')} rows "
                     f"(atol {p['atol']:g}, rtol {p['rtol']:g}; {p.get('graph', '?')} graph; "
                     f"torch {p['torch']}, onnxruntime {p['onnxruntime']})")
    return lines + metrics_table(json.loads(meta.get("edgelr.metrics", "{}")))


def metrics_table(metrics: dict) -> list[str]:
    """Train and validation metrics side by side; '-' where a value is missing."""
    splits = [s for s in ("train", "validation", "evaluation") if s in metrics]
    if not splits:
        return []
    names = [m for m in _METRIC_ORDER if any((metrics[s] or {}).get(m) is not None for s in splits)]
    lines = ["  metrics     " + "".join(f"{s:>12}" for s in splits)]
    for m in names:
        cells = [(metrics[s] or {}).get(m) for s in splits]
        lines.append(f"    {m:<10}" + "".join(f"{c:>12.4f}" if c is not None else f"{'-':>12}" for c in cells))
    return lines


def _model_lines(features: list, classes: list, threshold) -> list[str]:
    kind = f"binary, threshold {threshold}" if len(classes) == 2 else "multinomial"
    return [
        f"  features    {len(features)}: {', '.join(map(str, features))}",
        f"  classes     {len(classes)}: {', '.join(map(str, classes))} ({kind})",
    ]
