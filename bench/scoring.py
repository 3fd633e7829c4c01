"""Scoring figures of spec section 7, as users meet them, every ratio measured in this one run (``make bench``).

Prints the machine, then one Markdown table (copied into docs/benchmarks.md). Every figure
is measured in fresh processes, each side as a user meets it: a library call is the first
call in a fresh process, imports and setup (loading the array, opening the session) done
before the clock; a command is timed from spawn to exit. Contenders take turns, run after
run, so a noisy neighbour hits all of them alike; a figure is the median over the runs.
Rows labelled "warm" give, beside the first call, the median of the later calls in the
same processes (a long-running service's view).

1. One row. ``Predictor.predict_proba`` on a (1, 30) float32 array against a bare
   ``InferenceSession.run`` on the same file and input: what edgelr's validation and
   Python layer cost per call. Torch eager (the checkpoint's module under
   ``inference_mode``) is shown as what scoring with the training stack would cost.
2. Batch, 1,000,000 x 30 float32 whose rows spread 2.5 times as wide as the training rows,
   so that a few percent saturate (probabilities exactly 0 or 1 in float32; the fraction
   is printed). ``Predictor.predict_proba(X)`` against one numpy read pass over the same
   array (``X.sum()``), and against scikit-learn's ``StandardScaler`` +
   ``LogisticRegression`` converted by skl2onnx (no ZipMap) and run in onnxruntime, the
   usual way to ship a scikit-learn model. A bare ``session.run`` on edgelr's graph, no
   target, shows how much of it is onnxruntime's own.
3. CSV to CSV, 1,000,000 x 30 (``%.7g`` cells, the batch's rows): ``edgelr predict
   big.csv -o out.csv`` (and, recorded without a bar, the same with ``--explain``) in the
   torch-free install (``.venv-edge``, which ``make edge-check`` builds; the dev install if
   it is missing, and the figure says so) against a fresh ``python -c`` running
   ``pandas.read_csv`` + ``InferenceSession.run`` + ``DataFrame.to_csv`` on the same file:
   wall time and peak memory (``ru_maxrss``). Beside it, without a bar: ``edgelr evaluate``
   on the same rows with a ``target`` column against pandas + ``session.run`` +
   scikit-learn's metrics at the model's threshold (the metrics must agree), and ``edgelr
   predict -`` reading the CSV on stdin through ``cat |`` (a pipe, read once: edgelr.pipes).
4. Cold start. ``edgelr predict model.onnx one_row.csv`` in a fresh process against
   ``python -c "import onnxruntime"`` from the same install, the floor any onnxruntime
   scorer pays: what a cron job or a CLI call on a device waits, and its peak memory.

The models are trained and exported here, in a temporary directory, on synthetic data with
30 features; on such data the export picks its 'folded' graph. Every onnxruntime session
gets the same settings: intra-op threads = the machine's core count (the commands: the
default; the Predictor, ``threads=`` that count, runs a big batch's chunks on that many
threads of its own over a single-threaded session), default graph optimizations, the CPU
provider. Every process is spawned and
reaped by a small, fresh Python: on Linux a child's ``ru_maxrss`` starts at the peak of
the process that spawned it, and this one holds torch and a 120 MB batch.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from common import Row, machine_line, table  # bench/common.py: the script's folder is on sys.path
from common import at_most as _at_most

from edgelr.runtime import Predictor

N_FEATURES = 30
TRAIN_ROWS = 20_000
BATCH_ROWS = 1_000_000
BATCH_SPREAD = 2.5  # the batch's rows spread this much wider than the training rows: a few percent saturate
THREADS = os.cpu_count() or 1
RUNS = 7  # fresh processes per contender (one row, batch)
CSV_RUNS = 5
COLD_RUNS = 9
ONE_ROW_CALLS = 20_000  # warm calls after the first, per process
BATCH_CALLS = 7
PAUSE = 0.05  # seconds before each warm batch call: onnxruntime's threads stop spinning
SEED = 0
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Models:
    onnx: Path  # edgelr's export
    checkpoint: Path
    sklearn_onnx: Path  # StandardScaler + LogisticRegression via skl2onnx
    graph: str  # the export variant edgelr chose


# -- setup -------------------------------------------------------------------------------


def synthetic(n_rows: int, rng: np.random.Generator, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Raw features with spreads from 0.1 to 100 (times ``spread``) and means up to 3 spreads from 0,
    and a noisy linear label."""
    scales = np.geomspace(0.1, 100.0, N_FEATURES)
    offsets = scales * np.linspace(-3.0, 3.0, N_FEATURES)
    Z = rng.standard_normal((n_rows, N_FEATURES))
    logits = Z @ np.linspace(-1.0, 1.0, N_FEATURES) + rng.logistic(size=n_rows)
    return Z * (scales * spread) + offsets, (logits > 0).astype(np.int64)


def build_models(workdir: Path) -> Models:
    """Train and export edgelr's model and scikit-learn's pipeline on the same data."""
    from edgelr.data import Dataset
    from edgelr.estimator import LogisticRegression
    from edgelr.export import export_checkpoint
    from edgelr.workflow import train_checkpoint

    X, y = synthetic(TRAIN_ROWS, np.random.default_rng(SEED))
    names = [f"f{i}" for i in range(N_FEATURES)]
    dataset = Dataset(X=X, y=y, feature_names=names, classes=[0, 1], label_name="target", source="synthetic")
    checkpoint = workdir / "model.pt"
    train_checkpoint(dataset, LogisticRegression(device="cpu"), checkpoint, val_fraction=0.0)
    exported = export_checkpoint(checkpoint, workdir / "model.onnx")
    sklearn_onnx = workdir / "sklearn.onnx"
    sklearn_onnx.write_bytes(sklearn_pipeline(X, y))
    return Models(Path(exported.path), checkpoint, sklearn_onnx, exported.graph)


def sklearn_pipeline(X: np.ndarray, y: np.ndarray) -> bytes:
    """StandardScaler + LogisticRegression (same C = 1) as ONNX; no ZipMap, so it returns arrays as edgelr does."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(X, y)
    model = to_onnx(pipeline, X[:1].astype(np.float32), options={LogisticRegression: {"zipmap": False}})
    return model.SerializeToString()


def write_csv(path: Path, X: np.ndarray, y: np.ndarray | None = None) -> None:
    """The rows as a headed CSV of ``%.7g`` cells, as the other benchmarks write theirs; with ``y``, a last
    column ``target`` of its labels."""
    if y is not None:
        X = np.column_stack([X, y])
    cells = ["%.7g"] * (X.shape[1] - (y is not None)) + (["%d"] if y is not None else [])
    row = ",".join(cells) + "\n"
    with open(path, "w") as handle:
        handle.write(",".join([f"f{i}" for i in range(N_FEATURES)] + (["target"] if y is not None else [])) + "\n")
        for start in range(0, X.shape[0], 50_000):
            block = X[start:start + 50_000]
            handle.write((row * block.shape[0]) % tuple(block.ravel().tolist()))


# -- running processes -------------------------------------------------------------------

# Spawns the commands in turn, run after run, from a small fresh Python; prints, per command,
# [[seconds, peak RSS in KiB, stdout], ...] as JSON. Round 0 warms the page cache and is dropped.
SPAWNER = """
import json, os, sys, tempfile, time
runs, commands = int(sys.argv[1]), json.loads(sys.argv[2])
out = {name: [] for name in commands}
for i in range(runs + 1):
    for name, argv in commands.items():
        with tempfile.TemporaryFile() as capture:
            actions = [(os.POSIX_SPAWN_DUP2, capture.fileno(), 1), (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
            start = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
            _, status, usage = os.wait4(pid, 0)
            seconds = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status):
                sys.exit(f"{argv} failed with exit status {os.waitstatus_to_exitcode(status)}")
            capture.seek(0)
            if i:
                out[name].append([seconds, usage.ru_maxrss, capture.read().decode()])
print(json.dumps(out))
"""

# A library call as a user meets it: imports and setup first, then the clock around the first
# call, then the median of later calls. Prints {"first": seconds, "warm": seconds} as JSON.
CALLER = """
import json, statistics, sys, time
kind, model, data, calls, threads, pause = sys.argv[1:7]
calls, threads, pause = int(calls), int(threads), float(pause)
import numpy as np
X = np.load(data)
if kind == "sum":
    call = X.sum
elif kind == "torch":
    import torch
    from edgelr.checkpoint import build_model, load_checkpoint
    torch.set_num_threads(threads)
    module = build_model(load_checkpoint(model), dtype=torch.float32)
    def call():
        with torch.inference_mode():
            return module(torch.from_numpy(X)).numpy()
else:
    import onnxruntime as ort
    if kind == "predictor":
        from edgelr.runtime import Predictor
        predictor = Predictor(model, threads=threads)
        call = lambda: predictor.predict_proba(X)
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        feeds = {session.get_inputs()[0].name: X}
        call = lambda: session.run(None, feeds)
clock = time.perf_counter
start = clock()
call()
first = clock() - start
times = []
for _ in range(calls):
    if pause:
        time.sleep(pause)
    start = clock()
    call()
    times.append(clock() - start)
print(json.dumps({"first": first, "warm": statistics.median(times)}))
"""

# The reference of figure 3: what a user writes with pandas around a bare onnxruntime session.
PANDAS_PREDICT = """
import json, sys
import numpy as np, onnxruntime as ort, pandas as pd
model, data, out = sys.argv[1:4]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
names, classes = json.loads(meta["edgelr.feature_names"]), json.loads(meta["edgelr.classes"])
frame = pd.read_csv(data)
label, proba = session.run(["label", "probabilities"], {"features": frame[names].to_numpy(np.float32)})
result = pd.DataFrame(proba, columns=[f"probability_{c}" for c in classes])
result.insert(0, "label", np.asarray(classes)[label])
result.to_csv(out, index=False)
"""


# The reference of the evaluate row: pandas, a bare session, scikit-learn's metrics at the model's threshold.
PANDAS_EVALUATE = """
import json, sys
import numpy as np, onnxruntime as ort, pandas as pd
from sklearn import metrics
model, data, label = sys.argv[1:4]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
names, threshold = json.loads(meta["edgelr.feature_names"]), json.loads(meta["edgelr.threshold"])
frame = pd.read_csv(data)
proba = session.run(["probabilities"], {"features": frame[names].to_numpy(np.float32)})[0]
y, predicted = frame[label].to_numpy(), proba[:, 1] > threshold
proba = np.clip(proba.astype(np.float64), 0.0, 1.0)  # log_loss refuses float32 rounding past 1 (1.0000001)
print(json.dumps({"accuracy": metrics.accuracy_score(y, predicted), "log_loss": metrics.log_loss(y, proba),
                  "precision": metrics.precision_score(y, predicted), "recall": metrics.recall_score(y, predicted),
                  "f1": metrics.f1_score(y, predicted), "roc_auc": metrics.roc_auc_score(y, proba[:, 1])}))
"""

def spawn(commands: dict[str, list[str]], runs: int) -> dict[str, list[tuple[float, float, str]]]:
    """Each command ``runs`` times in turn: [(seconds, peak MiB, stdout), ...] per command."""
    spawner = [sys.executable, "-S", "-c", SPAWNER, str(runs), json.dumps(commands)]
    result = subprocess.run(spawner, check=True, capture_output=True, text=True)
    return {name: [(s, kib / 1024, out) for s, kib, out in r] for name, r in json.loads(result.stdout).items()}


def first_calls(contenders: dict[str, tuple[str, str]], data: Path, calls: int, pause: float
                ) -> tuple[dict[str, float], dict[str, float]]:
    """(median first call, median of each process's warm median) per contender (kind, model), in seconds."""
    commands = {name: [sys.executable, "-c", CALLER, kind, model, str(data), str(calls), str(THREADS), str(pause)]
                for name, (kind, model) in contenders.items()}
    runs = spawn(commands, RUNS)
    parsed = {name: [json.loads(out) for _, _, out in r] for name, r in runs.items()}
    first = {name: statistics.median(p["first"] for p in r) for name, r in parsed.items()}
    warm = {name: statistics.median(p["warm"] for p in r) for name, r in parsed.items()}
    return first, warm


# -- figures -----------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def at_most(figure: str, edgelr: float, reference: float, limit: float | None) -> Row:
    return _at_most(figure, edgelr, reference, limit, fmt_time)


def faster(figure: str, edgelr: float, reference: float, limit: float | None) -> Row:
    speedup = reference / edgelr
    if limit is None:
        return Row(figure, fmt_time(edgelr), fmt_time(reference), f"{speedup:.1f}× faster", "—", "—")
    return Row(figure, fmt_time(edgelr), fmt_time(reference), f"{speedup:.1f}× faster", f"≥ {limit:g}× faster",
               "PASS" if speedup >= limit else "MISS")


def one_row(models: Models, workdir: Path) -> list[Row]:
    """Figure 1: one row, Predictor vs bare session.run vs torch eager."""
    data = workdir / "one_row.npy"
    np.save(data, synthetic(1, np.random.default_rng(SEED + 1))[0].astype(np.float32))
    first, warm = first_calls({"predictor": ("predictor", str(models.onnx)), "bare": ("bare", str(models.onnx)),
                               "torch": ("torch", str(models.checkpoint))}, data, ONE_ROW_CALLS, 0.0)
    return [
        at_most("1 row, first call: Predictor / bare `session.run`", first["predictor"], first["bare"], 1.5),
        at_most("1 row, warm median: Predictor / bare `session.run`", warm["predictor"], warm["bare"], 1.5),
        at_most("1 row, warm median: Predictor / torch eager", warm["predictor"], warm["torch"], None),
    ]


def batch(models: Models, workdir: Path) -> tuple[list[Row], str, np.ndarray, np.ndarray]:
    """Figure 2: 1,000,000 x 30 float32 in one call, against a numpy read pass and skl2onnx."""
    X, y = synthetic(BATCH_ROWS, np.random.default_rng(SEED + 2), BATCH_SPREAD)
    X = X.astype(np.float32)
    data = workdir / "batch.npy"
    np.save(data, X)
    proba = Predictor(models.onnx).predict_proba(X)
    sklearn = ort.InferenceSession(str(models.sklearn_onnx), providers=["CPUExecutionProvider"])
    gap = np.abs(proba - sklearn.run(None, {sklearn.get_inputs()[0].name: X})[1]).max()
    zero = float((proba == 0).any(axis=1).mean())
    saturated = float(((proba == 0) | (proba == 1)).any(axis=1).mean())
    model = str(models.onnx)
    first, warm = first_calls({"predictor": ("predictor", model), "sum": ("sum", model), "bare": ("bare", model),
                               "sklearn": ("sklearn", str(models.sklearn_onnx))}, data, BATCH_CALLS, PAUSE)
    rows = [
        at_most("1M × 30 batch, first call: Predictor / one `X.sum()` pass", first["predictor"], first["sum"], 1.0),
        at_most("1M × 30 batch, warm median: Predictor / `X.sum()`", warm["predictor"], warm["sum"], None),
        faster("1M × 30 batch, first call: skl2onnx pipeline / Predictor", first["predictor"], first["sklearn"], 6),
        faster("1M × 30 batch, warm median: skl2onnx pipeline / Predictor", warm["predictor"], warm["sklearn"], None),
        # Not a target: what onnxruntime alone takes on edgelr's graph, without the Predictor's checks.
        at_most("1M × 30 batch, first call: bare `session.run` / `X.sum()`", first["bare"], first["sum"], None),
    ]
    note = (f"batch rows with a probability exactly 0 in float32: {zero:.1%}, exactly 0 or 1: {saturated:.1%}; "
            f"probabilities of edgelr and the skl2onnx pipeline differ by at most {gap:.1e}")
    return rows, note, X, y


def edge_install() -> tuple[Path, str]:
    """The torch-free install's bin folder, or the dev install's with a note when it is missing."""
    edge = ROOT / ".venv-edge" / "bin"
    if (edge / "edgelr").exists():
        return edge, "torch-free install"
    return Path(sys.executable).parent, "dev install: no .venv-edge, run `make edge-check`"


def csv_to_csv(models: Models, workdir: Path, X: np.ndarray) -> tuple[list[Row], str]:
    """Figure 3: `edgelr predict` on a 1M x 30 CSV against pandas + onnxruntime, time and peak memory."""
    data = workdir / "big.csv"
    write_csv(data, X)
    bin_dir, where = edge_install()
    ours, theirs = workdir / "edgelr_out.csv", workdir / "pandas_out.csv"
    explained = workdir / "edgelr_explained.csv"
    commands = {"edgelr": [str(bin_dir / "edgelr"), "predict", str(models.onnx), str(data), "-o", str(ours)],
                "pandas": [sys.executable, "-c", PANDAS_PREDICT, str(models.onnx), str(data), str(theirs)],
                "explain": [str(bin_dir / "edgelr"), "predict", str(models.onnx), str(data), "--explain", "-o",
                            str(explained)]}
    runs = spawn(commands, CSV_RUNS)
    wall = {name: statistics.median(s for s, _, _ in r) for name, r in runs.items()}
    rss = {name: max(m for _, m, _ in r) for name, r in runs.items()}  # the worst run
    gap = np.abs(_head_proba(ours) - _head_proba(theirs)).max()
    size = data.stat().st_size / 2**20
    rows = [
        at_most(f"CSV → CSV 1M × 30 ({size:.0f} MiB): `edgelr predict` ({where}) / pandas + `session.run`",
                wall["edgelr"], wall["pandas"], 1.0),
        Row("CSV → CSV 1M × 30, peak RSS: `edgelr predict` (ref: pandas + `session.run`)",
            f"{rss['edgelr']:.0f} MiB", f"{rss['pandas']:.0f} MiB", f"{rss['edgelr'] / rss['pandas']:.2f}×",
            "≤ 100 MiB", "PASS" if rss["edgelr"] <= 100 else "MISS"),
        # Recorded, no bar: 30 contributions per row more to format than probabilities.
        at_most("CSV → CSV 1M × 30 with `--explain` (30 `contribution_` columns): `edgelr predict` / pandas + "
                "`session.run`", wall["explain"], wall["pandas"], None),
        Row("CSV → CSV 1M × 30 with `--explain`, peak RSS: `edgelr predict`", f"{rss['explain']:.0f} MiB", "",
            "", "≤ 100 MiB", "PASS" if rss["explain"] <= 100 else "MISS"),
    ]
    runs_line = ", ".join(f"{name} " + " ".join(f"{s:.2f}" for s, _, _ in r) + " s" for name, r in runs.items())
    return rows, f"CSV → CSV runs: {runs_line}; probabilities of the two outputs differ by at most {gap:.1e}"


def evaluate_and_stdin(models: Models, workdir: Path, X: np.ndarray, y: np.ndarray) -> tuple[list[Row], str]:
    """Figure 3, more: `edgelr evaluate` on a labelled 1M x 30 CSV against pandas + onnxruntime + scikit-learn's
    metrics, and `edgelr predict` reading the CSV from a pipe against the same on the file, time and peak memory."""
    labelled, features = workdir / "labelled.csv", workdir / "big.csv"
    write_csv(labelled, X, y)
    bin_dir, where = edge_install()
    evaluate = [str(bin_dir / "edgelr"), "evaluate", str(models.onnx), str(labelled), "--label", "target", "--json"]
    runs = spawn({"edgelr": evaluate, "pandas": [sys.executable, "-c", PANDAS_EVALUATE, str(models.onnx),
                                                 str(labelled), "target"]}, CSV_RUNS)
    wall = {name: statistics.median(s for s, _, _ in r) for name, r in runs.items()}
    rss = {name: max(m for _, m, _ in r) for name, r in runs.items()}
    ours, theirs = (json.loads(runs[name][0][2]) for name in ("edgelr", "pandas"))
    # The log-loss clips exact 0s differently (edgelr at 1e-15, scikit-learn at float64's eps): shown apart.
    gap = max(abs(ours[k] - theirs[k]) for k in theirs if k != "log_loss")
    # A pipe, as `cat big.csv | edgelr predict ...` gives one: the shell's child runs `cat`, then the command.
    piped = [str(bin_dir / "edgelr"), "predict", str(models.onnx), "-", "-o", str(workdir / "stdin_out.csv")]
    from_file = [str(bin_dir / "edgelr"), "predict", str(models.onnx), str(features), "-o",
                 str(workdir / "file_out.csv")]
    pipe = spawn({"pipe": ["/bin/sh", "-c", f'cat "{features}" | "$0" "$@"', *piped], "file": from_file}, CSV_RUNS)
    pipe_s = {name: statistics.median(s for s, _, _ in r) for name, r in pipe.items()}
    pipe_rss = max(m for _, m, _ in pipe["pipe"])
    same = (workdir / "stdin_out.csv").read_bytes() == (workdir / "file_out.csv").read_bytes()
    rows = [
        at_most(f"labelled CSV 1M × 30: `edgelr evaluate` ({where}) / pandas + `session.run` + scikit-learn "
                "metrics", wall["edgelr"], wall["pandas"], None),
        Row("labelled CSV 1M × 30, peak RSS: `edgelr evaluate` (ref: pandas + `session.run` + scikit-learn)",
            f"{rss['edgelr']:.0f} MiB", f"{rss['pandas']:.0f} MiB", f"{rss['edgelr'] / rss['pandas']:.2f}×", "",
            ""),
        at_most("CSV on a pipe → CSV 1M × 30: `cat | edgelr predict -` / `edgelr predict FILE`", pipe_s["pipe"],
                pipe_s["file"], None),
        Row("CSV on a pipe → CSV 1M × 30, peak RSS: `cat | edgelr predict -` (the pipeline's largest)",
            f"{pipe_rss:.0f} MiB", "", "",
            "≤ 100 MiB", "PASS" if pipe_rss <= 100 else "MISS"),
    ]
    runs_line = ", ".join(f"{name} " + " ".join(f"{s:.2f}" for s, _, _ in r) + " s" for name, r in runs.items())
    pipe_line = ", ".join(f"{name} " + " ".join(f"{s:.2f}" for s, _, _ in r) + " s" for name, r in pipe.items())
    return rows, (f"evaluate runs: {runs_line}; its metrics and scikit-learn's differ by at most {gap:.1e} "
                  f"(log-loss {ours['log_loss']:.6f} and {theirs['log_loss']:.6f}); pipe runs: {pipe_line}, "
                  f"output {'identical to' if same else 'DIFFERENT from'} the file's")


def _head_proba(path: Path, rows: int = 20_000) -> np.ndarray:
    """The probability columns of a predictions CSV's first rows."""
    with open(path) as handle:
        handle.readline()
        lines = [handle.readline() for _ in range(rows)]
    return np.array([[float(c) for c in line.split(",")[1:]] for line in lines if line])


def cold_start(models: Models, workdir: Path) -> list[Row]:
    """Figure 4: a fresh `edgelr predict` on one row vs a bare `import onnxruntime`, time and peak RSS."""
    names = [f"f{i}" for i in range(N_FEATURES)]
    row = synthetic(1, np.random.default_rng(SEED + 3))[0][0]
    csv_path = workdir / "one_row.csv"
    csv_path.write_text(",".join(names) + "\n" + ",".join(map(repr, row.tolist())) + "\n")
    bin_dir, where = edge_install()
    commands = {"edgelr": [str(bin_dir / "edgelr"), "predict", str(models.onnx), str(csv_path)],
                "import": [str(bin_dir / "python"), "-c", "import onnxruntime"]}
    runs = spawn(commands, COLD_RUNS)
    wall = {name: statistics.median(s for s, _, _ in r) for name, r in runs.items()}
    rss = {name: max(m for _, m, _ in r) for name, r in runs.items()}  # MiB, the worst run
    return [
        at_most(f"cold start: `edgelr predict` 1 row / `import onnxruntime` ({where})", wall["edgelr"],
                wall["import"], 2.5),
        Row("cold start, peak RSS: `edgelr predict` (ref: `import onnxruntime`)", f"{rss['edgelr']:.1f} MiB",
            f"{rss['import']:.1f} MiB", f"{rss['edgelr'] / rss['import']:.2f}×", "≤ 80 MiB",
            "PASS" if rss["edgelr"] <= 80 else "MISS"),
    ]


# -- report ------------------------------------------------------------------------------


def machine() -> list[str]:
    """The machine and the versions that set the figures."""
    return [machine_line(),
            f"python {platform.python_version()}, onnxruntime {ort.__version__}, numpy {np.__version__}"]


def main() -> None:
    started = time.perf_counter()
    for line in machine():
        print(line)
    with tempfile.TemporaryDirectory(prefix="edgelr-bench-") as tmp:
        workdir = Path(tmp)
        models = build_models(workdir)
        print(f"models: edgelr '{models.graph}' graph, skl2onnx pipeline; {TRAIN_ROWS} training rows, "
              f"{N_FEATURES} features; onnxruntime intra-op threads = {THREADS} for every session the "
              f"library figures open; {RUNS} fresh processes per contender ({CSV_RUNS} for CSV → CSV, "
              f"{COLD_RUNS} for the cold start), medians")
        rows = one_row(models, workdir)
        batch_rows, batch_note, X, y = batch(models, workdir)
        csv_rows, csv_note = csv_to_csv(models, workdir, X)
        evaluate_rows, evaluate_note = evaluate_and_stdin(models, workdir, X, y)
        csv_rows += evaluate_rows
        csv_note += "\n" + evaluate_note
        del X
        rows += batch_rows + csv_rows + cold_start(models, workdir)
    print()
    print("\n".join(table(rows)))
    print()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{batch_note}")
    print(f"{csv_note}")
    print(f"load average at the end {load}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
