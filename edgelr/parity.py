"""The parity gate: onnxruntime must give torch's answers (spec section 5).

Checks run in a fixed order, as optimum's validation does: the signature (names,
dtypes, a symbolic batch axis), then values at several batch sizes, on the training
rows when given, and on extreme rows; for a model that imputes, rows with missing
cells, and for one with text columns, missing and unseen categories. The torch side is
the checkpoint's model in float64 on the encoded rows (edgelr.encoding), fed the same
float32 values onnxruntime gets raw, so it is the most faithful reading of the trained
parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort
import torch

from edgelr.checkpoint import build_model, encoding_of
from edgelr.encoding import MISSING_CATEGORY, Encoding
from edgelr.errors import ModelFileError, ParityError

BATCH_SIZES = (1, 2, 7, 64, 4096)
DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4
# Rows whose largest logit is pushed to these values, where sigmoid/softmax saturate.
EXTREME_LOGIT = 30.0
# Raw feature magnitude of the "huge input" rows.
EXTREME_SCALE = 1e6
_MAX_ROWS_PER_RUN = 65_536  # bounds onnxruntime's working memory on big --data files
MISSING_SHARE = 0.2  # of the cells of the random rows that are missing, for a model that imputes
UNSEEN = "edgelr: a value never seen in training"  # the unseen category the random rows use
# Largest |logit difference| between onnxruntime and the float64 model: explanations (Predictor.explain,
# edgelr predict --explain) are computed in float64 from the coefficients and must add up to the logit of
# the probabilities the graph gives within this.
LOGIT_ATOL = 1e-4
MIN_P = 0.01  # rows with a probability under this are left out of that check (check_logits)


@dataclass
class ParityReport:
    """What was compared and the largest differences found."""

    atol: float
    rtol: float
    max_abs_diff: float = 0.0
    rows_checked: int = 0
    per_set: dict[str, float] = field(default_factory=dict)  # set name -> max |diff|
    worst: list[dict] = field(default_factory=list)  # the largest differences, biggest first
    label_mismatches: int = 0

    def to_metadata(self, graph: str) -> dict:
        return {
            "atol": self.atol,
            "rtol": self.rtol,
            "max_abs_diff": self.max_abs_diff,
            "batch_sizes": list(BATCH_SIZES),
            "rows_checked": self.rows_checked,
            "sets": self.per_set,
            "graph": graph,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
        }

    def lines(self) -> list[str]:
        out = [
            f"parity: max |p_onnxruntime - p_torch| = {self.max_abs_diff:.3g} over {self.rows_checked} rows "
            f"(atol {self.atol:g}, rtol {self.rtol:g})"
        ]
        out += [f"  {name:<14} max diff {diff:.3g}" for name, diff in self.per_set.items()]
        out += ["  largest: " + _describe(w) for w in self.worst]
        return out


def session_for(model: bytes | str) -> ort.InferenceSession:
    """A CPU session on an ONNX model given as bytes or a path; quiet on success."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no per-session chatter on stderr
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / InvalidProtobuf
        where = model if isinstance(model, str) else "the exported graph"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{where}: onnxruntime cannot load it ({reason})") from exc


def check_signature(session: ort.InferenceSession, n_features: int, n_classes: int, n_text: int = 0) -> None:
    """Input ``features`` float32 [batch, d] (and ``categories`` string [batch, n_text] with text
    columns); outputs ``label`` int64 [batch] and ``probabilities`` float32 [batch, n_classes],
    with a symbolic batch axis."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    expected_in = {"features": ("tensor(float)", n_features)}
    if n_text:
        expected_in["categories"] = ("tensor(string)", n_text)
    expected_out = {"label": ("tensor(int64)", None), "probabilities": ("tensor(float)", n_classes)}
    problems = _signature_problems("input", inputs, expected_in) + _signature_problems("output", outputs, expected_out)
    if problems:
        raise ParityError(
            "ONNX signature does not match the checkpoint: " + "; ".join(problems), max_abs_diff=float("nan")
        )


def check_parity(
    state: dict,
    session: ort.InferenceSession,
    *,
    data: tuple[np.ndarray, np.ndarray | None] | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    seed: int = 0,
) -> ParityReport:
    """Compare probabilities and labels of ``session`` with the checkpoint's torch model.

    data : optional (numbers (n_rows, n_features), text (n_rows, n_text) or None), the
        training rows as ``edgelr.data.read_raw`` reads them.
    Raises ParityError carrying the largest difference; returns the report otherwise.
    """
    encoding = encoding_of(state)
    check_signature(session, len(encoding.numeric), len(state["classes"]), len(encoding.text))
    reference = build_model(state, torch.float64)
    report = ParityReport(atol=atol, rtol=rtol)
    failures: list[str] = []
    for name, X, T in _input_sets(state, encoding, data, seed):
        _compare(name, X.astype(np.float32), T, reference, session, state["threshold"], report, failures)
    report.worst.sort(key=lambda w: -w["diff"])
    del report.worst[3:]
    if failures:
        raise ParityError(
            f"onnxruntime and torch disagree: largest |diff| {report.max_abs_diff:.3g} "
            f"(atol {atol:g}, rtol {rtol:g}); " + "; ".join(failures[:3])
            + "; worst: " + _describe(report.worst[0]),
            max_abs_diff=report.max_abs_diff,
            worst=report.worst,
        )
    return report


def check_logits(state: dict, session: ort.InferenceSession, *, data=None, atol: float = LOGIT_ATOL,
                 seed: int = 0) -> float:
    """The largest difference between the graph's logits (from its probabilities) and the float64 ones.

    On the random rows and the data rows of the parity check (not the extreme ones), binary:
    log(p1 / p0) against z; multiclass: log p_k - log p_0 against z_k - z_0; over the rows whose
    probabilities are all at least ``MIN_P``. Past them a float32 probability no longer carries
    its logit to 1e-4: onnxruntime's float32 sigmoid and softmax are exact to ~1e-7 absolute, so
    log p is off by up to ~1e-7 / p, whatever the graph computes before them. Inside, what is
    measured is the graph's own arithmetic: the folded graph loses ~2e-4 on features such as
    1000 +- 0.1 (w / s . x and its bias cancel), and the export takes a more precise graph.
    Raises ParityError past ``atol``.
    """
    encoding = encoding_of(state)
    W, b = state["weight"].double().numpy(), state["bias"].double().numpy()
    n_num = encoding.n_numeric
    table = np.concatenate([W[:, n_num:].T, np.zeros((1, W.shape[0]))])  # per slot, then the unknown one
    worst = 0.0
    for name, X, T in _input_sets(state, encoding, data, seed):
        if not (name.startswith("batch") or name == "data"):
            continue
        X32 = X.astype(np.float32)
        feeds = {"features": X32} if T is None else {"features": X32, "categories": T}
        p = session.run(["probabilities"], feeds)[0].astype(np.float64)
        design, slots = encoding.encode_values(X32.astype(np.float64), T)
        z = design @ W[:, :n_num].T + b + (0.0 if slots is None else table[slots].sum(axis=1))
        usable = (p >= MIN_P).all(axis=1)
        if not usable.any():
            continue
        log_p = np.log(p[usable])
        got = log_p[:, 1] - log_p[:, 0] if W.shape[0] == 1 else log_p - log_p[:, :1]
        want = z[usable, 0] if W.shape[0] == 1 else z[usable] - z[usable, :1]
        worst = max(worst, float(np.abs(got - want).max()))
    if worst > atol:
        raise ParityError(f"its logits differ from the float64 model's by up to {worst:.3g} (explanations must add "
                          f"up to them within {atol:g})", max_abs_diff=worst)
    return worst


def _input_sets(state: dict, encoding: Encoding, data, seed: int):
    """(name, numbers, text or None): random rows at each batch size, the data, extreme rows.

    The random rows have missing cells when the model imputes, and their text values are
    the training categories, an unseen value and missing cells.
    """
    rng = np.random.default_rng(seed)
    d = len(encoding.numeric)
    mean, scale = encoding.mean[:d], encoding.scale[:d]

    def text(n: int) -> np.ndarray | None:
        if not encoding.text:
            return None
        columns = [rng.choice(np.array([c for c in cats if c != MISSING_CATEGORY] + [UNSEEN, ""], dtype=object), n)
                   for cats in encoding.categories]
        return np.stack(columns, axis=1)

    def gaps(X: np.ndarray) -> np.ndarray:
        if encoding.impute is not None:
            X[rng.random(X.shape) < MISSING_SHARE] = np.nan
        return X

    for n in BATCH_SIZES:
        yield f"batch {n}", gaps(mean + scale * rng.standard_normal((n, d))), text(n)
    if data is not None:
        numbers, strings = data
        for start in range(0, numbers.shape[0], _MAX_ROWS_PER_RUN):
            part = slice(start, start + _MAX_ROWS_PER_RUN)
            yield "data", numbers[part], None if strings is None else strings[part]
    extreme = _extreme_logit_rows(state, encoding)
    yield "extreme logits", extreme, None if not encoding.text else np.full((len(extreme), len(encoding.text)),
                                                                            UNSEEN, dtype=object)
    yield "1e6 features", EXTREME_SCALE * rng.standard_normal((8, d)), text(8)


def _extreme_logit_rows(state: dict, encoding: Encoding) -> np.ndarray:
    """Rows where one output's logit is +-EXTREME_LOGIT, built along its numeric weights (unseen categories)."""
    d = len(encoding.numeric)
    W_all, b = state["weight"].double().numpy(), state["bias"].double().numpy()
    W, mean, scale = W_all[:, :d], encoding.mean[:d], encoding.scale[:d]
    # The rows have no missing cells: each standardized missing indicator sits at its 0.
    b = b + W_all[:, d : encoding.n_numeric] @ (-encoding.mean[d:] / encoding.scale[d:])
    rows = []
    for w_k, b_k in zip(W, b):
        norm2 = float(w_k @ w_k)
        if norm2 == 0.0:
            continue  # this output ignores the features: no row moves its logit
        for target in (EXTREME_LOGIT, -EXTREME_LOGIT):
            z = (target - b_k) * w_k / norm2  # standardized row with w_k @ z + b_k == target
            rows.append(mean + scale * z)
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), d)


def _compare(name, X32, text, reference, session, threshold, report, failures) -> None:
    if X32.shape[0] == 0:
        return
    with torch.no_grad():
        p_ref = reference(torch.from_numpy(X32.astype(np.float64)), text).numpy()
    feeds = {"features": X32} if text is None else {"features": X32, "categories": text}
    label, p_ort = session.run(["label", "probabilities"], feeds)
    diff = np.abs(p_ort.astype(np.float64) - p_ref)
    # NaN on either side compares False everywhere: count it as an infinite difference.
    diff[~np.isfinite(diff)] = np.inf
    set_max = float(diff.max())
    report.rows_checked += X32.shape[0]
    report.per_set[name] = max(report.per_set.get(name, 0.0), set_max)
    report.max_abs_diff = max(report.max_abs_diff, set_max)
    row = int(diff.max(axis=1).argmax())
    col = int(diff[row].argmax())
    report.worst.append({"set": name, "row": row, "class": col, "torch": float(p_ref[row, col]),
                         "onnxruntime": float(p_ort[row, col]), "diff": set_max})

    bad = ~(diff <= report.atol + report.rtol * np.abs(np.nan_to_num(p_ref)))
    if bad.any():
        r = int(np.argwhere(bad)[0][0])
        failures.append(f"{name}: {int(bad.any(axis=1).sum())} row(s) out of tolerance, first row {r}")
    expected_label = _reference_labels(p_ref, threshold)
    mismatched = (label != expected_label) & ~_ambiguous(p_ref, threshold, report.atol)
    if mismatched.any():
        report.label_mismatches += int(mismatched.sum())
        r = int(np.flatnonzero(mismatched)[0])
        failures.append(f"{name}: {int(mismatched.sum())} label(s) differ, first row {r} "
                        f"(onnxruntime {int(label[r])}, torch {int(expected_label[r])})")


def _reference_labels(p: np.ndarray, threshold: float) -> np.ndarray:
    if p.shape[1] == 2:
        return (p[:, 1] > threshold).astype(np.int64)
    return p.argmax(axis=1)


def _ambiguous(p: np.ndarray, threshold: float, atol: float) -> np.ndarray:
    """Rows within atol of the decision boundary, where either label is right."""
    if p.shape[1] == 2:
        return np.abs(p[:, 1] - threshold) <= atol
    top2 = np.sort(p, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) <= atol


def _signature_problems(kind: str, found: dict, expected: dict) -> list[str]:
    problems = []
    if set(found) != set(expected):
        return [f"{kind}s are {sorted(found)}, expected {sorted(expected)}"]
    for name, (dtype, width) in expected.items():
        arg = found[name]
        if arg.type != dtype:
            problems.append(f"{kind} '{name}' is {arg.type}, expected {dtype}")
        rank = 1 if width is None else 2
        shape = list(arg.shape)
        if len(shape) != rank or isinstance(shape[0], int):
            problems.append(f"{kind} '{name}' has shape {shape}, expected a symbolic batch axis and rank {rank}")
        elif width is not None and shape[1] != width:
            problems.append(f"{kind} '{name}' has shape {shape}, expected ['batch', {width}]")
    return problems


def _describe(w: dict) -> str:
    return (f"{w['set']}, row {w['row']}, class {w['class']}: torch {w['torch']:.9g}, "
            f"onnxruntime {w['onnxruntime']:.9g}, |diff| {w['diff']:.3g}")
