"""The command line: output formats, and one clear ``Error:`` line for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from edgelr.checkpoint import FORMAT_VERSION
from edgelr.cli import main
from tests.conftest import write_csv

GOOD_HEADER = ["a", "b", "label"]
GOOD_ROWS = [[1, 2, "x"], [2, 1, "y"], [3, 3, "x"], [4, 1, "y"]]


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def assert_error(result, *fragments: str) -> None:
    """Exit 1, one ``Error:`` line on stderr naming what went wrong, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr


# -- spec section 2: bad data --------------------------------------------------------

BAD_DATA = {
    "non-numeric": (GOOD_HEADER, [[1, 2, "x"], [2, "abc", "y"]], ["line 3", "column 'b'", "got 'abc'"]),
    "empty cell": (GOOD_HEADER, [[1, 2, "x"], ["", 1, "y"]], ["line 3", "column 'a'", "empty cell"]),
    "nan": (GOOD_HEADER, [[1, 2, "x"], [2, "nan", "y"]], ["line 3", "column 'b'", "missing cell 'nan'", "--impute"]),
    "infinity": (GOOD_HEADER, [[1, "-inf", "x"], [2, 1, "y"]], ["line 2", "column 'b'", "not finite"]),
    "ragged": (GOOD_HEADER, [[1, 2, "x"], [2, 1, "y", 7]], ["line 3", "4 fields, expected 3"]),
    "short row": (GOOD_HEADER, [[1, 2, "x"], [2, "y"]], ["line 3", "2 fields, expected 3"]),
    "empty label": (GOOD_HEADER, [[1, 2, "x"], [2, 1, ""]], ["line 3", "column 'label'", "empty label"]),
    "one class": (GOOD_HEADER, [[1, 2, "x"], [2, 1, "x"]], ["column 'label'", "only one class: x"]),
    "no rows": (GOOD_HEADER, [], ["no data rows"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_one_error_line_naming_file_line_column(tmp_path, case):
    header, rows, fragments = BAD_DATA[case]
    path = write_csv(tmp_path / "bad.csv", header, rows)
    result = run("train", str(path), "-o", str(tmp_path / "m.pt"))
    assert_error(result, str(path), *fragments)
    assert not (tmp_path / "m.pt").exists()


def test_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    assert_error(run("train", str(tmp_path / "empty.csv")), "empty.csv", "the file is empty")


def test_not_utf8(tmp_path):
    (tmp_path / "latin.csv").write_bytes(b"a,b,label\n1,2,caf\xe9\n2,1,x\n")
    assert_error(run("train", str(tmp_path / "latin.csv")), "latin.csv, line 2", "not UTF-8 text (byte 0xe9)")


@pytest.mark.parametrize("args,fragments", [
    (["--label", "nope"], ["label column 'nope' not found", "the header has: a, b, label"]),
    (["--features", "a,zz"], ["feature column 'zz' not found"]),
    (["--features", "a,label"], ["'label' is both the label and a feature"]),
])
def test_missing_or_conflicting_columns(tmp_path, args, fragments):
    path = write_csv(tmp_path / "d.csv", GOOD_HEADER, GOOD_ROWS)
    assert_error(run("train", str(path), *args, "-o", str(tmp_path / "m.pt")), str(path), *fragments)


def test_missing_data_file_is_reported(tmp_path):
    assert_error(run("train", str(tmp_path / "nope.csv")), "nope.csv", "no such file")


def test_cuda_request_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the message is for machines without it")
    assert_error(run("train", "--device", "cuda", "-o", str(tmp_path / "m.pt")), "CUDA is not available")


# -- spec section 4: checkpoints export refuses ----------------------------------------

class _Payload:
    """Unpickling this would run code: create a file named by the test."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_checkpoint_is_refused_and_never_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    torch.save({"format": "edgelr.checkpoint", "payload": _Payload(str(sentinel))}, tmp_path / "evil.pt")
    result = run("export", str(tmp_path / "evil.pt"), "-o", str(tmp_path / "m.onnx"))
    assert_error(result, "evil.pt", "edgelr refuses")
    assert not sentinel.exists()
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("make,fragment", [
    (lambda p: torch.save({"weights": torch.zeros(3)}, p), "not an edgelr checkpoint"),
    (lambda p: p.write_bytes(b""), "the file is empty"),
    (lambda p: p.write_bytes(b"\x08\x07\x12\x07pytorch"), "looks like an ONNX model"),
    (lambda p: p.write_text("hello"), "not a zip archive"),
])
def test_foreign_files_are_refused_by_export(tmp_path, make, fragment):
    make(tmp_path / "foreign.pt")
    assert_error(run("export", str(tmp_path / "foreign.pt"), "-o", str(tmp_path / "m.onnx")), "foreign.pt", fragment)
    assert not (tmp_path / "m.onnx").exists()


def test_truncated_and_newer_checkpoints(tmp_path, binary_checkpoint):
    data = binary_checkpoint.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    assert_error(run("export", str(tmp_path / "cut.pt")), "cut.pt", "truncated")

    state = torch.load(binary_checkpoint, weights_only=True)
    newer = FORMAT_VERSION + 1
    torch.save({**state, "format_version": newer}, tmp_path / "future.pt")
    assert_error(run("export", str(tmp_path / "future.pt")), f"format version {newer} is newer")


def test_export_default_checkpoint_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_error(run("export"), os.path.join("models", "model.pt"), "no such checkpoint")


def test_verify_refuses_a_non_edgelr_onnx(tmp_path, binary_checkpoint, binary_onnx):
    import onnx

    model = onnx.load(str(binary_onnx))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "plain.onnx"))
    assert_error(run("verify", str(binary_checkpoint), str(tmp_path / "plain.onnx")), "not an edgelr model")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    assert_error(run("verify", str(binary_checkpoint), str(tmp_path / "junk.onnx")), "junk.onnx")


# -- spec section 8: files -------------------------------------------------------------

def test_failed_training_keeps_the_earlier_checkpoint(tmp_path):
    out = tmp_path / "m.pt"
    assert run("train", "-o", str(out), "--val-fraction", "0").exit_code == 0
    before = out.read_bytes()
    bad = write_csv(tmp_path / "bad.csv", GOOD_HEADER, [[1, 2, "x"], ["?", 1, "y"]])
    assert run("train", str(bad), "-o", str(out)).exit_code == 1
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "m.pt"]


def test_debug_env_shows_the_traceback(tmp_path):
    result = run("train", str(tmp_path / "nope.csv"), env={"EDGELR_DEBUG": "1"})
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "DataError"


# -- output ----------------------------------------------------------------------------

def test_json_summary_is_the_only_stdout(tmp_path, binary_csv):
    result = run("train", str(binary_csv), "--json", "-o", str(tmp_path / "m.pt"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == {"checkpoint", "history", "metrics", "threshold"}  # binary: its threshold, 0.5
    assert summary["threshold"] == 0.5
    assert summary["checkpoint"] == str(tmp_path / "m.pt")
    assert set(summary["metrics"]) == {"train", "validation"}
    for split in ("train", "validation"):
        assert {"accuracy", "log_loss", "precision", "recall", "f1", "roc_auc"} <= set(summary["metrics"][split])


def test_multiclass_metrics_have_no_binary_scores(tmp_path, multiclass_csv):
    summary = json.loads(run("train", str(multiclass_csv), "--json", "-o", str(tmp_path / "m.pt")).stdout)
    assert set(summary["metrics"]["train"]) == {"accuracy", "log_loss"}


def test_label_and_features_options(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["passed", "id", "lectures", "lab"],
                     [[0, 1, 1, 2], [0, 2, 2, 3], [0, 3, 3, 1], [1, 4, 4, 3], [1, 5, 5, 3], [1, 6, 6, 2]])
    result = run("train", str(path), "--label", "passed", "--features", "lab,lectures", "--val-fraction", "0",
                 "-o", str(tmp_path / "m.pt"))
    assert result.exit_code == 0, result.output
    info = run("info", str(tmp_path / "m.pt"))
    assert "features    2: lab, lectures" in info.output and "label 'passed'" in info.output


def test_human_summary_and_info(tmp_path, binary_onnx):
    result = run("train", "-o", str(tmp_path / "m.pt"))
    assert result.exit_code == 0
    assert "trained on students (built-in): 6 rows" in result.output
    assert "accuracy" in result.output and f"checkpoint: {tmp_path / 'm.pt'}" in result.output
    info = run("info", str(binary_onnx))
    assert info.exit_code == 0
    assert "edgelr ONNX model" in info.output and "probabilities tensor(float) ['batch', 2]" in info.output
    assert "parity      max diff" in info.output


def test_missing_training_extra_is_one_line(monkeypatch, tmp_path):
    """Without torch installed, train/export/verify point to edgelr[train] instead of crashing."""
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def no_torch(name, *args, **kwargs):
        return None if name.split(".")[0] in {"torch", "onnx", "onnxscript"} else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", no_torch)
    for command in (["train"], ["export"], ["verify", "a.pt", "b.onnx"]):
        assert_error(run(*command), "pip install 'edgelr[train]'")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_help_and_onnx_info_never_import_torch_or_onnx(binary_onnx):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgelr.cli import main\n"
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
        f"r = CliRunner().invoke(main, ['info', {str(binary_onnx)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxscript')))\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_python_dash_m_edgelr():
    proc = subprocess.run([sys.executable, "-m", "edgelr", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for command in ("train", "export", "verify", "info"):
        assert command in proc.stdout


def test_console_script_exits_quickly_after_running_exit_handlers_and_flushing(tmp_path):
    # edgelr.cli.run ends a command that loaded torch in os._exit: what Python's own exit
    # would have done first must still happen, or a pipe reads a cut-off summary.
    marker, model = tmp_path / "atexit-ran", tmp_path / "m.pt"
    code = (
        "import atexit, os, sys\n"
        "from pathlib import Path\n"
        "from edgelr.cli import run\n"
        f"atexit.register(Path({str(marker)!r}).write_text, 'yes')\n"
        "atexit.register(print, 'bye')  # buffered: stdout is a pipe\n"
        "real_exit = os._exit\n"
        "os._exit = lambda status: (print('quick exit', status, file=sys.stderr, flush=True), real_exit(status))\n"
        "sys.argv = ['edgelr', *sys.argv[1:]]\n"
        "run()\n"
    )
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user's shell has it
    ok = subprocess.run([sys.executable, "-c", code, "train", "--val-fraction", "0", "-o", str(model)],
                        capture_output=True, text=True, timeout=120, env=buffered)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.endswith(f"checkpoint: {model}\nbye\n")  # the summary, then what exit printed
    assert ok.stderr.endswith("quick exit 0\n")  # the exit it is about was taken
    assert marker.read_text() == "yes"
    assert torch.load(model, weights_only=True)["feature_names"] == ["lecture_hours", "lab_hours"]
    marker.unlink()
    bad = subprocess.run([sys.executable, "-c", code, "train", str(tmp_path / "absent.csv"), "-o", str(model)],
                         capture_output=True, text=True, timeout=120, env=buffered)
    # Whether torch had loaded by then (the quick exit) or not (Python's own), the same outcome.
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ") and "absent.csv" in bad.stderr
    assert marker.read_text() == "yes"


def test_diverging_training_is_an_error_not_a_nan_checkpoint(tmp_path):
    result = run("train", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "50", "-o", str(tmp_path / "m.pt"))
    assert_error(result, "training diverged", "smaller --lr")
    assert not (tmp_path / "m.pt").exists()


def test_export_refuses_to_overwrite_its_checkpoint(tmp_path, binary_checkpoint):
    copy = tmp_path / "m.pt"
    copy.write_bytes(binary_checkpoint.read_bytes())
    assert_error(run("export", str(copy), "-o", str(copy)), "is the checkpoint being exported")
    assert copy.read_bytes() == binary_checkpoint.read_bytes()


def test_repeated_feature_and_unwritable_output(tmp_path):
    path = write_csv(tmp_path / "d.csv", GOOD_HEADER, GOOD_ROWS)
    assert_error(run("train", str(path), "--features", "a,a"), "names a more than once")
    assert_error(run("train", str(path), "-o", str(path / "m.pt")), "cannot write there")


def test_directory_given_as_model(tmp_path):
    assert_error(run("export", str(tmp_path)), "is a directory")
    assert_error(run("info", str(tmp_path)), "is a directory")


# -- spec section 3: --threshold; section 5: export --threshold -------------------------

def _validation_rows(csv_path):
    """(X, y) of the rows ``edgelr train`` holds out by default (val fraction 0.2, seed 0)."""
    from edgelr.data import read_csv, stratified_split

    data = read_csv(csv_path)
    _, val_rows = stratified_split(data.y, 0.2, 0)
    return data.X[val_rows], data.y[val_rows]


def test_threshold_recall_rule_reaches_it_and_the_graph_labels_p_above_it(tmp_path, binary_csv):
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    from edgelr.estimator import LogisticRegression
    from edgelr.runtime import Predictor

    out = tmp_path / "m.pt"
    result = run("train", str(binary_csv), "--threshold", "recall:0.98", "--json", "-o", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    t = summary["threshold"]
    assert 0 < t < 0.5  # catching 98% of the positives takes a threshold below the default here
    X, y = _validation_rows(binary_csv)
    p = LogisticRegression.load(out).predict_proba(X)[:, 1]
    pred = (p > t).astype(int)
    assert recall_score(y, pred) >= 0.98
    validation = summary["metrics"]["validation"]  # measured at the chosen threshold
    assert validation["recall"] == pytest.approx(recall_score(y, pred))
    assert validation["precision"] == pytest.approx(precision_score(y, pred))
    assert validation["f1"] == pytest.approx(f1_score(y, pred))
    assert validation["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert "threshold" in run("info", str(out)).output and "chosen by recall:0.98" in run("info", str(out)).output

    assert run("export", str(out)).exit_code == 0
    model = Predictor(out.with_suffix(".onnx"))
    assert model.threshold == t
    labels, proba = model.score(X.astype(np.float32), as_index=True)
    near = np.abs(proba[:, 1] - t) <= 1e-5  # rows within the parity tolerance may fall either way
    np.testing.assert_array_equal(labels[~near], (proba[:, 1] > t).astype(int)[~near])


def test_threshold_number_and_report_marker(tmp_path, binary_csv):
    out, report = tmp_path / "m.pt", tmp_path / "report"
    result = run("train", str(binary_csv), "--threshold", "0.3", "--report", str(report), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "threshold   0.3 (class 1 when p > threshold)" in result.output
    card = (report / "model_card.md").read_text()
    assert "| threshold | 0.3 (class 1 when p > threshold; the red dot on the ROC" in card
    max_f1 = run("train", str(binary_csv), "--threshold", "max-f1", "--report", str(report), "-o", str(out))
    assert max_f1.exit_code == 0, max_f1.output
    assert "chosen by `max-f1` on the validation rows" in (report / "model_card.md").read_text()


@pytest.mark.parametrize("args, fragments", [
    (["--threshold", "max-f1", "--val-fraction", "0"], ["--threshold max-f1 is chosen on the validation rows",
                                                        "--val-fraction 0 leaves none"]),
    (["--threshold", "precision:1", "--val-fraction", "0"], ["--threshold precision:1 is chosen"]),
])
def test_threshold_rules_need_validation_rows(tmp_path, binary_csv, args, fragments):
    assert_error(run("train", str(binary_csv), *args, "-o", str(tmp_path / "m.pt")), *fragments)


def test_threshold_is_for_binary_models(tmp_path, multiclass_csv):
    result = run("train", str(multiclass_csv), "--threshold", "0.3", "-o", str(tmp_path / "m.pt"))
    assert_error(result, "--threshold 0.3 is for binary models, and the label has 3 classes")
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("value", ["1.5", "0", "precision:2", "f1", "recall:x"])
def test_unparsable_threshold_is_a_usage_error(tmp_path, binary_csv, value):
    result = run("train", str(binary_csv), "--threshold", value, "-o", str(tmp_path / "m.pt"))
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--threshold'" in result.stderr


def test_export_threshold_overrides_the_checkpoints(tmp_path, binary_checkpoint):
    import numpy as np

    from edgelr.checkpoint import load_checkpoint
    from edgelr.runtime import Predictor

    before = binary_checkpoint.read_bytes()
    out = tmp_path / "t.onnx"
    result = run("export", str(binary_checkpoint), "-o", str(out), "--threshold", "0.2")
    assert result.exit_code == 0, result.output
    assert "note: threshold 0.2 instead of the checkpoint's 0.5" in result.stderr
    assert binary_checkpoint.read_bytes() == before
    assert load_checkpoint(binary_checkpoint)["threshold"] == 0.5
    model = Predictor(out)
    assert model.threshold == 0.2
    metrics = json.loads(model.metadata["edgelr.metrics"])
    assert "accuracy" not in metrics["train"] and "roc_auc" in metrics["train"]
    X = np.random.default_rng(0).normal(size=(500, 5)) * [1.0, 10.0, 100.0, 0.1, 5.0] + [0, 5, -3, 1000, 0]
    labels, proba = model.score(X.astype(np.float32), as_index=True)
    near = np.abs(proba[:, 1] - 0.2) <= 1e-5
    np.testing.assert_array_equal(labels[~near], (proba[:, 1] > 0.2).astype(int)[~near])
    assert "binary, threshold 0.2" in run("info", str(out)).output


def test_export_threshold_errors(tmp_path, binary_checkpoint, multiclass_checkpoint):
    assert_error(run("export", str(multiclass_checkpoint), "-o", str(tmp_path / "m.onnx"), "--threshold", "0.3"),
                 "--threshold is for binary models, and this one has 3 classes")
    assert not (tmp_path / "m.onnx").exists()
    assert run("export", str(binary_checkpoint), "-o", str(tmp_path / "b.onnx"), "--threshold", "1").exit_code == 2
    assert_error(run("export", str(binary_checkpoint), "-o", str(binary_checkpoint), "--threshold", "0.3"),
                 "is the checkpoint being exported")
