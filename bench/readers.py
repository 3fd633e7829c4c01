"""Which CSV reader should the training side use for large numeric CSVs?

Standalone benchmark: generates (once) a 1,000,000-row x 50-feature numeric CSV with a
``f0..f49,label`` header, then times each reader in its own subprocess, so the peak RSS
that ``os.wait4`` reports (``ru_maxrss``, KiB on Linux) belongs to that reader alone.
Every reader ends with what training needs: a C-contiguous float32 (n, 50) feature
matrix and the label column. The time is measured inside the child around read +
conversion only (interpreter start and imports are reported separately).

    python bench/readers.py [--dir /tmp/edgelr-bench] [--rows 1000000] [--repeat 3]
    python bench/readers.py --only numpy.loadtxt,polars   # a subset

Optional packages (pyarrow, polars) that are missing are skipped, not failed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

N_FEATURES = 50
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
LABEL = "label"
REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- data


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write the CSV: 50 float columns at ~7 significant digits and a 0/1 label."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # Sensor-like columns: different offsets and scales, so the text has varied widths.
    offset = rng.normal(0, 100, N_FEATURES)
    scale = 10.0 ** rng.uniform(-3, 3, N_FEATURES)
    w = rng.normal(0, 1, N_FEATURES)
    fmt = ",".join(["%.7g"] * N_FEATURES + ["%d"])
    tmp = path.with_suffix(".tmp")
    chunk = 100_000
    with open(tmp, "w", newline="\n") as out:
        out.write(",".join([*FEATURES, LABEL]) + "\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            z = rng.normal(0, 1, (n, N_FEATURES))
            y = (z @ w + rng.normal(0, 1, n) > 0).astype(np.float64)
            np.savetxt(out, np.column_stack([offset + scale * z, y]), fmt=fmt)
    tmp.replace(path)


# --------------------------------------------------------------------------- readers
# Each returns (X float32 C-contiguous (n, 50), y 1-D label array).


def read_numpy_loadtxt(path):
    import numpy as np

    a = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return np.ascontiguousarray(a[:, :N_FEATURES], dtype=np.float32), a[:, N_FEATURES].astype(np.int64)


def _pandas(path, engine):
    import numpy as np
    import pandas as pd

    dtypes = {f: np.float32 for f in FEATURES} | {LABEL: np.int64}
    df = pd.read_csv(path, engine=engine, dtype=dtypes)
    X = df[FEATURES].to_numpy(dtype=np.float32)
    return np.ascontiguousarray(X), df[LABEL].to_numpy()


def read_pandas_c(path):
    return _pandas(path, "c")


def read_pandas_pyarrow(path):
    return _pandas(path, "pyarrow")


def read_pyarrow(path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {f: pa.float32() for f in FEATURES} | {LABEL: pa.int64()}
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))
    X = np.empty((table.num_rows, N_FEATURES), dtype=np.float32)
    for j, name in enumerate(FEATURES):
        X[:, j] = table.column(name).to_numpy()
    y = table.column(LABEL).to_numpy()
    return X, y


def read_polars(path):
    import numpy as np
    import polars as pl

    types = {f: pl.Float32 for f in FEATURES} | {LABEL: pl.Int64}
    df = pl.read_csv(path, schema_overrides=types)
    X = np.ascontiguousarray(df.select(FEATURES).to_numpy(order="c"))
    return X, df.get_column(LABEL).to_numpy()


def read_edgelr(path):
    import numpy as np

    from edgelr.data import read_csv

    ds = read_csv(path, label=LABEL)
    # y is an index into ds.classes; classes are [0, 1] here, so it is the label itself.
    return np.ascontiguousarray(ds.X, dtype=np.float32), np.asarray(ds.classes)[ds.y]


READERS = {
    "numpy.loadtxt": (read_numpy_loadtxt, "numpy"),
    "pandas c": (read_pandas_c, "pandas"),
    "pandas pyarrow": (read_pandas_pyarrow, "pyarrow"),
    "pyarrow.csv": (read_pyarrow, "pyarrow"),
    "polars": (read_polars, "polars"),
    "edgelr.read_csv": (read_edgelr, "numpy"),
}

# Modules each reader imports; imported before the clock starts.
IMPORTS = {
    "numpy.loadtxt": ["numpy"],
    "pandas c": ["numpy", "pandas"],
    "pandas pyarrow": ["numpy", "pandas", "pyarrow", "pyarrow.csv"],
    "pyarrow.csv": ["numpy", "pyarrow", "pyarrow.csv"],
    "polars": ["numpy", "polars"],
    "edgelr.read_csv": ["numpy", "edgelr.data"],
}


def worker(name: str, path: str) -> None:
    """Child process: import, read once, print one JSON line."""
    import importlib

    t0 = time.perf_counter()
    for mod in IMPORTS[name]:
        importlib.import_module(mod)
    t1 = time.perf_counter()
    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    X, y = READERS[name][0](path)
    t2 = time.perf_counter()
    import numpy as np

    ok = X.dtype == np.float32 and X.ndim == 2 and X.shape[1] == N_FEATURES and X.flags.c_contiguous
    ok = ok and y.ndim == 1 and y.shape[0] == X.shape[0]
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "read_s": t2 - t1,
                "base_kib": base_kib,
                "shape": list(X.shape),
                "ok": bool(ok),
                "x_sum": float(X.sum(dtype=np.float64)),
                "x_first": [float(v) for v in X[0, :3]],
                "y_sum": int(np.asarray(y, dtype=np.int64).sum()),
            }
        )
    )


def run_once(name: str, path: Path) -> dict:
    """One measurement in a fresh interpreter; peak RSS from wait4 on that child."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", name, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = proc.stdout.read(), proc.stderr.read()  # small: read before reaping
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_kib"] = usage.ru_maxrss
    result["cpu_s"] = usage.ru_utime + usage.ru_stime  # whole child, imports included
    return result


# --------------------------------------------------------------------------- packages


def package_info(dist_name: str) -> str:
    """Installed size (files listed in RECORD) and the wheel tag it was installed from."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return f"{dist_name}: not installed"
    size = 0
    for f in dist.files or []:
        p = Path(dist.locate_file(f))
        if p.is_file():
            size += p.stat().st_size
    wheel = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    pure = "Root-Is-Purelib: true" in wheel
    kind = "pure Python" if pure else "binary wheel"
    return f"{dist_name} {dist.version}: {size / 2**20:.0f} MiB, {kind} ({', '.join(tags[:2]) or 'no tag'})"


# --------------------------------------------------------------------------- main


def available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="/tmp/edgelr-bench", help="where the generated CSV lives")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per reader; the median is reported")
    parser.add_argument("--only", help="comma-separated reader names (default: all)")
    parser.add_argument("--worker", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, metavar=("PATH", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.generate:
        generate(Path(args.generate[0]), int(args.generate[1]))
        return

    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"numeric_{args.rows}x{N_FEATURES}.csv"
    if not path.exists():
        # In a child: the launcher must stay small, because on Linux a child's ru_maxrss
        # starts from the launcher's own high-water mark (it is carried over at exec).
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(path), str(args.rows)], check=True)
        print(f"generated {path} in {time.perf_counter() - t:.1f} s")
    print(f"data: {path} ({path.stat().st_size / 2**20:.0f} MiB, {args.rows:,} rows x {N_FEATURES} features + label)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")

    names = args.only.split(",") if args.only else list(READERS)
    rows = []
    for name in names:
        module = READERS[name][1]
        if not available(module):
            print(f"{name}: skipped ({module} not installed)")
            continue
        runs = []
        for _ in range(args.repeat):
            runs.append(run_once(name, path))
            print(f"  {name}: {runs[-1]['read_s']:.2f} s, {runs[-1]['peak_kib'] / 1024:.0f} MiB", flush=True)
        rows.append((name, runs))

    if not rows:
        return
    ref = rows[0][1][0]
    best = min(statistics.median(r["read_s"] for r in runs) for _, runs in rows)
    print()
    head = f"{'reader':<22}{'median s':>10}{'peak MiB':>10}{'base MiB':>10}{'import s':>10}{'cpu s':>8}"
    head += f"{'x fastest':>11}  agrees"
    print(head)
    print("-" * len(head))
    for name, runs in rows:
        med = statistics.median(r["read_s"] for r in runs)
        peak = max(r["peak_kib"] for r in runs) / 1024
        base = max(r["base_kib"] for r in runs) / 1024
        imp = statistics.median(r["import_s"] for r in runs)
        cpu = statistics.median(r["cpu_s"] for r in runs)
        r = runs[0]
        agrees = (
            all(x["ok"] for x in runs)
            and r["shape"] == ref["shape"]
            and r["y_sum"] == ref["y_sum"]
            and abs(r["x_sum"] - ref["x_sum"]) <= 1e-6 * max(1.0, abs(ref["x_sum"]))
            and r["x_first"] == ref["x_first"]
        )
        mark = "yes" if agrees else "NO"
        print(f"{name:<22}{med:>10.2f}{peak:>10.0f}{base:>10.0f}{imp:>10.2f}{cpu:>8.2f}{med / best:>11.1f}  {mark}")
    launcher = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\npeak MiB: ru_maxrss of the child (interpreter + imports + read); base MiB: after imports, before"
        f" reading; both are floored at the launcher's own peak, {launcher:.0f} MiB\n"
        "cpu s: user + system CPU of the child (median, imports included); above 'median s' = more than one core"
    )
    print("\npackages:")
    for dist in ("numpy", "pandas", "pyarrow", "polars", "polars-runtime-32"):
        print("  " + package_info(dist))


if __name__ == "__main__":
    main()
