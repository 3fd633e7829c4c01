"""The training report (``edgelr train --report DIR``, ``edgelr report``): PNG plots and a model card.

Plots are drawn with matplotlib's Agg canvas on ``Figure`` objects, never through
pyplot, so no display and no global figure state are involved. Everything is rendered
in memory first and only then written, each file atomically and the card last: a
failure while drawing writes nothing, and no file is ever left half-written.

Torch-free: it takes the checkpoint as a dict and the model's probabilities as arrays;
``edgelr.workflow`` computes them.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from edgelr import __version__
from edgelr.errors import ModelFileError
from edgelr.fileio import atomic_path
from edgelr.info import parity_figures, unused_columns
from edgelr.metrics import (
    METRIC_NAMES,
    average_precision,
    calibration_bins,
    confusion_matrix,
    precision_recall_curve,
    predicted_labels,
    roc_auc,
    roc_curve,
)

CARD_NAME = "model_card.md"
DPI = 120
# Shared look: large enough to read in a thumbnail on a review page.
_STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
          "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
_CONFIG_ORDER = ("optimizer", "penalty", "C", "l1_ratio", "class_weight", "standardize", "lr", "epochs", "batch_size",
                 "tol", "seed", "val_fraction", "device")


@dataclass
class Scored:
    """The rows the plots show, and the model's probabilities for them.

    y : ndarray of shape (n_rows,), int class indices into the checkpoint's classes
    proba : ndarray of shape (n_rows, n_classes)
    """

    y: np.ndarray
    proba: np.ndarray
    subject: str  # what the rows are, for titles: "validation split", "data.csv", ...
    threshold: float = 0.5  # a binary model's: labels are p1 > threshold (the confusion matrix, the curves' marker)

    @property
    def title(self) -> str:
        return f"{self.subject}, {self.y.size} rows"


@dataclass
class Parity:
    """The exported model the card describes: its file and its ``edgelr.parity`` figures."""

    model: str
    figures: dict | None  # None when the file carries no readable parity metadata


@dataclass
class Report:
    folder: str
    files: list[str]  # every file written, the card last
    notes: list[str] = field(default_factory=list)  # things a user should know, e.g. a stale export

    @property
    def card(self) -> str:
        return self.files[-1]


def write_report(
    out_dir: str | os.PathLike,
    state: dict,
    scored: Scored,
    *,
    checkpoint: str | os.PathLike,
    parity: Parity | None = None,
    extra_metrics: dict[str, dict] | None = None,
    notes: Sequence[str] = (),
) -> Report:
    """Draw the plots of ``scored`` and write them with a model card into ``out_dir``.

    state : the checkpoint dict (``edgelr.checkpoint.load_checkpoint``)
    extra_metrics : more metric columns for the card, e.g. {"data.csv": {...}}
    """
    classes = [str(c) for c in state["classes"]]
    figures = {"loss.png": ("Loss curve", loss_figure(state["history"]))}
    figures["confusion.png"] = ("Confusion matrix", confusion_figure(scored, classes))
    figures["roc.png"] = ("ROC curve", roc_figure(scored, classes))
    figures["precision_recall.png"] = ("Precision-recall curve", pr_figure(scored, classes))
    if len(classes) == 2:
        figures["calibration.png"] = ("Calibration", calibration_figure(scored, classes))
    images = {name: (caption, _png(fig)) for name, (caption, fig) in figures.items()}
    card = model_card(state, scored, checkpoint=checkpoint, images={n: c for n, (c, _) in images.items()},
                      parity=parity, extra_metrics=extra_metrics or {}, notes=notes)

    folder = Path(out_dir)
    written = []
    for name, (_, data) in images.items():
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(data)
        written.append(os.fspath(folder / name))
    with atomic_path(folder / CARD_NAME) as tmp:
        tmp.write_text(card, encoding="utf-8")
    written.append(os.fspath(folder / CARD_NAME))
    return Report(os.fspath(folder), written, list(notes))


def find_parity(model: str | os.PathLike, state: dict, X: tuple[np.ndarray, np.ndarray | None],
                proba: np.ndarray) -> Parity:
    """Read an exported model's parity figures after checking it is this checkpoint's export.

    X : (numbers (n_rows, n_features), text (n_rows, n_text) or None), the report rows' raw values
    proba : ndarray of shape (n_rows, n_classes), the checkpoint's probabilities for X
    Raises ModelFileError when the file is another model (other features or classes,
    or other answers on the report rows): its parity would describe the wrong model.
    """
    from edgelr.runtime import Predictor  # numpy + onnxruntime only

    name = os.fspath(model)
    predictor = Predictor(name)
    if predictor.feature_names != list(state["feature_names"]) or predictor.classes != list(state["classes"]):
        raise ModelFileError(
            f"{name}: exported from another model (features {predictor.feature_names}, classes "
            f"{predictor.classes}); expected features {list(state['feature_names'])} and classes "
            f"{list(state['classes'])}"
        )
    figures = parity_figures(predictor.metadata.get("edgelr.parity"))
    atol, rtol = (figures or {}).get("atol", 1e-5), (figures or {}).get("rtol", 1e-4)
    diff = np.abs(predictor.score(*X)[1].astype(np.float64) - proba)
    # Ten times the export's tolerances: the rows here are not the ones the export checked.
    if diff.size and np.any(diff > 10 * (atol + rtol * np.abs(proba))):
        raise ModelFileError(
            f"{name}: gives other probabilities than the checkpoint on the report rows (max |diff| "
            f"{diff.max():.3g}); it was exported from an earlier training: run 'edgelr export' again"
        )
    return Parity(name, figures)


# -- figures -----------------------------------------------------------------------------


def _figure(width: float, height: float, **kwargs) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained", **kwargs)
    FigureCanvasAgg(fig)  # the Agg canvas, explicitly: headless, no pyplot
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _styled(draw):
    """Draw a figure under the report's rc settings, without touching the global ones."""
    import matplotlib

    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_STYLE):
            return draw(*args, **kwargs)

    wrapper.__doc__, wrapper.__name__ = draw.__doc__, draw.__name__
    return wrapper


@_styled
def loss_figure(history: list[dict]) -> Figure:
    """Training objective per epoch; validation loss too when the history carries ``val_loss``."""
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot()
    if not history:
        ax.text(0.5, 0.5, "No loss history in the checkpoint", transform=ax.transAxes, ha="center", color="C3")
        ax.set_title("Loss per epoch")
        return fig
    epochs = np.array([h["epoch"] for h in history], dtype=np.float64)
    loss = np.array([h["loss"] for h in history], dtype=np.float64)
    ax.plot(epochs, loss, marker="o" if len(history) <= 40 else None, markersize=4, color="C0",
            label=f"training objective (final {loss[-1]:.4f})")
    val = [(h["epoch"], h["val_loss"]) for h in history if _finite(h.get("val_loss"))]
    if val:
        v_epochs, v_loss = np.array(val, dtype=np.float64).T
        ax.plot(v_epochs, v_loss, marker="o" if len(val) <= 40 else None, markersize=4, color="C1",
                label=f"validation loss (final {v_loss[-1]:.4f})")
        best = int(np.argmin(v_loss))
        ax.scatter([v_epochs[best]], [v_loss[best]], s=80, facecolors="none", edgecolors="C1", zorder=3,
                   clip_on=False, label=f"lowest validation loss, epoch {int(v_epochs[best])}")
    values = np.concatenate([loss, np.array([v for _, v in val], dtype=np.float64)])
    if values.min() > 0 and values.max() / values.min() > 10:
        ax.set_yscale("log")  # a loss falling by orders of magnitude is flat on a linear axis
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(epochs[-1], 1))
    ax.set_xlabel("epoch (0 = starting parameters)")
    ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.set_title(f"Loss per epoch: {len(history) - 1} epochs"
                 + ("" if val else " (no validation loss recorded)"))
    ax.legend(loc="upper right")
    return fig


@_styled
def confusion_figure(scored: Scored, classes: list[str]) -> Figure:
    """Counts and row-normalized shares (each true class sums to 100%) side by side."""
    k = len(classes)
    matrix = confusion_matrix(scored.y, predicted_labels(scored.proba, scored.threshold), k)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    side = max(4.0, 0.55 * k + 2.5)
    fig = _figure(2 * side + 0.6, side + 0.6)
    fig.suptitle(f"Confusion matrix: {scored.title}", fontsize=12)
    size = 10 if k <= 6 else max(5, 12 - k // 2)
    rotate = k > 4 or max(map(len, classes)) > 8
    for ax, values, kind in ((fig.add_subplot(1, 2, 1), matrix, "counts"),
                             (fig.add_subplot(1, 2, 2), share, "share of each true class")):
        scaled = values / values.max() if kind == "counts" and values.max() else values
        ax.imshow(scaled, cmap="Blues", vmin=0, vmax=1)
        ax.grid(False)
        for i in range(k):
            for j in range(k):
                text = f"{values[i, j]:d}" if kind == "counts" else f"{100 * values[i, j]:.1f}%"
                ax.text(j, i, text, ha="center", va="center", fontsize=size,
                        color="white" if scaled[i, j] > 0.6 else "black")
        ax.set_xticks(range(k), classes, rotation=45 if rotate else 0, ha="right" if rotate else "center")
        ax.set_yticks(range(k), [f"{c} (n={int(n)})" for c, n in zip(classes, totals[:, 0])])
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(kind)
    return fig


@_styled
def roc_figure(scored: Scored, classes: list[str]) -> Figure:
    """ROC curve of the positive class (binary) or one-vs-rest per class, AUC in the legend."""
    fig = _figure(6.0, 5.6)
    ax = fig.add_subplot()
    for k, name, y, score in _one_vs_rest(scored, classes):
        auc = roc_auc(y, score)
        if auc is None:
            continue
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, color=f"C{k % 10}", linewidth=2, label=f"{name}: AUC = {auc:.3f}")
        if len(classes) == 2:
            tp, fp, fn, tn = _operating_point(y, score, scored.threshold)
            ax.scatter([fp / (fp + tn)], [tp / (tp + fn)], s=70, color="C3", zorder=3, clip_on=False,
                       label=f"threshold {scored.threshold:.3g}: FPR {fp / (fp + tn):.3f}, TPR {tp / (tp + fn):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance: AUC = 0.5")
    _unit_square(ax)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (recall)")
    ax.set_title(f"ROC curve{'s, one vs rest' if len(classes) > 2 else ''}\n{scored.title}")
    _absent_note(ax, scored, classes)
    ax.legend(loc="lower right")
    return fig


@_styled
def pr_figure(scored: Scored, classes: list[str]) -> Figure:
    """Precision-recall curve(s) with average precision in the legend."""
    fig = _figure(6.0, 5.6)
    ax = fig.add_subplot()
    for k, name, y, score in _one_vs_rest(scored, classes):
        ap = average_precision(y, score)
        if ap is None:
            continue
        precision, recall, _ = precision_recall_curve(y, score)
        # A classifier without skill has precision = the class's share of the rows.
        chance = float(np.mean(y))
        color = f"C{k % 10}"
        ax.plot(recall, precision, drawstyle="steps-post", color=color, linewidth=2,
                label=f"{name}: AP = {ap:.3f} (chance {chance:.3f})")
        if len(classes) == 2:
            tp, fp, fn, _ = _operating_point(y, score, scored.threshold)
            p_at = tp / (tp + fp) if tp + fp else 1.0  # nothing labelled positive: the curve's end point
            ax.scatter([tp / (tp + fn)], [p_at], s=70, color="C3", zorder=3, clip_on=False,
                       label=f"threshold {scored.threshold:.3g}: recall {tp / (tp + fn):.3f}, precision {p_at:.3f}")
        ax.axhline(chance, linestyle="--", color="grey" if len(classes) == 2 else color, linewidth=1, alpha=0.7)
    ax.plot([], [], linestyle="--", color="grey", linewidth=1, label="chance: share of the class")
    _unit_square(ax)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision-recall curve{'s, one vs rest' if len(classes) > 2 else ''}\n{scored.title}")
    _absent_note(ax, scored, classes)
    ax.legend(loc="lower left")
    return fig


@_styled
def calibration_figure(scored: Scored, classes: list[str], n_bins: int = 10) -> Figure:
    """Reliability diagram of a binary model: observed vs predicted, and rows per bin below."""
    positive = classes[1]
    bins = calibration_bins(scored.y, scored.proba[:, 1], n_bins)
    fig = _figure(6.0, 7.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    filled = bins["count"] > 0
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    x, y = bins["mean_predicted"][filled], bins["fraction_positive"][filled]
    top.plot(x, y, color="C0", linewidth=1.5, label=f"model ({n_bins} bins; larger dot = more rows)")
    # Dot area follows the bin's rows, so a bin of one row does not look as sure as one of hundreds.
    top.scatter(x, y, s=15 + 135 * bins["count"][filled] / bins["count"].max(), color="C0", zorder=3)
    top.set_xlim(-0.02, 1.02)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel(f"observed share of class {positive}")
    top.set_title(f"Calibration\n{scored.title}")
    # Below the plot: points can sit in any corner of the square, a legend inside would hide some.
    fig.legend(*top.get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False)
    centers = (bins["edges"][:-1] + bins["edges"][1:]) / 2
    bars = bottom.bar(centers, bins["count"], width=0.9 / n_bins, color="C0", alpha=0.6)
    bottom.bar_label(bars, labels=[str(int(c)) if c else "" for c in bins["count"]], fontsize=8, padding=1)
    bottom.set_ylim(0, bins["count"].max() * 1.25 + 1)
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    bottom.set_xticks(bins["edges"])
    bottom.set_xlabel(f"predicted probability of class {positive}")
    bottom.set_ylabel("rows")
    return fig


def _operating_point(y: np.ndarray, score: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of the labels score > threshold: where the model sits on its curves."""
    pred, y = score > threshold, y == 1
    return (int(np.sum(pred & y)), int(np.sum(pred & ~y)), int(np.sum(~pred & y)), int(np.sum(~pred & ~y)))


def _one_vs_rest(scored: Scored, classes: list[str]):
    """(index, legend name, 0/1 labels, score) per curve: the positive class alone when binary."""
    if len(classes) == 2:
        yield 0, f"class {classes[1]} vs {classes[0]}", (scored.y == 1).astype(np.int64), scored.proba[:, 1]
        return
    for k, name in enumerate(classes):
        yield k, name, (scored.y == k).astype(np.int64), scored.proba[:, k]


def _absent_note(ax, scored: Scored, classes: list[str]) -> None:
    """Say on the plot which classes have no curve: absent from the rows (or alone in them)."""
    present = set(np.unique(scored.y).tolist())
    if len(classes) == 2:
        missing = [] if present == {0, 1} else ["both classes needed; these rows hold one"]
    else:
        missing = [f"no rows of class {c}" for k, c in enumerate(classes) if k not in present]
        if len(present) < 2:
            missing.append("only one class in these rows")
    if missing:
        ax.text(0.5, 0.5, "No curve: " + "; ".join(missing), transform=ax.transAxes, ha="center",
                va="center", fontsize=10, color="C3", wrap=True, bbox={"facecolor": "white", "edgecolor": "C3"})


def _unit_square(ax) -> None:
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


# -- the model card -------------------------------------------------------------------------


def model_card(
    state: dict,
    scored: Scored,
    *,
    checkpoint: str | os.PathLike,
    images: dict[str, str],
    parity: Parity | None,
    extra_metrics: dict[str, dict],
    notes: Sequence[str] = (),
) -> str:
    """The card's Markdown: data, settings, metrics, plots (relative links), parity, device use."""
    checkpoint = os.fspath(checkpoint)
    classes = list(state["classes"])
    kind = "binary (sigmoid)" if len(classes) == 2 else f"multinomial (softmax over {len(classes)} classes)"
    history = state["history"]
    lines = [
        f"# Model card: {Path(checkpoint).name}",
        "",
        f"Logistic regression, {kind}, trained in PyTorch with edgelr "
        f"{state.get('edgelr_version', '?')}; checkpoint `{checkpoint}`. "
        f"Report written by edgelr {__version__}.",
        "",
        *_data_section(state, scored),
        *_settings_section(state, history),
        *_metrics_section(state["metrics"], extra_metrics),
        "## Plots",
        "",
        f"All plots but the loss curve show the model on: {scored.title}.",
        "",
    ]
    for name, caption in images.items():
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    lines += _parity_section(parity, checkpoint)
    lines += _device_section(state, checkpoint, parity)
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines).rstrip() + "\n"


def _data_section(state: dict, scored: Scored) -> list[str]:
    data = state.get("data") or {}
    features = list(state["feature_names"])
    classes = list(state["classes"])
    lines = ["## Training data", ""]
    if data:
        lines += [
            f"- Source: `{data['source']}`, label column `{data['label']}`",
            f"- Rows: {data['rows']} ({data['train_rows']} train, {data['validation_rows']} validation)",
        ]
    else:
        lines.append("- Source: not recorded in the checkpoint")
    lines += [f"- Features ({len(features)}): {', '.join(f'`{f}`' for f in features)}", ""]
    counts = data.get("class_counts") or {}
    plotted = np.bincount(scored.y, minlength=len(classes))
    if counts:
        total = sum(counts.values())
        lines += ["Class balance:", "", f"| class | rows | share | {scored.subject} |",
                  "|---|--:|--:|--:|"]
        for c, n_plotted in zip(classes, plotted):
            n = counts.get(str(c), 0)
            lines.append(f"| {c} | {n} | {100 * n / total:.1f}% | {n_plotted} |")
    else:
        lines += [f"Class balance ({scored.subject}):", "", "| class | rows | share |", "|---|--:|--:|"]
        for c, n_plotted in zip(classes, plotted):
            lines.append(f"| {c} | {n_plotted} | {100 * n_plotted / max(1, scored.y.size):.1f}% |")
    lines += [""]
    lines += _encoding_section(state)
    mean = np.asarray(state["mean"], dtype=np.float64)[: len(features)]
    scale = np.asarray(state["scale"], dtype=np.float64)[: len(features)]
    if state["config"].get("standardize", True):
        lines += ["Standardization (part of the exported graph: devices feed raw values), "
                  "x' = (x - mean) / scale with the training rows' mean and population std:", "",
                  "| feature | mean | scale |", "|---|--:|--:|"]
        lines += [f"| {f} | {m:.6g} | {s:.6g} |" for f, m, s in zip(features, mean, scale)]
    else:
        lines.append("Standardization: off (the model sees the raw feature values).")
    return lines + [""]


def _encoding_section(state: dict) -> list[str]:
    """Text columns with their categories, and how missing cells are filled (all inside the exported graph)."""
    encoding = state.get("encoding") or {}
    text = [c for c, k in zip(encoding.get("columns", []), encoding.get("kinds", [])) if k == "text"]
    lines = []
    if text:
        lines += ["Text columns, one-hot inside the model (a value never seen in training adds nothing to the "
                  "logit):", "", "| column | categories |", "|---|---|"]
        for name, cats in zip(text, encoding["categories"]):
            shown = ", ".join("(missing)" if c == "" else f"`{c}`" for c in cats[:30])
            lines.append(f"| {name} | {len(cats)}: {shown}{', ...' if len(cats) > 30 else ''} |")
        lines.append("")
    if encoding.get("impute"):
        numeric = list(state["feature_names"])
        fills = ", ".join(f"`{n}` {v:.6g}" for n, v in zip(numeric, encoding["fill"]) if v is not None)
        indicators = [numeric[i] for i in encoding.get("indicators", [])]
        lines += [f"Missing cells: numbers take the training {encoding['impute']} ({fills})"
                  + (f"; missing indicators for {', '.join(f'`{n}`' for n in indicators)}" if indicators else "")
                  + "; a missing text value is a category of its own.", ""]
    return lines


def _settings_section(state: dict, history: list[dict]) -> list[str]:
    config = state["config"]
    lines = ["## Settings", "", "| setting | value |", "|---|---|"]
    for key in [*_CONFIG_ORDER, *sorted(set(config) - set(_CONFIG_ORDER) - {"threshold_rule"})]:
        if key in config:
            lines.append(f"| {key} | {_setting(key, config[key])} |")
    if len(state["classes"]) == 2:
        rule = config.get("threshold_rule")
        how = f"; chosen by `{rule}` on the validation rows" if rule else ""
        lines.append(f"| threshold | {state['threshold']:.6g} (class {state['classes'][1]} when p > threshold"
                     f"{how}; the red dot on the ROC and precision-recall curves) |")
    unused = unused_columns(state)
    if unused:
        lines.append(f"| columns with zero weight | {', '.join(f'`{c}`' for c in unused)}: the penalty left every "
                     "coefficient of these at exactly 0, so the model ignores them and a device need not measure "
                     "them |")
    cv = state.get("cv")
    if isinstance(cv, dict) and cv.get("scores"):
        losses = ", ".join(f"{s['C']:g}: {s['log_loss']:.4f}" for s in cv["scores"])
        lines.append(f"| C chosen by cross-validation | {cv['C']:g} of {len(cv['scores'])} candidates by the mean "
                     f"held-out log loss over {cv.get('folds', '?')} stratified folds ({losses}) |")
    if history:
        lines.append(f"| loss | {history[0]['loss']:.6f} at epoch 0 -> {history[-1]['loss']:.6f} at epoch "
                     f"{history[-1]['epoch']} |")
    return lines + [""]


def _setting(key: str, value) -> str:
    if value is not None:
        return str(value)
    return {"class_weight": "none (every row weighs 1)", "batch_size": "full batch"}.get(key, "default")


def _metrics_section(metrics: dict, extra: dict[str, dict]) -> list[str]:
    columns = {s: metrics.get(s) for s in ("train", "validation") if s in metrics}
    columns.update(extra)
    if not columns:
        return ["## Metrics", "", "None recorded in the checkpoint.", ""]
    names = [m for m in METRIC_NAMES if any((c or {}).get(m) is not None for c in columns.values())]
    lines = ["## Metrics", "", "| metric | " + " | ".join(columns) + " |", "|---|" + "--:|" * len(columns)]
    for m in names:
        cells = [(c or {}).get(m) for c in columns.values()]
        lines.append(f"| {m} | " + " | ".join(f"{v:.4f}" if v is not None else "-" for v in cells) + " |")
    if any(c is None for c in columns.values()):
        lines += ["", "'-': no rows in that split (trained with --val-fraction 0)."]
    return lines + [""]


def _parity_section(parity: Parity | None, checkpoint: str) -> list[str]:
    lines = ["## Export and parity", ""]
    if parity is None:
        return lines + [
            f"Not exported yet. `edgelr export {checkpoint}` writes the ONNX model and proves that "
            "onnxruntime gives torch's probabilities; run the report again afterwards to show the figures here.",
            "",
        ]
    lines.append(f"ONNX model `{parity.model}`, checked against the checkpoint on the report rows.")
    figures = parity.figures
    if figures is None:
        return lines + ["", "The file carries no parity figures (`edgelr.parity` metadata).", ""]
    lines += ["", "| parity | value |", "|---|---|",
              f"| largest difference in probability, onnxruntime vs torch | {figures['max_abs_diff']:.3g} |",
              f"| tolerances | atol {figures['atol']:g}, rtol {figures['rtol']:g}: passed, "
              "every probability within atol + rtol * p (the export writes nothing otherwise) |"]
    optional = [("rows_checked", "rows checked"), ("batch_sizes", "batch sizes"), ("graph", "graph"),
                ("torch", "torch"), ("onnxruntime", "onnxruntime")]
    for key, label in optional:
        if key in figures:
            value = figures[key]
            value = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"| {label} | {value} |")
    for name, diff in (figures.get("sets") or {}).items():
        lines.append(f"| max difference on {name} | {diff:.3g} |")
    return lines + [""]


def _device_section(state: dict, checkpoint: str, parity: Parity | None) -> list[str]:
    model = parity.model if parity else os.fspath(Path(checkpoint).with_suffix(".onnx"))
    features = list(state["feature_names"])
    mean = np.asarray(state["mean"], dtype=np.float64)
    example = ", ".join(f'"{f}": {float(f"{m:.4g}")!r}' for f, m in zip(features, mean))
    encoding = state.get("encoding") or {}
    text = [c for c, k in zip(encoding.get("columns", []), encoding.get("kinds", [])) if k == "text"]
    features += text
    example = ", ".join([*([example] if example else []),
                         *(f'"{c}": {json.dumps(cats[0])}' for c, cats in zip(text, encoding.get("categories", [])))])
    classes = ", ".join(f"probability_{c}" for c in state["classes"])
    return [
        "## Running the model on a device",
        "",
        "1. Export once, where the training extra is installed (the parity check runs as part of it):",
        "",
        "   ```sh",
        f"   edgelr export {checkpoint} -o {model}",
        "   ```",
        "",
        "2. On the device install only the runtime (numpy and onnxruntime, no torch): `pip install edgelr`,",
        "   or copy `edgelr/runtime.py` next to the model. Then score a CSV whose header names the features",
        f"   ({', '.join(features)}; other columns are ignored). It writes `label, {classes}`:",
        "",
        "   ```sh",
        f"   edgelr predict {Path(model).name} rows.csv -o scores.csv",
        "   ```",
        "",
        "3. Or from Python, feeding raw feature values (standardization is inside the model):",
        "",
        "   ```python",
        "   from edgelr.runtime import Predictor",
        "",
        f'   model = Predictor("{Path(model).name}")',
        f"   model.predict_proba([{{{example}}}])  # float32 array of shape (1, {len(state['classes'])})",
        f"   model.predict([{{{example}}}])        # class names",
        "   ```",
        "",
        *_explanation_section(state),
    ]


def _explanation_section(state: dict) -> list[str]:
    """How to read ``predict --explain`` for this model."""
    binary = len(state["classes"]) == 2
    logit = (f"the log-odds of class {state['classes'][1]}, log(p / (1 - p))" if binary
             else "the logit (softmax input) of the class each row is predicted")
    return [
        "### How to read explanations",
        "",
        f"`edgelr predict --explain` (or `Predictor.explain`) adds `contribution_<column>` per input column: its "
        f"share of {logit}. They add up, with the model's intercept, to that logit. A numeric column's "
        "contribution is `w * (x - mean) / scale`, its value after imputation measured from the training mean "
        "(so 0 at the mean, and a missing cell's part, indicator included, is its column's); a text column's "
        "is its category's coefficient, 0 for a category never seen in training. Positive pushes toward "
        "the explained class, negative away from it; a contribution of 1 multiplies the odds by e (2.7). "
        "They describe the model, not causes in the world, and between correlated columns the split is arbitrary.",
        "",
        "Values outside a column's training range and categories never seen in training are counted by "
        "`edgelr predict` (one warning line per kind on stderr; `--strict` makes them an error): the model's "
        "answer there is an extrapolation.",
        "",
    ]
