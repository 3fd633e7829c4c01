"""Text-column scoring of spec section 7 (``make bench``): edgelr's graph against skl2onnx's.

400,000 rows of 4 numeric columns (10% of three of them missing) and 3 text columns of
5, 60 and 4 categories (some missing, some never seen in training), scored from raw
values: edgelr's exported graph (imputation, standardization and the category lookup
inside) against scikit-learn's ``ColumnTransformer(SimpleImputer + StandardScaler |
OneHotEncoder(handle_unknown="ignore"))`` + ``LogisticRegression`` converted by skl2onnx
(no ZipMap), both in onnxruntime with the same session settings, both fitted on the same
20,000 rows. skl2onnx takes one input per column and no missing strings, so its text
columns get "" for missing (fitted that way too).

As a user meets it: each contender's ``session.run`` is timed as the first call in a
fresh process (session made and inputs built before the clock), alternating, 11 processes
each; the warm median of 9 further calls in those processes sits beside, labelled.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import Row, machine_line, table  # bench/common.py: the script's folder is on sys.path

ROWS, TRAIN_ROWS, PROCESSES, WARM_CALLS = 400_000, 20_000, 11, 9
THREADS = os.cpu_count() or 1
NUMERIC, TEXT = ["a", "b", "c", "d"], ["color", "city", "size"]

# A fresh process: build the session and the inputs, then time the first run and a few warm ones.
CHILD = """
import json, sys, time
import numpy as np, onnxruntime as ort
model, data, kind, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
arrays = np.load(data, allow_pickle=False)
numbers, text = arrays["numbers"], arrays["text"].astype(object)
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
if kind == "edgelr":
    feeds = {"features": numbers, "categories": text}
else:  # skl2onnx: one (n, 1) input per column, named as the DataFrame's columns
    names = [i.name for i in session.get_inputs()]
    columns = [numbers[:, [j]] for j in range(numbers.shape[1])] + [text[:, [j]] for j in range(text.shape[1])]
    feeds = dict(zip(names, columns))
clock = time.perf_counter
start = clock()
session.run(None, feeds)
first = clock() - start
warm = []
for _ in range(int(sys.argv[5])):
    start = clock()
    session.run(None, feeds)
    warm.append(clock() - start)
print(json.dumps({"first": first, "warm": warm}))
"""


def table_rows(n: int, seed: int):
    """A DataFrame of the figure's shape; the label depends on numbers and categories."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.conftest import make_table  # the tests' generator of such tables

    frame = make_table(n_rows=n, seed=seed, n_classes=2)
    frame.loc[frame.index[::50], "city"] = "city_unseen"  # 2% of the rows: a category training never saw
    return frame


def build(workdir: Path) -> tuple[Path, Path, Path, float]:
    """(edgelr model, skl2onnx model, scoring inputs .npz, largest |p_edgelr - p_sklearn| on the rows)."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import edgelr
    from edgelr.export import export_checkpoint

    train = table_rows(TRAIN_ROWS, seed=1)
    train = train[train["city"] != "city_unseen"]
    X, y = train.drop(columns=["label"]), train["label"]
    ours = edgelr.LogisticRegression(impute="median", device="cpu").fit(X, y)
    ours.save(workdir / "m.pt")
    export_checkpoint(workdir / "m.pt", workdir / "m.onnx")

    X_sk = X.copy()
    X_sk[TEXT] = X_sk[TEXT].fillna("")  # skl2onnx's string inputs have no missing value
    encode = ColumnTransformer([("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), TEXT)])
    pipeline = make_pipeline(encode, LogisticRegression(C=1.0, max_iter=10_000)).fit(X_sk, y)
    sample = X_sk[:1].copy()
    sample[NUMERIC] = sample[NUMERIC].astype(np.float32)
    onnx_model = to_onnx(pipeline, sample, options={LogisticRegression: {"zipmap": False}})
    (workdir / "sk.onnx").write_bytes(onnx_model.SerializeToString())

    rows = table_rows(ROWS, seed=2).drop(columns=["label"])
    numbers = rows[NUMERIC].to_numpy(np.float32)
    text = rows[TEXT].fillna("").to_numpy(dtype=str)
    np.savez(workdir / "rows.npz", numbers=numbers, text=text)
    p_ours = ort.InferenceSession(str(workdir / "m.onnx")).run(
        ["probabilities"], {"features": numbers, "categories": text.astype(object)})[0]
    sk = ort.InferenceSession(str(workdir / "sk.onnx"))
    feeds = dict(zip([i.name for i in sk.get_inputs()], [numbers[:, [j]] for j in range(4)]
                     + [text[:, [j]].astype(object) for j in range(3)]))
    p_sk = sk.run(None, feeds)[1]
    return workdir / "m.onnx", workdir / "sk.onnx", workdir / "rows.npz", float(np.abs(p_ours - p_sk).max())


def main() -> None:
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="edgelr-bench-tables-") as tmp:
        ours, theirs, data, gap = build(Path(tmp))
        runs: dict[str, list[dict]] = {"edgelr": [], "sklearn": []}
        for _ in range(PROCESSES):
            for kind, model in (("edgelr", ours), ("sklearn", theirs)):
                out = subprocess.run([sys.executable, "-c", CHILD, str(model), str(data), kind, str(THREADS),
                                      str(WARM_CALLS)], check=True, capture_output=True, text=True).stdout
                runs[kind].append(json.loads(out))
    first = {k: statistics.median(r["first"] for r in v) for k, v in runs.items()}
    warm = {k: statistics.median(t for r in v for t in r["warm"]) for k, v in runs.items()}

    def faster(figure: str, times: dict, target: float | None) -> Row:
        speedup = times["sklearn"] / times["edgelr"]
        verdict = "—" if target is None else ("PASS" if speedup >= target else "MISS")
        return Row(figure, f"{times['edgelr'] * 1e3:.1f} ms", f"{times['sklearn'] * 1e3:.1f} ms",
                   f"{speedup:.1f}× faster", f"≥ {target:g}× faster" if target else "—", verdict)

    rows = [faster("400k rows, 4 numeric + 3 text, first run in a fresh process: skl2onnx / edgelr", first, 2.0),
            faster("400k rows, 4 numeric + 3 text, warm median (same processes): skl2onnx / edgelr", warm, None)]
    print()
    print("\n".join(table(rows)))
    print()
    print(f"{PROCESSES} fresh processes per contender, intra-op threads = {THREADS}; the two models' probabilities "
          f"differ by at most {gap:.1e} (edgelr and scikit-learn fits of the same rows)")


if __name__ == "__main__":
    main()
