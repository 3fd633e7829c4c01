"""Training figures of spec section 7, every ratio measured in this one run (``make bench-train``).

Prints the machine, then one Markdown table (copied into docs/benchmarks.md). Figures:

1. In memory, 1,000,000 x 100 float32, as a user meets it: the first ``fit`` in a fresh
   process, imports done before the clock. The features (spreads from 0.01 to 1000,
   means up to 3 spreads from 0) are standardized in float64 and stored float32 once,
   because scikit-learn's ``lbfgs`` needs standardized features to converge and takes
   float32 as it is: that is its fastest form (no scaler, no copy). edgelr gets the
   same array with its defaults (it standardizes inside; here a near no-op).
   ``edgelr.LogisticRegression(C=1.0, device="cpu").fit(X, y)`` against
   ``sklearn.linear_model.LogisticRegression(C=1.0, solver="lbfgs").fit(X, y)``, each in
   its own fresh process, ``--repeat`` times taking turns (median). Each process also
   reports the peak memory its fit added (VmHWM reset before the fit, minus the RSS
   before it) and the time of a second, warm fit, shown as a note. The final objective
   of each model -- scikit-learn's: mean log-loss + ||w||^2 / (2 C n) on X -- is
   computed here in numpy float64, independently of either library.
2. End to end from a 1,000,000 x 50 numeric CSV: ``edgelr train big.csv --val-fraction 0``
   in a fresh process against a fresh ``python -c`` that runs ``pandas.read_csv`` and the
   same scikit-learn pipeline on the same file. Interpreter start and imports count on
   both sides.
3. Peak memory (``ru_maxrss`` from ``os.wait4``) of ``edgelr train FILE --memory-budget
   128MB`` on 1,000,000 and 2,000,000 x 50 CSVs against the same command on a six-row
   CSV (the constant: torch, the interpreter, the code), and of the in-memory run for
   comparison. The streamed and in-memory models must agree (max |dp| on a sample).
4. Data parallel: ``torchrun --standalone --nproc-per-node 2 -m edgelr train`` against
   the single-process ``edgelr train`` on the 1,000,000 x 50 CSV: wall time of each and
   max |dp| between the two models.

The CSVs are generated once (in a subprocess) under ``--dir`` and reused by later runs.
Every measured command is spawned and reaped by a small, fresh Python, because on Linux
a child's ``ru_maxrss`` starts at the peak of the process that spawned it, and this one
holds figure 1's arrays. A figure that fails prints ERROR with the reason; the table
still prints.

    python bench/training.py [--dir /tmp/edgelr-bench-train] [--rows-scale 0.1] [--only 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from common import Row, machine_line, table  # bench/common.py: the script's folder is on sys.path
from common import at_most as _at_most

N_FEATURES_MEMORY = 100  # figure 1
N_FEATURES_CSV = 50  # figures 2-4
C = 1.0
SEED = 0
BUDGET = "128MB"
BUDGET_MIB = 128
SAMPLE_ROWS = 20_000  # rows scored to compare two models
PROBA_ATOL = 1e-4
TIMEOUT = 600  # seconds, any one command
BIN = Path(sys.executable).parent
EDGELR = str(BIN / "edgelr")
TORCHRUN = str(BIN / "torchrun")



@dataclass
class Context:
    workdir: Path  # CSVs (kept between runs)
    scratch: Path  # checkpoints (removed at the end)
    scale: float
    repeat: int
    in_memory_2m: bool
    notes: list[str] = field(default_factory=list)

    def rows(self, n: int) -> int:
        return max(1_000, int(round(n * self.scale)))


# -- data --------------------------------------------------------------------------------


def synthetic(n_rows: int, n_features: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Raw features with spreads from 0.01 to 1000 and means up to 3 spreads away from 0, and a noisy linear label."""
    scales = np.geomspace(0.01, 1000.0, n_features)
    offsets = scales * np.linspace(-3.0, 3.0, n_features)
    weights = np.random.default_rng(SEED + n_features).normal(0.0, 2.0 / np.sqrt(n_features), n_features)  # fixed
    Z = rng.standard_normal((n_rows, n_features))
    y = (Z @ weights + rng.logistic(size=n_rows) > 0).astype(np.int64)
    Z *= scales
    Z += offsets
    return Z, y


def write_csv(path: Path, n_rows: int, seed: int) -> None:
    """Header f0..f49,label; features at 7 significant digits, written 100,000 rows at a time."""
    names = [f"f{i}" for i in range(N_FEATURES_CSV)]
    fmt = ",".join(["%.7g"] * N_FEATURES_CSV + ["%d"])
    rng = np.random.default_rng(seed)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="\n") as out:
        out.write(",".join([*names, "label"]) + "\n")
        for start in range(0, n_rows, 100_000):
            X, y = synthetic(min(100_000, n_rows - start), N_FEATURES_CSV, rng)
            np.savetxt(out, np.column_stack([X, y]), fmt=fmt)
    tmp.replace(path)


def csv_file(ctx: Context, n_rows: int) -> Path:
    """The n_rows x 50 CSV under --dir, written by a subprocess the first time it is asked for."""
    path = ctx.workdir / f"train-{n_rows}x{N_FEATURES_CSV}.csv"
    if not path.exists():
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write-csv", str(path), str(n_rows)], check=True, timeout=TIMEOUT)
        print(f"  wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f} s",
              flush=True)
    return path


def six_rows(ctx: Context) -> Path:
    """Six rows, three per class, same 50 columns: what training costs with (almost) no data."""
    path = ctx.workdir / f"six-rows-x{N_FEATURES_CSV}.csv"
    X, _ = synthetic(6, N_FEATURES_CSV, np.random.default_rng(SEED + 9))
    lines = [",".join([*(f"f{i}" for i in range(N_FEATURES_CSV)), "label"])]
    lines += [",".join([*(f"{v:.7g}" for v in x), str(label)]) for x, label in zip(X, [0, 0, 0, 1, 1, 1])]
    path.write_text("\n".join(lines) + "\n")
    return path


def sample(path: Path) -> np.ndarray:
    """The first SAMPLE_ROWS rows' features of a CSV, to score two models on."""
    table = np.loadtxt(path, delimiter=",", skiprows=1, max_rows=SAMPLE_ROWS, dtype=np.float64)
    return table[:, :N_FEATURES_CSV]


def max_proba_gap(a: Path, b: Path, X: np.ndarray) -> float:
    from edgelr.estimator import LogisticRegression

    pa = LogisticRegression.load(a).predict_proba(X)
    pb = LogisticRegression.load(b).predict_proba(X)
    return float(np.abs(pa - pb).max())


# -- running commands --------------------------------------------------------------------

# Spawns and reaps one command from a small, fresh Python (see the module docstring).
# stdout and stderr go to files; prints [seconds, peak RSS in KiB, exit status] as JSON.
SPAWNER = """
import json, os, signal, sys, time
argv, out, err, limit = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
files = [(os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
         (os.POSIX_SPAWN_OPEN, 2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
start = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=files)
signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
signal.alarm(limit)
_, status, usage = os.wait4(pid, 0)
print(json.dumps([time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]))
"""


@dataclass
class Run:
    seconds: float
    peak_mib: float
    stdout: str


class CommandFailed(RuntimeError):
    pass


def run(argv: list[str], scratch: Path, timeout: int = TIMEOUT) -> Run:
    """Run argv in a fresh process; its wall time, peak RSS and stdout. Raises CommandFailed with its stderr."""
    out, err = scratch / "stdout.txt", scratch / "stderr.txt"
    spawner = [sys.executable, "-S", "-c", SPAWNER, json.dumps(argv), str(out), str(err), str(timeout)]
    result = subprocess.run(spawner, capture_output=True, text=True, timeout=timeout + 60)
    if result.returncode != 0:  # could not even start it (a missing executable, ...)
        raise CommandFailed(f"`{' '.join(argv)}` could not be run: {result.stderr.strip().splitlines()[-1:]}")
    seconds, peak_kib, status = json.loads(result.stdout)
    if status != 0:
        reason = "killed after the time limit" if status == -9 else f"exit status {status}"
        tail = err.read_text(errors="replace").strip().splitlines()[-25:]
        raise CommandFailed(f"`{' '.join(argv)}` failed ({reason}):\n    " + "\n    ".join(tail))
    return Run(seconds, peak_kib / 1024, out.read_text(errors="replace"))


def interleaved(commands: dict[str, list[str]], ctx: Context) -> dict[str, list[Run]]:
    """Each command ctx.repeat times, taking turns, so machine noise hits all alike."""
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(ctx.repeat):
        for name, argv in commands.items():
            runs[name].append(run(argv, ctx.scratch))
    return runs


def median_seconds(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


# -- formatting --------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mib(mib: float) -> str:
    return f"{mib:.0f} MiB"


def at_most(figure: str, edgelr: float, reference: float, limit: float | None, fmt=fmt_time) -> Row:
    return _at_most(figure, edgelr, reference, limit, fmt)




def gap_row(figure: str, gap: float) -> Row:
    return Row(figure, f"{gap:.1e}", "—", "—", f"≤ {PROBA_ATOL:g}", "PASS" if gap <= PROBA_ATOL else "MISS")


def pairs(wall: list[float], cpu: list[float]) -> str:
    return ", ".join(f"{w:.2f} s ({c:.2f} s)" for w, c in zip(wall, cpu))


def count(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n:,}"


# -- figures -----------------------------------------------------------------------------


def objective(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: float) -> float:
    """Mean log-loss + ||coef||^2 / (2 C n) on X, in float64, 100,000 rows at a time."""
    total = 0.0
    for start in range(0, X.shape[0], 100_000):
        z = X[start:start + 100_000].astype(np.float64) @ coef + intercept
        total += float(np.sum(np.logaddexp(0.0, z) - y[start:start + 100_000] * z))
    return total / X.shape[0] + float(coef @ coef) / (2.0 * C * X.shape[0])


def fit_arrays(ctx: Context, n: int) -> tuple[Path, Path]:
    """(X.npy, y.npy) of figure 1 under --dir: float32 standardized features and labels, written once."""
    xs, ys = ctx.workdir / f"fit-{n}x{N_FEATURES_MEMORY}-X32.npy", ctx.workdir / f"fit-{n}x{N_FEATURES_MEMORY}-y.npy"
    if not (xs.exists() and ys.exists()):
        X, y = synthetic(n, N_FEATURES_MEMORY, np.random.default_rng(SEED + 1))
        X -= X.mean(axis=0)
        X /= X.std(axis=0)
        for path, array in ((xs, X.astype(np.float32)), (ys, y)):
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, array)
            tmp.replace(path)
    return xs, ys


# One fit as a user meets it, in a fresh process: load the arrays, import, then time the
# first fit and the peak memory it adds; then a second, warm fit. Prints JSON; saves the
# model's raw-coordinate coefficients to argv[4].
FIT_CHILD = """
import json, sys, time
import numpy as np
which, xs, ys, out = sys.argv[1:5]
X, y = np.load(xs), np.load(ys)
if which == "edgelr":
    import torch
    from edgelr import LogisticRegression  # imported before the clock, as a user's script does
    make = lambda: LogisticRegression(C=1.0, device="cpu")
else:
    from sklearn.linear_model import LogisticRegression
    make = lambda: LogisticRegression(C=1.0, solver="lbfgs")
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) restarts from the current RSS
started, cpu = time.perf_counter(), time.process_time()
model = make().fit(X, y)
first, first_cpu = time.perf_counter() - started, time.process_time() - cpu
peak = status("VmHWM:") - before
started = time.perf_counter()
make().fit(X, y)
warm = time.perf_counter() - started
if which == "edgelr":  # standardized coordinates -> the raw features'
    coef = model.coef_[0] / model.scale_
    intercept = float(model.intercept_[0] - coef @ model.mean_)
    iterations = len(model.history_) - 1
else:
    coef, intercept, iterations = model.coef_[0].astype(np.float64), float(model.intercept_[0]), int(model.n_iter_[0])
np.save(out, np.append(coef, intercept))
print(json.dumps({"first": first, "first_cpu": first_cpu, "warm": warm, "peak_mib": peak, "iterations": iterations}))
"""


def in_memory(ctx: Context) -> list[Row]:
    """Figure 1: the first fit on 1M x 100 float32 in a fresh process, edgelr vs scikit-learn: time, memory, loss."""
    n = ctx.rows(1_000_000)
    xs, ys = fit_arrays(ctx, n)
    runs: dict[str, list[dict]] = {"edgelr": [], "sklearn": []}
    for _ in range(ctx.repeat):
        for name in runs:
            out = ctx.scratch / f"fit-{name}.npy"
            result = subprocess.run([sys.executable, "-c", FIT_CHILD, name, str(xs), str(ys), str(out)],
                                    capture_output=True, text=True, timeout=TIMEOUT)
            if result.returncode != 0:
                raise CommandFailed(f"the {name} fit failed: {result.stderr.strip().splitlines()[-5:]}")
            runs[name].append(json.loads(result.stdout.strip().splitlines()[-1]))
    X, y = np.load(xs, mmap_mode="r"), np.load(ys)
    objectives = {}
    for name in runs:
        params = np.load(ctx.scratch / f"fit-{name}.npy")
        objectives[name] = objective(X, y, params[:-1], float(params[-1]))
    rel = (objectives["edgelr"] - objectives["sklearn"]) / abs(objectives["sklearn"])
    med = {name: {key: statistics.median(r[key] for r in rs) for key in ("first", "warm", "peak_mib")}
           for name, rs in runs.items()}
    x_mib = n * N_FEATURES_MEMORY * 4 / 2**20
    ctx.notes.append(
        f"figure 1: {count(n)} × {N_FEATURES_MEMORY} float32 ({x_mib:.0f} MiB); iterations edgelr "
        f"{runs['edgelr'][-1]['iterations']} (L-BFGS on the full data, after its warm start), scikit-learn "
        f"{runs['sklearn'][-1]['iterations']}; objectives {objectives['edgelr']:.10f} (edgelr) vs "
        f"{objectives['sklearn']:.10f}; first fits, wall (CPU): edgelr "
        f"{pairs([r['first'] for r in runs['edgelr']], [r['first_cpu'] for r in runs['edgelr']])}, scikit-learn "
        f"{pairs([r['first'] for r in runs['sklearn']], [r['first_cpu'] for r in runs['sklearn']])}; "
        f"warm second fits (not the figure): edgelr {fmt_time(med['edgelr']['warm'])}, scikit-learn "
        f"{fmt_time(med['sklearn']['warm'])} ({med['edgelr']['warm'] / med['sklearn']['warm']:.2f}×); "
        f"peak extra memory of each fit: edgelr {[round(r['peak_mib']) for r in runs['edgelr']]} MiB, "
        f"scikit-learn {[round(r['peak_mib']) for r in runs['sklearn']]} MiB")
    limit_mib = 0.10 * x_mib
    return [
        at_most(f"{count(n)} × {N_FEATURES_MEMORY} float32, first fit in a fresh process: edgelr / scikit-learn "
                "lbfgs", med["edgelr"]["first"], med["sklearn"]["first"], 0.35),
        Row(f"{count(n)} × {N_FEATURES_MEMORY} float32, final objective: edgelr vs scikit-learn",
            f"{objectives['edgelr']:.8f}", f"{objectives['sklearn']:.8f}", f"{rel:+.1e} rel.", "≤ +1e-6 rel.",
            "PASS" if rel <= 1e-6 else "MISS"),
        Row(f"{count(n)} × {N_FEATURES_MEMORY} float32, peak memory added by the fit (ref: scikit-learn)",
            fmt_mib(med["edgelr"]["peak_mib"]), fmt_mib(med["sklearn"]["peak_mib"]),
            f"{med['edgelr']['peak_mib'] / x_mib:.1%} of X", f"≤ {limit_mib:.0f} MiB (10% of X)",
            "PASS" if med["edgelr"]["peak_mib"] <= limit_mib else "MISS"),
    ]


SKLEARN_FROM_CSV = """
import sys
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
df = pd.read_csv(sys.argv[1])
X = df.drop(columns="label").to_numpy(dtype=np.float64)
make_pipeline(StandardScaler(), LogisticRegression(C=1.0, solver="lbfgs")).fit(X, df["label"].to_numpy())
"""


def end_to_end(ctx: Context) -> list[Row]:
    """Figure 2: `edgelr train big.csv` vs pandas.read_csv + scikit-learn fit, each a fresh process."""
    n = ctx.rows(1_000_000)
    path = csv_file(ctx, n)
    commands = {"edgelr": [EDGELR, "train", str(path), "--val-fraction", "0", "-o", str(ctx.scratch / "e2e.pt")],
                "sklearn": [sys.executable, "-c", SKLEARN_FROM_CSV, str(path)]}
    run(commands["edgelr"], ctx.scratch)  # warms the page cache; not counted
    runs = interleaved(commands, ctx)
    ctx.notes.append(f"figure 2: {path.name} ({path.stat().st_size / 2**20:.0f} MiB); wall times edgelr "
                     f"{[round(r.seconds, 2) for r in runs['edgelr']]} s, pandas + scikit-learn "
                     f"{[round(r.seconds, 2) for r in runs['sklearn']]} s")
    return [at_most(f"{count(n)} × {N_FEATURES_CSV} CSV end to end: `edgelr train` / read_csv + scikit-learn fit",
                    median_seconds(runs["edgelr"]), median_seconds(runs["sklearn"]), 0.7)]


def memory(ctx: Context) -> list[Row]:
    """Figure 3: peak RSS of streamed training (--memory-budget 128MB) vs six rows, and the in-memory run.

    The peak of one streamed run varies by 100-200 MiB from run to run (glibc's malloc keeps
    freed chunk buffers), so the streamed and six-row commands run ctx.repeat times, taking
    turns, and the worst peak of each counts. The in-memory runs are for comparison, once each.
    """
    small, large = ctx.rows(1_000_000), ctx.rows(2_000_000)
    paths = {"six": six_rows(ctx), small: csv_file(ctx, small), large: csv_file(ctx, large)}

    def argv(key, budget: bool) -> list[str]:
        name = f"mem-{key}-{'streamed' if budget else 'in-memory'}.pt"
        return [EDGELR, "train", str(paths[key]), *(["--memory-budget", BUDGET] if budget else []),
                "--val-fraction", "0.2", "-o", str(ctx.scratch / name)]

    for key in paths:  # one untimed pass over each file, so every measured run finds it in the page cache
        subprocess.run(["cat", str(paths[key])], stdout=subprocess.DEVNULL, check=True)
    streamed = interleaved({key: argv(key, True) for key in ("six", small, large)}, ctx)
    peak = {key: max(r.peak_mib for r in runs) for key, runs in streamed.items()}
    rows = []
    for key in (small, large):
        extra = peak[key] - peak["six"]
        rows.append(Row(f"{count(key)} × {N_FEATURES_CSV} CSV, `--memory-budget {BUDGET}`: peak RSS (ref: six rows)",
                        fmt_mib(peak[key]), fmt_mib(peak["six"]), f"{extra:+.0f} MiB", f"≤ +{BUDGET_MIB} MiB",
                        "PASS" if extra <= BUDGET_MIB else "MISS"))
    whole = {small: run(argv(small, False), ctx.scratch)}
    if ctx.in_memory_2m:
        whole[large] = run(argv(large, False), ctx.scratch)
    rows.append(at_most(f"{count(small)} × {N_FEATURES_CSV} CSV, peak RSS: in memory (ref: streamed)",
                        whole[small].peak_mib, peak[small], None, fmt=fmt_mib))
    compared = large if large in whole else small
    gap = max_proba_gap(ctx.scratch / f"mem-{compared}-streamed.pt", ctx.scratch / f"mem-{compared}-in-memory.pt",
                        sample(paths[compared]))
    rows.append(gap_row(f"{count(compared)} × {N_FEATURES_CSV} CSV: streamed vs in-memory model, max |Δp|", gap))
    label = {"six": "six rows", small: f"{count(small)} streamed", large: f"{count(large)} streamed"}
    ctx.notes.append(
        "figure 3: peak RSS of each run (wall) " + "; ".join(
            [f"{label[k]} " + ", ".join(f"{fmt_mib(r.peak_mib)} ({r.seconds:.1f} s)" for r in runs)
             for k, runs in streamed.items()]
            + [f"{count(k)} in memory {fmt_mib(r.peak_mib)} ({r.seconds:.1f} s)" for k, r in whole.items()])
        + f"; max |Δp| on the first {SAMPLE_ROWS:,} rows")
    return rows


def data_parallel(ctx: Context) -> list[Row]:
    """Figure 4: torchrun with 2 ranks vs one process on the 1M x 50 CSV; time and agreement of the models."""
    n = ctx.rows(1_000_000)
    path = csv_file(ctx, n)
    one, two = ctx.scratch / "one.pt", ctx.scratch / "two.pt"
    commands = {"two": [TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "edgelr", "train", str(path),
                        "--json", "-o", str(two)],
                "one": [EDGELR, "train", str(path), "--json", "-o", str(one)]}
    runs = interleaved(commands, ctx)
    summary = json.loads(runs["two"][-1].stdout.strip().splitlines()[-1])
    world = summary.get("world_size")
    gap = max_proba_gap(one, two, sample(path))
    ctx.notes.append(f"figure 4: torchrun --json reports world_size {world!r}; wall times 2 ranks "
                     f"{[round(r.seconds, 2) for r in runs['two']]} s, 1 process "
                     f"{[round(r.seconds, 2) for r in runs['one']]} s")
    rows = [at_most(f"{count(n)} × {N_FEATURES_CSV} CSV, wall: torchrun 2 ranks / 1 process",
                    median_seconds(runs["two"]), median_seconds(runs["one"]), None),
            gap_row(f"{count(n)} × {N_FEATURES_CSV} CSV: 2-rank vs 1-process model, max |Δp|", gap)]
    if world != 2:
        rows.append(Row("torchrun `--json`: world_size", repr(world), "2", "—", "= 2", "MISS"))
    return rows


FIGURES: dict[str, tuple[str, Callable[[Context], list[Row]]]] = {
    "1": ("in memory × 100 float32, first fit, edgelr vs scikit-learn", in_memory),
    "2": ("CSV × 50 end to end, `edgelr train` vs pandas + scikit-learn", end_to_end),
    "3": ("CSV × 50, peak memory with `--memory-budget`", memory),
    "4": ("CSV × 50, torchrun 2 ranks vs 1 process", data_parallel),
}


# -- report ------------------------------------------------------------------------------


def machine() -> list[str]:
    """The machine and the versions that set the figures."""
    import pandas
    import sklearn
    import torch

    return [machine_line(),
            f"python {platform.python_version()}, torch {torch.__version__} (intra-op threads "
            f"{torch.get_num_threads()}), numpy {np.__version__}, pandas {pandas.__version__}, "
            f"scikit-learn {sklearn.__version__}"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/edgelr-bench-train"),
                        help="where the CSVs are generated once and reused (default: %(default)s)")
    parser.add_argument("--rows-scale", type=float, default=1.0,
                        help="multiply every row count by this, e.g. 0.05 for a quick smoke run (default: 1)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender (median; default 3)")
    parser.add_argument("--only", default="1,2,3,4", help="comma-separated figures to run (default: all)")
    parser.add_argument("--skip-in-memory-2m", action="store_true",
                        help="figure 3: compare the 1M streamed and in-memory models instead of the 2M ones")
    parser.add_argument("--write-csv", nargs=2, metavar=("PATH", "ROWS"), help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.write_csv:  # the data-writing subprocess
        write_csv(Path(args.write_csv[0]), int(args.write_csv[1]), SEED + 2)
        return
    started = time.perf_counter()
    for line in machine():
        print(line)
    args.dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="edgelr-bench-train-"))
    ctx = Context(args.dir, scratch, args.rows_scale, args.repeat, not args.skip_in_memory_2m)
    rows: list[Row] = []
    try:
        for key in [k.strip() for k in args.only.split(",") if k.strip()]:
            title, figure = FIGURES[key]
            print(f"figure {key}: {title} ...", flush=True)
            t0 = time.perf_counter()
            try:
                rows += figure(ctx)
            except Exception as exc:  # one broken figure must not hide the others
                reason = str(exc) if isinstance(exc, CommandFailed) else traceback.format_exc().strip()
                rows.append(Row(f"figure {key}: {title}", "ERROR", "—", "—", "—", "ERROR"))
                ctx.notes.append(f"figure {key} ERROR: {reason}")
            print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print("\n".join(table(rows)))
    print()
    for note in ctx.notes:
        print(note)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"total {time.perf_counter() - started:.0f} s; load average at the end {load}")


if __name__ == "__main__":
    main()
