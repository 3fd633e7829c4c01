"""Scoring figures of spec section 7, every ratio measured in this one run (``make bench``).

Prints the machine, then one Markdown table (copied into docs/benchmarks.md). Figures:

1. One row. ``Predictor.predict_proba`` on a ready (1, 30) float32 array against a bare
   ``InferenceSession.run`` on the same file and input: what edgelr's validation and
   Python layer cost per call, the price a request-at-a-time service pays. Torch eager
   (the checkpoint's module under ``inference_mode``) is shown as what scoring with the
   training stack would cost. Median and p99 of 30,000 calls each, after a warm-up.
2. Batch, 1,000,000 x 30 float32. ``Predictor.predict_proba(X)`` against one numpy read
   pass over the same array (``X.sum()``): how close scoring gets to just reading the
   data. A bare ``session.run`` row, no target, shows how much of it is onnxruntime's
   own. Then against scikit-learn's ``StandardScaler`` + ``LogisticRegression``
   converted by skl2onnx (no ZipMap) and run in onnxruntime, the usual way to ship a
   scikit-learn model. Medians of 15 calls each.
3. Cold start. ``edgelr predict model.onnx one_row.csv`` in a fresh process against
   ``python -c "import onnxruntime"``, the floor any onnxruntime-based scorer pays: what
   a cron job or a CLI call on a device waits. Median of 9 runs each, and the largest
   peak memory (``ru_maxrss`` of each child from ``os.wait4``) of the runs.

Contenders are timed in turn, round after round, so a noisy neighbour hits all of them
alike. The models are trained and exported here, in a temporary directory, on synthetic
data with 30 features; on such data the export picks its 'folded' graph. Every
onnxruntime session gets the same settings: intra-op threads = the machine's core count
(torch gets as many), default graph optimizations, the CPU provider.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
THREADS = os.cpu_count() or 1
LATENCY_ROUNDS, LATENCY_CALLS = 15, 2_000  # per contender: 30,000 timed calls
BATCH_REPEATS = 15
COLD_RUNS = 9
PAUSE = 0.05  # seconds between timed blocks
SEED = 0



@dataclass
class Models:
    onnx: Path  # edgelr's export
    checkpoint: Path
    sklearn_onnx: Path  # StandardScaler + LogisticRegression via skl2onnx
    graph: str  # the export variant edgelr chose


# -- setup -------------------------------------------------------------------------------


def synthetic(n_rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Raw features with spreads from 0.1 to 100 and means up to 3 spreads from 0, and a noisy linear label."""
    scales = np.geomspace(0.1, 100.0, N_FEATURES)
    offsets = scales * np.linspace(-3.0, 3.0, N_FEATURES)
    Z = rng.standard_normal((n_rows, N_FEATURES))
    logits = Z @ np.linspace(-1.0, 1.0, N_FEATURES) + rng.logistic(size=n_rows)
    return Z * scales + offsets, (logits > 0).astype(np.int64)


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


def session(path: Path) -> ort.InferenceSession:
    """A session with the settings every contender gets (the Predictor's are built the same way)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


# -- timing helpers ----------------------------------------------------------------------


def time_calls(fn: Callable[[], object], n: int) -> list[float]:
    """Seconds of each of n calls, the garbage collector off (as timeit does)."""
    clock, out = time.perf_counter, []
    gc.disable()
    try:
        for _ in range(n):
            start = clock()
            fn()
            out.append(clock() - start)
    finally:
        gc.enable()
    return out


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, list[float]]:
    """Times each contender in turn, round after round, so a noisy neighbour hits all of them alike.

    Each block of calls starts after a pause, once the previous session's onnxruntime
    threads have stopped spinning: on 2 cores they would otherwise slow the next contender.
    """
    for fn in contenders.values():  # warm-up: first-run allocations, caches, thread pools
        time_calls(fn, max(1, calls // 10))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            time.sleep(PAUSE)
            times[name] += time_calls(fn, calls)
    return times


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def at_most(figure: str, edgelr: float, reference: float, limit: float | None) -> Row:
    return _at_most(figure, edgelr, reference, limit, fmt_time)




# -- figures -----------------------------------------------------------------------------


def one_row(models: Models) -> list[Row]:
    """Figure 1: per-call latency on one row, Predictor vs bare session.run vs torch eager."""
    import torch

    from edgelr.checkpoint import build_model, load_checkpoint

    torch.set_num_threads(THREADS)
    predictor, bare = Predictor(models.onnx, threads=THREADS), session(models.onnx)
    module = build_model(load_checkpoint(models.checkpoint), dtype=torch.float32)
    row = synthetic(1, np.random.default_rng(SEED + 1))[0].astype(np.float32)  # (1, 30), made once
    feed = {"features": row}

    def torch_eager():
        with torch.inference_mode():
            return module(torch.from_numpy(row)).numpy()

    times = interleaved({"predictor": lambda: predictor.predict_proba(row),
                         "bare": lambda: bare.run(None, feed),
                         "torch": torch_eager}, LATENCY_ROUNDS, LATENCY_CALLS)
    med = {name: statistics.median(t) for name, t in times.items()}
    tail = {name: p99(t) for name, t in times.items()}
    return [
        at_most("1 row, median: Predictor / bare `session.run`", med["predictor"], med["bare"], 1.5),
        at_most("1 row, p99: Predictor / bare `session.run`", tail["predictor"], tail["bare"], None),
        at_most("1 row, median: Predictor / torch eager", med["predictor"], med["torch"], None),
    ]


def batch(models: Models) -> tuple[list[Row], str]:
    """Figure 2: 1,000,000 x 30 float32 in one call, against a numpy read pass and skl2onnx."""
    X = synthetic(BATCH_ROWS, np.random.default_rng(SEED + 2))[0].astype(np.float32)
    predictor, bare = Predictor(models.onnx, threads=THREADS), session(models.onnx)
    sklearn = session(models.sklearn_onnx)
    sk_feed = {sklearn.get_inputs()[0].name: X}
    gap = np.abs(predictor.predict_proba(X) - sklearn.run(None, sk_feed)[1]).max()
    times = interleaved({"predictor": lambda: predictor.predict_proba(X),
                         "sum": X.sum,
                         "bare": lambda: bare.run(None, {"features": X}),
                         "sklearn": lambda: sklearn.run(None, sk_feed)}, BATCH_REPEATS, 1)
    med = {name: statistics.median(t) for name, t in times.items()}
    speedup = med["sklearn"] / med["predictor"]
    return [
        at_most("1M × 30 batch: Predictor / one `X.sum()` pass", med["predictor"], med["sum"], 1.5),
        # Not a target: what onnxruntime alone takes on edgelr's graph, without the Predictor's input checks.
        at_most("1M × 30 batch: bare `session.run` / one `X.sum()` pass", med["bare"], med["sum"], None),
        Row("1M × 30 batch: skl2onnx pipeline / Predictor", fmt_time(med["predictor"]), fmt_time(med["sklearn"]),
            f"{speedup:.1f}× faster", "≥ 5× faster", "PASS" if speedup >= 5 else "MISS"),
    ], f"probabilities of edgelr and the skl2onnx pipeline differ by at most {gap:.1e} on the batch"


# Spawns and reaps the children from a small, fresh Python rather than from this process: on
# Linux a child's ru_maxrss starts at the peak of the process that spawned it, and this one
# holds torch and a 120 MB batch. Prints {name: [[seconds, peak RSS in KiB], ...]} as JSON.
SPAWNER = """
import json, os, sys, time
runs, commands = int(sys.argv[1]), json.loads(sys.argv[2])
quiet = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
out = {name: [] for name in commands}
for i in range(runs + 1):  # round 0 warms the page cache and is dropped
    for name, argv in commands.items():
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=quiet)
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            sys.exit(f"{argv} failed with exit status {os.waitstatus_to_exitcode(status)}")
        if i:
            out[name].append([seconds, usage.ru_maxrss])
print(json.dumps(out))
"""


def cold_start(models: Models, workdir: Path) -> list[Row]:
    """Figure 3: a fresh `edgelr predict` on one row vs a bare `import onnxruntime`, time and peak RSS."""
    names = [f"f{i}" for i in range(N_FEATURES)]
    row = synthetic(1, np.random.default_rng(SEED + 3))[0][0]
    csv_path = workdir / "one_row.csv"
    csv_path.write_text(",".join(names) + "\n" + ",".join(map(repr, row.tolist())) + "\n")
    script = Path(sys.executable).with_name("edgelr")
    if not script.exists():
        raise SystemExit(f"{script}: no edgelr console script next to this Python; run 'make install'")
    commands = {"edgelr": [str(script), "predict", str(models.onnx), str(csv_path)],
                "import": [sys.executable, "-c", "import onnxruntime"]}
    spawner = [sys.executable, "-S", "-c", SPAWNER, str(COLD_RUNS), json.dumps(commands)]
    runs = json.loads(subprocess.run(spawner, check=True, capture_output=True, text=True).stdout)
    wall = {name: statistics.median(s for s, _ in r) for name, r in runs.items()}
    rss = {name: max(k for _, k in r) / 1024 for name, r in runs.items()}  # MiB (ru_maxrss is KiB), worst run
    rss_row = Row("cold start, peak RSS: `edgelr predict` (ref: `import onnxruntime`)", f"{rss['edgelr']:.1f} MiB",
                  f"{rss['import']:.1f} MiB", f"{rss['edgelr'] / rss['import']:.2f}×", "≤ 80 MiB",
                  "PASS" if rss["edgelr"] <= 80 else "MISS")
    return [at_most("cold start: `edgelr predict` 1 row / `import onnxruntime`", wall["edgelr"], wall["import"], 2.5),
            rss_row]


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
              f"{N_FEATURES} features; onnxruntime intra-op threads = {THREADS} for every session")
        rows = one_row(models)
        batch_rows, note = batch(models)
        rows += batch_rows + cold_start(models, workdir)
    print()
    print("\n".join(table(rows)))
    print()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{note}; load average at the end {load}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
