"""Training at scale: streamed from a disk cache past --memory-budget, and data-parallel under torchrun.

Both must give the model of an ordinary in-memory run (spec section 3), which in turn
matches scikit-learn (tests/test_train.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgelr.cli import main
from edgelr.estimator import LogisticRegression
from edgelr.outofcore import parse_size
from tests.conftest import data_csv, make_data


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, np.ndarray]:
    X, y = make_data(3, n_rows=6000, seed=5, string_labels=True)
    return data_csv(tmp_path_factory.mktemp("scale") / "big.csv", X, y), X


def train(*args) -> dict:
    result = CliRunner().invoke(main, ["train", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def train_two_ranks(*args) -> dict:
    """``edgelr train ARGS --json`` as two gloo ranks under torchrun: rank 0's one JSON summary."""
    run = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone", "--nproc-per-node", "2",
         "-m", "edgelr", "train", *map(str, args), "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)  # rank 0 alone prints, one JSON object


def max_diff(a: Path, b: Path, X: np.ndarray) -> float:
    p, q = LogisticRegression.load(a).predict_proba(X), LogisticRegression.load(b).predict_proba(X)
    return float(np.abs(p - q).max())


@pytest.mark.parametrize("extra", [[], ["--class-weight", "balanced"]])
def test_streamed_lbfgs_equals_in_memory(tmp_path, big, extra):
    path, X = big
    memory = train(path, "-o", tmp_path / "mem.pt", *extra)
    streamed = train(path, "-o", tmp_path / "str.pt", "--memory-budget", "64kB", *extra)  # chunks of ~1k rows
    # The spec's bar: probabilities within 1e-4 (sums in another order stop L-BFGS a hair apart).
    assert max_diff(tmp_path / "mem.pt", tmp_path / "str.pt", X) < 1e-4
    assert streamed["metrics"]["validation"]["accuracy"] == pytest.approx(memory["metrics"]["validation"]["accuracy"])
    assert streamed["history"][-1]["val_loss"] == pytest.approx(memory["history"][-1]["val_loss"], rel=1e-5)


def test_streamed_numeric_file_and_sgd_minibatches(tmp_path):
    X, y = make_data(2, n_rows=3000, seed=6)
    path = data_csv(tmp_path / "num.csv", X, y)  # all numeric: the fast chunked reader
    memory = train(path, "-o", tmp_path / "mem.pt")
    train(path, "-o", tmp_path / "str.pt", "--memory-budget", "32kB")
    assert max_diff(tmp_path / "mem.pt", tmp_path / "str.pt", X) < 1e-4
    sgd = train(path, "-o", tmp_path / "sgd.pt", "--memory-budget", "32kB", "--optimizer", "sgd",
                "--batch-size", "64", "--epochs", "20")
    # Mini-batches drawn chunk by chunk still reach the optimum's neighbourhood.
    assert sgd["history"][-1]["loss"] == pytest.approx(memory["history"][-1]["loss"], rel=1e-2)


def test_streamed_bad_cell_names_line_and_column(tmp_path):
    lines = ["a,b,y"] + [f"{i},{i % 7},{i % 2}" for i in range(5000)]
    lines[4001] = "4000,oops,0"
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m.pt"
    result = CliRunner().invoke(main, ["train", str(path), "-o", str(out), "--memory-budget", "16kB"])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {path}, line 4002, column 'b': got 'oops' in a column that also holds "
                                     "numbers (line 2: '0'); expected numbers only, or --categorical b to read the "
                                     "column as text")
    assert not out.exists()


@pytest.mark.parametrize("text,expected", [("128MB", 128 * 10**6), ("1.5GiB", int(1.5 * 2**30)), ("512k", 512_000),
                                           ("1000000", 10**6), ("2TB", 2 * 10**12)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text,match", [
    ("lots", "is not understood; expected a size such as 256MB"),
    ("12XB", "is not understood; expected a size such as 256MB"),
    ("-5MB", "is not understood; expected a size such as 256MB"),
    ("0", "is 0 bytes; expected a size above 0"),
    ("0.5B", "is 0 bytes; expected a size above 0"),
])
def test_bad_memory_budget_is_a_clear_error(tmp_path, text, match):
    result = CliRunner().invoke(main, ["train", "-o", str(tmp_path / "m.pt"), "--memory-budget", text])
    assert result.exit_code == 1
    assert f"Error: --memory-budget '{text}' {match}" in result.output


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is installed with torch; this environment has no torchrun script")
@pytest.mark.parametrize("extra", [[], ["--memory-budget", "64kB"]])
def test_torchrun_two_cpu_ranks_equal_one_process(tmp_path, big, extra):
    """Two gloo ranks, each with half the training rows, land on the one-process model."""
    path, X = big
    train(path, "-o", tmp_path / "one.pt")
    summary = train_two_ranks(path, "-o", tmp_path / "two.pt", *extra)
    assert summary["world_size"] == 2 and summary["checkpoint"] == str(tmp_path / "two.pt")
    assert max_diff(tmp_path / "one.pt", tmp_path / "two.pt", X) < 1e-4
    assert LogisticRegression.load(tmp_path / "two.pt").config_["world_size"] == 2


def test_budget_decides_streaming(tmp_path, big):
    path, _ = big
    runner = CliRunner()
    small = runner.invoke(main, ["train", str(path), "-o", str(tmp_path / "a.pt"), "--memory-budget", "64kB"])
    roomy = runner.invoke(main, ["train", str(path), "-o", str(tmp_path / "b.pt"), "--memory-budget", "1GB"])
    assert "(streamed from a disk cache)" in small.output
    assert "streamed" not in roomy.output and roomy.exit_code == 0


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU; CI has none")
@pytest.mark.parametrize("budget", [[], ["--memory-budget", "64kB"]])
def test_cuda_training_in_memory_and_streamed_equals_cpu(tmp_path, big, budget):
    """On the GPU: data resident for full batch, pinned non-blocking copies when streamed."""
    path, X = big
    train(path, "-o", tmp_path / "cpu.pt", "--device", "cpu")
    gpu = train(path, "-o", tmp_path / "gpu.pt", "--device", "cuda", *budget)
    assert LogisticRegression.load(tmp_path / "gpu.pt").config_["device"].startswith("cuda")
    assert max_diff(tmp_path / "cpu.pt", tmp_path / "gpu.pt", X) < 1e-4
    assert gpu["history"][0]["loss"] == pytest.approx(np.log(3), rel=1e-9)  # 3 classes, zero start


def test_minibatches_under_torchrun_are_refused_before_any_work(tmp_path, big, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    path, _ = big
    result = CliRunner().invoke(main, ["train", str(path), "--optimizer", "sgd", "--batch-size", "32",
                                       "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 1
    assert "Error: --batch-size 32 under torchrun" in result.output and "expected full-batch" in result.output
    assert not (tmp_path / "m.pt").exists()


def test_streamed_chunks_never_read_more_than_chunk_rows():
    """A sparse index (a validation split, one rank's share) still reads the file in bounded windows."""
    import torch

    from edgelr.rows import StreamedRows

    cache = np.arange(10_000 * 3, dtype=np.float64).reshape(10_000, 3)
    reads = []

    def read(start, stop):
        reads.append(stop - start)
        return cache[start:stop]

    index = np.arange(0, 10_000, 37)  # every 37th row
    rows = StreamedRows(read, np.zeros(10_000, dtype=np.int64), index, None, None, torch.device("cpu"),
                        chunk_rows=100, n_features=3)
    got = np.concatenate([raw for _, raw in rows.chunks()])
    np.testing.assert_array_equal(got, cache[index])
    assert max(reads) <= 100


@pytest.mark.parametrize("chunk_rows", [700, 10_000])
def test_streamed_subsample_takes_the_in_memory_rows(chunk_rows):
    """The warm start's every-step-th rows, read from a cache with a sparse index, are the
    rows the in-memory source takes; past one chunk's rows (the budget) there are none."""
    import torch

    from edgelr.rows import InMemoryRows, StreamedRows

    rng = np.random.default_rng(3)
    cache = rng.normal(size=(10_000, 3)) * [1, 10, 100] + [5, -5, 50]
    y = rng.integers(0, 3, size=10_000)
    index = np.sort(rng.choice(10_000, size=6_000, replace=False))
    weights = rng.uniform(0.5, 2.0, size=index.size)
    mean, scale = cache.mean(axis=0), cache.std(axis=0)
    streamed = StreamedRows(lambda a, b: cache[a:b], y, index, weights, lambda raw: ((raw - mean) / scale, None),
                            torch.device("cpu"), chunk_rows, n_features=3)
    sub = streamed.subsample(9)
    if chunk_rows < 6_000 // 9:
        assert sub is None
        return
    whole = InMemoryRows.standardized(cache, y[index], weights, mean, scale, torch.device("cpu"), index=index)
    ref = whole.subsample(9)
    assert sub.n == ref.n == 667
    assert torch.equal(sub.X, ref.X) and torch.equal(sub.y, ref.y) and torch.equal(sub.sample_weight, ref.sample_weight)


# A torchrun entry point that fails if any rank reads the whole file (the whole-file
# readers of the in-memory and the streamed paths), then runs the CLI.
_SHARE_ONLY = """
import sys
import edgelr.data, edgelr.distributed, edgelr.outofcore
from edgelr.cli import main

def whole_file(*args, **kwargs):
    raise SystemExit("a rank read the whole file")

edgelr.data.read_csv = edgelr.distributed.read_csv = whole_file
edgelr.outofcore.cache_csv = edgelr.distributed.cache_csv = whole_file
main(sys.argv[1:])
"""


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is installed with torch; this environment has no torchrun script")
@pytest.mark.parametrize("budget", [[], ["--memory-budget", "64kB"]])
def test_torchrun_ranks_read_only_their_share_and_equal_one_process(tmp_path, budget):
    """Numeric labels: each rank parses (or caches, when streaming) its byte range only
    (the whole-file readers are disabled), yet the model and every metric equal the
    one-process, in-memory run's."""
    X, y = make_data(2, n_rows=6000, seed=8)
    path = data_csv(tmp_path / "numeric.csv", X, y)
    one = train(path, "-o", tmp_path / "one.pt", "--class-weight", "balanced")
    entry = tmp_path / "share_only.py"
    entry.write_text(_SHARE_ONLY)
    run = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone", "--nproc-per-node", "2",
         str(entry), "train", str(path), "-o", str(tmp_path / "two.pt"), "--class-weight", "balanced", "--json",
         *budget],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    two = json.loads(run.stdout)
    assert max_diff(tmp_path / "one.pt", tmp_path / "two.pt", X) < 1e-4
    for split in ("train", "validation"):
        for name, value in one["metrics"][split].items():
            assert two["metrics"][split][name] == pytest.approx(value, abs=1e-6), (split, name)


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is installed with torch; this environment has no torchrun script")
def test_torchrun_bad_cell_in_a_later_share_is_named_by_line_and_column(tmp_path):
    """A bad cell in rank 1's byte range: every rank falls back to the exact reader, which names it."""
    X, y = make_data(2, n_rows=400, seed=9)
    path = data_csv(tmp_path / "bad.csv", X, y)
    lines = path.read_text().splitlines()
    cells = lines[351].split(",")  # data row 351, file line 352: in the second half
    cells[2] = "n/a"
    lines[351] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone", "--nproc-per-node", "2",
         "-m", "edgelr", "train", str(path), "-o", str(tmp_path / "m.pt")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode != 0
    assert f"Error: {path}, line 352, column 'f2'" in run.stdout + run.stderr
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is installed with torch; this environment has no torchrun script")
def test_l1_streamed_and_under_torchrun_land_on_the_in_memory_model_and_its_zeros(tmp_path, big):
    """OWL-QN evaluates the objective as L-BFGS does: streamed chunks and two ranks reach the same sparse optimum."""
    path, X = big
    l1 = ["--l1-ratio", "1", "--C", "0.02"]
    train(path, "-o", tmp_path / "mem.pt", *l1)
    train(path, "-o", tmp_path / "str.pt", "--memory-budget", "64kB", *l1)
    train_two_ranks(path, "-o", tmp_path / "two.pt", *l1)
    memory = LogisticRegression.load(tmp_path / "mem.pt").coef_
    assert 0 < int((memory == 0).sum()) < memory.size  # the case has zeros and non-zeros
    for other in ("str.pt", "two.pt"):
        np.testing.assert_array_equal(LogisticRegression.load(tmp_path / other).coef_ == 0, memory == 0)
        assert max_diff(tmp_path / "mem.pt", tmp_path / other, X) < 1e-4


def _weighted_csv(path: Path, n_rows: int, seed: int) -> tuple[Path, np.ndarray]:
    """A numeric CSV with a weight column 'w' (0 to 4, some 0) between the features and the label."""
    X, y = make_data(2, n_rows=n_rows, seed=seed)
    w = np.random.default_rng(seed).integers(0, 5, n_rows)
    with open(path, "w") as handle:
        handle.write(",".join(f"f{i}" for i in range(X.shape[1])) + ",w,label\n")
        handle.writelines(",".join(f"{v:.6g}" for v in row) + f",{k},{c}\n" for row, k, c in zip(X, w, y))
    return path, X


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is installed with torch; this environment has no torchrun script")
@pytest.mark.parametrize("budget", [[], ["--memory-budget", "64kB"]])
def test_torchrun_with_weights_reads_shares_and_equals_one_process(tmp_path, budget):
    """--weight-column under torchrun: each rank reads (or caches) its byte range only, the weights of every
    row are gathered, and the model equals the one-process run's, in memory or streamed."""
    path, X = _weighted_csv(tmp_path / "weighted.csv", 6000, seed=12)
    weighted = ["--weight-column", "w", "--class-weight", "balanced"]
    train(path, "-o", tmp_path / "one.pt", *weighted)
    train(path, "-o", tmp_path / "plain.pt", "--features", ",".join(f"f{i}" for i in range(X.shape[1])))
    entry = tmp_path / "share_only.py"
    entry.write_text(_SHARE_ONLY)
    run = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone", "--nproc-per-node", "2",
         str(entry), "train", str(path), "-o", str(tmp_path / "two.pt"), *weighted, "--json", *budget],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert max_diff(tmp_path / "one.pt", tmp_path / "two.pt", X) < 1e-4
    assert max_diff(tmp_path / "one.pt", tmp_path / "plain.pt", X) > 1e-2  # the weights matter here
    one, two = LogisticRegression.load(tmp_path / "one.pt"), LogisticRegression.load(tmp_path / "two.pt")
    np.testing.assert_allclose(two.mean_, one.mean_, rtol=1e-9)  # the weighted standardization, over ranks
    np.testing.assert_allclose(two.scale_, one.scale_, rtol=1e-9)


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is installed with torch; this environment has no torchrun script")
def test_torchrun_bad_weight_in_a_later_share_is_named_by_line(tmp_path):
    path, _ = _weighted_csv(tmp_path / "bad.csv", 400, seed=13)
    lines = path.read_text().splitlines()
    cells = lines[351].split(",")  # data row 351, file line 352: in rank 1's half
    cells[-2] = "-3"
    lines[351] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone", "--nproc-per-node", "2",
         "-m", "edgelr", "train", str(path), "--weight-column", "w", "-o", str(tmp_path / "m.pt")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode != 0
    assert f"Error: {path}, line 352, column 'w': weight -3; expected a finite number >= 0" in run.stdout + run.stderr
    assert not (tmp_path / "m.pt").exists()
