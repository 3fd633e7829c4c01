"""edgelr predict on the device (issue 13, spec section 6): stdin and JSON Lines, --keep,
--explain, drift warnings and --strict, progress only on a terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgelr.cli import main
from edgelr.runtime import Predictor
from tests.conftest import make_data, write_csv

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "models" / "reference"


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def ok(*args: str, input: str | None = None):
    result = run(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def assert_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


def rows_csv(path: Path, n_rows: int = 50, seed: int = 3) -> Path:
    X, y = make_data(2, n_rows=n_rows, seed=seed)
    header = ["id", "f0", "f1", "f2", "f3", "f4", "note", "target"]
    notes = ['plain', 'with, comma', 'a "quoted" word', 'two\nlines']
    rows = [[f"id{i}", *map(repr, row), notes[i % 4], label] for i, (row, label) in enumerate(zip(X.tolist(), y))]
    return write_csv(path, header, rows)


def jsonl_of(csv_path: Path, path: Path, *, drop: dict | None = None) -> Path:
    """The CSV's rows as JSON Lines objects (numbers as numbers); ``drop`` {row: key} leaves a key out."""
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(path, "w") as out:
        for i, row in enumerate(rows):
            obj = {k: (v if k in ("id", "note") else float(v) if k.startswith("f") else int(v)) for k, v in row.items()}
            if drop and i in drop:
                del obj[drop[i]]
            out.write(json.dumps(obj) + "\n")
    return path


@pytest.fixture(scope="module")
def text_onnx(tmp_path_factory) -> Path:
    """The pumps table (text columns, empty cells) with --impute median --missing-indicator."""
    tmp = tmp_path_factory.mktemp("pumps")
    ok("train", "--dataset", "pumps", "--impute", "median", "--missing-indicator", "-o", str(tmp / "pumps.pt"))
    ok("export", str(tmp / "pumps.pt"), "-o", str(tmp / "pumps.onnx"))
    return tmp / "pumps.onnx"


PUMPS_CSV = ROOT / "edgelr" / "datasets" / "pumps.csv"


# -- inputs and outputs ---------------------------------------------------------------------


def test_stdin_csv_gives_the_files_output(tmp_path, binary_onnx):
    data = rows_csv(tmp_path / "in.csv")
    from_file = ok("predict", str(binary_onnx), str(data)).stdout
    from_stdin = ok("predict", str(binary_onnx), "-", input=data.read_text()).stdout
    assert from_stdin == from_file
    assert from_stdin.splitlines()[0] == "label,probability_0,probability_1"
    assert ok("predict", str(binary_onnx), "-", "-o", "-", input=data.read_text()).stdout == from_file


def test_jsonl_in_and_out(tmp_path, binary_onnx):
    data = rows_csv(tmp_path / "in.csv")
    lines = jsonl_of(data, tmp_path / "in.jsonl")
    expected = list(csv.DictReader(io.StringIO(ok("predict", str(binary_onnx), str(data)).stdout)))
    out = ok("predict", str(binary_onnx), str(lines)).stdout.splitlines()  # stdout: the input's format
    assert len(out) == len(expected)
    for line, row in zip(out, expected):
        obj = json.loads(line)
        assert list(obj) == ["label", "probabilities"]
        assert str(obj["label"]) == row["label"]
        assert obj["probabilities"] == {"0": float(row["probability_0"]), "1": float(row["probability_1"])}
    # stdin with --format jsonl; -o's extension picks the output's format either way
    same = ok("predict", str(binary_onnx), "-", "--format", "jsonl", input=lines.read_text()).stdout
    assert same.splitlines() == out
    ok("predict", str(binary_onnx), str(lines), "-o", str(tmp_path / "out.csv"))
    assert (tmp_path / "out.csv").read_text() == ok("predict", str(binary_onnx), str(data)).stdout
    ok("predict", str(binary_onnx), str(data), "-o", str(tmp_path / "out.jsonl"))
    assert (tmp_path / "out.jsonl").read_text().splitlines() == out


def test_jsonl_missing_keys_nulls_and_extra_keys(tmp_path, text_onnx):
    p = Predictor(text_onnx)
    lines = [
        {"temperature_c": 60.5, "vibration_mm_s": 2.0, "pressure_bar": 4.0, "run_hours": 1000, "site": "north",
         "model": "P100", "extra": [1, 2]},
        {"temperature_c": None, "vibration_mm_s": 2.0, "pressure_bar": 4.0, "run_hours": 1000, "model": "P100"},
        {"temperature_c": "NA", "vibration_mm_s": "2.0", "pressure_bar": 4, "run_hours": 1000, "site": None,
         "model": "P100"},
    ]
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(json.dumps(o) for o in lines) + "\n\n")
    got = [json.loads(line) for line in ok("predict", str(text_onnx), str(data)).stdout.splitlines()]
    expected = p.predict_proba([{c: o.get(c) for c in p.columns} for o in lines])
    assert len(got) == 3
    for obj, row in zip(got, expected.tolist()):
        assert list(obj["probabilities"].values()) == [float(f"{v:.9g}") for v in row]
    assert got[1] == got[2]  # a missing key, null and "NA" are all a missing value


@pytest.mark.parametrize("line, fragments", [
    ('{"f0": 1, "f1": 2, "f2": 3, "f3": "warm", "f4": 5}', ["line 2, key 'f3'", 'got "warm"', "expected a number"]),
    ('{"f0": 1, "f1": 2, "f2": 3, "f4": 5}', ["line 2, key 'f3'", "missing", "without --impute"]),
    ('{"f0": 1, "f1": 2,', ["line 2", "not JSON", "expected one JSON object per line"]),
    ('[1, 2, 3]', ["line 2", "got a JSON array", "expected one JSON object per line"]),
    ('{"f0": 1, "f1": 2, "f2": 3, "f3": true, "f4": 5}', ["line 2, key 'f3'", "got true", "expected a number"]),
])
def test_bad_jsonl_is_one_error_naming_the_line_and_key(tmp_path, binary_onnx, line, fragments):
    good = '{"f0": 1, "f1": 2, "f2": 3, "f3": 4, "f4": 5}'
    data = tmp_path / "bad.jsonl"
    data.write_text(f"{good}\n{line}\n")
    assert_error(run("predict", str(binary_onnx), str(data)), str(data), *fragments)
    assert_error(run("predict", str(binary_onnx), "-", "--format", "jsonl", input=f"{good}\n{line}\n"), "stdin",
                 *fragments)


def test_bad_stdin_csv_names_the_line_and_column(binary_onnx):
    text = "f0,f1,f2,f3,f4\n1,2,3,4,5\n1,2,x,4,5\n"
    assert_error(run("predict", str(binary_onnx), "-", input=text), "stdin, line 3, column 'f2'", "got 'x'",
                 "expected a number")
    assert_error(run("predict", str(binary_onnx), "-", input=""), "stdin", "empty")
    assert_error(run("predict", str(binary_onnx), "-", input="f0,f1\n1,2\n"), "'f2'", "not found")


def test_rows_arriving_one_by_one_are_answered_one_by_one(tmp_path, binary_onnx):
    """A subprocess fed one line at a time through a pipe answers each before the next is sent."""
    lines = jsonl_of(rows_csv(tmp_path / "in.csv", n_rows=5), tmp_path / "in.jsonl").read_text().splitlines()
    for fmt, header, rows in (("jsonl", None, lines),
                              ("csv", "id,f0,f1,f2,f3,f4", [f"r{i},1,{i},3,4,5" for i in range(5)])):
        proc = subprocess.Popen([sys.executable, "-m", "edgelr", "predict", str(binary_onnx), "-", "--format", fmt,
                                 "--keep", "id"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            if header:
                proc.stdin.write((header + "\n").encode())
                proc.stdin.flush()
            for i, row in enumerate(rows):
                proc.stdin.write((row + "\n").encode())
                proc.stdin.flush()
                want = 2 if (header and i == 0) else 1  # the CSV header comes with the first answer
                got = [readline_within(proc, 60) for _ in range(want)][-1]
                key = json.loads(row)["id"] if fmt == "jsonl" else f"r{i}"
                assert (json.loads(got)["id"] if fmt == "jsonl" else got.split(",")[0]) == key
            proc.stdin.close()
            assert proc.wait(60) == 0, proc.stderr.read()
        finally:
            proc.kill()


def readline_within(proc: subprocess.Popen, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    fd = proc.stdout.fileno()
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no answer within {seconds} s (got {line!r}); the row waits for a full chunk"
        byte = os.read(fd, 1)
        assert byte, proc.stderr.read()
        line += byte
    return line.decode()


def test_evaluate_takes_stdin_and_jsonl(tmp_path, binary_onnx):
    data = rows_csv(tmp_path / "in.csv", n_rows=200)
    lines = jsonl_of(data, tmp_path / "in.jsonl")
    expected = json.loads(ok("evaluate", str(binary_onnx), str(data), "--label", "target", "--json").stdout)
    inputs = ((["-"], data.read_text()), ([str(lines)], None), (["-", "--format", "jsonl"], lines.read_text()))
    for args, text in inputs:
        got = json.loads(ok("evaluate", str(binary_onnx), *args, "--label", "target", "--json", input=text).stdout)
        assert got == pytest.approx(expected, rel=1e-12)


# -- --keep -------------------------------------------------------------------------------


def test_keep_copies_columns_first_as_written(tmp_path, binary_onnx):
    data = rows_csv(tmp_path / "in.csv")
    raw_lines = data.read_text()
    plain = ok("predict", str(binary_onnx), str(data)).stdout.splitlines()
    for source, text in ((str(data), None), ("-", raw_lines)):
        out = ok("predict", str(binary_onnx), source, "--keep", "note,id", input=text).stdout
        rows = list(csv.reader(io.StringIO(out)))
        assert rows[0] == ["note", "id", "label", "probability_0", "probability_1"]
        with open(data, newline="") as handle:
            original = list(csv.DictReader(handle))
        assert [r[:2] for r in rows[1:]] == [[o["note"], o["id"]] for o in original]
        assert [",".join(r[2:]) for r in rows[1:]] == plain[1:]
        assert '"a ""quoted"" word",id2,' in out and '"with, comma",id1,' in out and '"two\nlines",id3,' in out


def test_keep_keeps_quotes_the_input_had(tmp_path, binary_onnx):
    data = tmp_path / "quoted.csv"
    data.write_text('id,f0,f1,f2,f3,f4\n"007",1,2,3,4,5\n008,1,2,3,4,5\n"a""b",1,2,3,4,5\n')
    out = ok("predict", str(binary_onnx), str(data), "--keep", "id").stdout.splitlines()
    assert [line.split(",")[0] for line in out] == ["id", '"007"', "008", '"a""b"']
    as_json = ok("predict", str(binary_onnx), str(data), "--keep", "id", "-o", "-", "--format", "csv").stdout
    assert as_json.splitlines() == out
    ok("predict", str(binary_onnx), str(data), "--keep", "id", "-o", str(tmp_path / "o.jsonl"))
    assert [json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()] == \
        ["007", "008", 'a"b']


def test_keep_on_the_fast_path_matches_the_exact_reader(tmp_path, binary_onnx, monkeypatch):
    from edgelr import csvblocks

    monkeypatch.setattr(csvblocks, "BLOCK_BYTES", 2048)  # many blocks, then a quote: the exact reader takes over
    X, y = make_data(2, n_rows=3000, seed=5)
    rows = [[f"id{i}", *map(repr, row), label] for i, (row, label) in enumerate(zip(X.tolist(), y))]
    rows[2500][0] = "id,2500"
    data = write_csv(tmp_path / "big.csv", ["id", "f0", "f1", "f2", "f3", "f4", "target"], rows)
    out = ok("predict", str(binary_onnx), str(data), "--keep", "id").stdout
    assert out == ok("predict", str(binary_onnx), "-", "--keep", "id", input=data.read_text()).stdout
    assert out.count("\n") == 3001 and '"id,2500",' in out


def test_keep_unknown_names_are_an_error(tmp_path, binary_onnx):
    data = rows_csv(tmp_path / "in.csv")
    assert_error(run("predict", str(binary_onnx), str(data), "--keep", "id,serial,batch"), "--keep column",
                 "'serial', 'batch'", "not found")
    lines = jsonl_of(data, tmp_path / "in.jsonl")
    assert_error(run("predict", str(binary_onnx), str(lines), "--keep", "serial"), "line 1", "--keep 'serial'")


# -- --explain ----------------------------------------------------------------------------


# "Adds up" (spec section 6): within 1e-4 of the logit the probabilities give, on the rows whose
# probabilities are all >= 0.01. Below that a float32 probability, exact to ~1e-7 absolute,
# no longer carries its logit to 1e-4 (edgelr.parity.check_logits).
MIN_P = 0.01


def logit_of(proba: np.ndarray) -> np.ndarray:
    p = proba.astype(np.float64)
    return np.log(p[:, 1] / p[:, 0])


def test_binary_contributions_are_the_hand_computation(tmp_path, binary_checkpoint, binary_onnx):
    import torch

    state = torch.load(binary_checkpoint, weights_only=True)
    w, b = state["weight"].double().numpy()[0], float(state["bias"])
    mean, scale = state["mean"].double().numpy(), state["scale"].double().numpy()
    data = rows_csv(tmp_path / "in.csv", n_rows=300)
    out = list(csv.DictReader(io.StringIO(ok("predict", str(binary_onnx), str(data), "--explain").stdout)))
    with open(data, newline="") as handle:
        X = np.array([[float(r[f"f{j}"]) for j in range(5)] for r in csv.DictReader(handle)])
    x = X.astype(np.float32).astype(np.float64)  # the model's input is float32 (spec section 5)
    by_hand = w * (x - mean) / scale
    got = np.array([[float(r[f"contribution_f{j}"]) for j in range(5)] for r in out])
    np.testing.assert_allclose(got, by_hand, rtol=1e-8, atol=1e-8)
    proba = np.array([[float(r["probability_0"]), float(r["probability_1"])] for r in out])
    usable = (proba >= MIN_P).all(axis=1)
    assert usable.mean() > 0.5
    np.testing.assert_allclose((got.sum(axis=1) + b)[usable], logit_of(proba)[usable], atol=1e-4)
    e = Predictor(binary_onnx).explain(X)
    assert e.contributions.shape == (300, 5) and e.intercept.shape == (300,)
    np.testing.assert_allclose(e.contributions, by_hand, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(e.logit, by_hand.sum(axis=1) + b, atol=1e-9)


def test_multiclass_contributions_add_up_to_the_predicted_class_logit(multiclass_checkpoint, multiclass_onnx):
    """The predicted class's z: intercept + contributions; log p_pred - log p_k = z_pred - z_k for every k."""
    import torch

    state = torch.load(multiclass_checkpoint, weights_only=True)
    W, b = state["weight"].double().numpy(), state["bias"].double().numpy()
    mean, scale = state["mean"].double().numpy(), state["scale"].double().numpy()
    X, _ = make_data(3, n_rows=300, seed=9)
    predictor = Predictor(multiclass_onnx)
    labels, proba = predictor.predict_with_proba(X)
    e = predictor.explain(X)
    z = ((X.astype(np.float32) - mean) / scale) @ W.T + b  # (n, 3), by hand
    pred = np.array([predictor.classes.index(c) for c in labels])
    assert list(e.explained) == list(labels)
    np.testing.assert_allclose(e.intercept + e.contributions.sum(axis=1), z[np.arange(300), pred], atol=1e-9)
    log_p = np.log(proba.astype(np.float64))
    usable = (proba >= MIN_P).all(axis=1)
    assert usable.mean() > 0.5
    np.testing.assert_allclose((log_p[np.arange(300), pred][:, None] - log_p)[usable],
                               (e.logit[:, None] - z)[usable], atol=1e-4)


def test_text_model_contributions_add_up(tmp_path, text_onnx):
    """Numeric columns (imputed, with indicators) and text columns (unseen: 0) add up to the logit."""
    data = tmp_path / "pumps.csv"
    text = PUMPS_CSV.read_text().splitlines()
    header = text[0].split(",")
    site = header.index("site")
    unseen = text[1].split(",")
    unseen[site] = "atlantis"
    data.write_text("\n".join([*text, ",".join(unseen)]) + "\n")
    predictor = Predictor(text_onnx)
    coefficients = json.loads(predictor.metadata["edgelr.coefficients"])
    out = list(csv.DictReader(io.StringIO(ok("predict", str(text_onnx), str(data), "--explain").stdout)))
    got = np.array([[float(r[f"contribution_{c}"]) for c in predictor.columns] for r in out])
    proba = np.array([[float(r[f"probability_{c}"]) for c in predictor.classes] for r in out])
    usable = (proba >= MIN_P).all(axis=1)
    assert usable.mean() > 0.8
    np.testing.assert_allclose((got.sum(axis=1) + coefficients["intercept"][0])[usable], logit_of(proba)[usable],
                               atol=1e-4)
    assert got[-1, predictor.columns.index("site")] == 0.0  # a category never seen in training


def test_explain_jsonl_and_old_files(tmp_path, binary_onnx):
    data = rows_csv(tmp_path / "in.csv", n_rows=5)
    lines = jsonl_of(data, tmp_path / "in.jsonl")
    obj = json.loads(ok("predict", str(binary_onnx), str(lines), "--explain", "--keep", "id").stdout.splitlines()[0])
    assert list(obj) == ["id", "label", "probabilities", "contributions"]
    assert list(obj["contributions"]) == ["f0", "f1", "f2", "f3", "f4"]
    old = REFERENCE / "students-v0.1.0.onnx"  # exported before explanations: no coefficients
    students = tmp_path / "students.csv"
    students.write_text("lecture_hours,lab_hours\n1,2\n")
    assert_error(run("predict", str(old), str(students), "--explain"), str(old), "no coefficients",
                 "exported again")


# -- drift ----------------------------------------------------------------------------------


def test_drift_warnings_name_counts_and_the_furthest_value(tmp_path, text_onnx):
    predictor = Predictor(text_onnx)
    low, high = predictor.ranges["vibration_mm_s"]
    lines = PUMPS_CSV.read_text().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:6]]
    rows[1][header.index("vibration_mm_s")] = "100"
    rows[2][header.index("vibration_mm_s")] = str(high + 1)
    rows[3][header.index("temperature_c")] = "-500"
    rows[4][header.index("site")] = "atlantis"
    data = tmp_path / "drift.csv"
    data.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    result = ok("predict", str(text_onnx), str(data), "-o", str(tmp_path / "out.csv"))
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "3 values outside their column's training range (3 of 5 rows" in warnings[0]
    assert "furthest out: vibration_mm_s = 100" in warnings[0]
    assert "1 category never seen in training (site 1); most often: site = 'atlantis' (1 row)" in warnings[1]
    drift = predictor.drift([{c: r[header.index(c)] for c in predictor.columns} for r in rows])  # the API: no print
    assert drift.out_of_range == {"vibration_mm_s": 2, "temperature_c": 1} and drift.unseen == {"site": 1}
    assert drift.furthest[:2] == ("vibration_mm_s", 100.0)
    assert drift.furthest[2] == pytest.approx((100 - high) / (high - low))


def test_strict_writes_nothing(tmp_path, binary_onnx):
    ranges = Predictor(binary_onnx).ranges
    u = np.random.default_rng(0).random((20, 5))
    data = write_csv(tmp_path / "in.csv", ["id", "f0", "f1", "f2", "f3", "f4"],
                     [[f"id{i}", *(repr(lo + (hi - lo) * v) for (lo, hi), v in zip(ranges.values(), row))]
                      for i, row in enumerate(u.tolist())])
    good = ok("predict", str(binary_onnx), str(data), "--strict", "-o", str(tmp_path / "good.csv"))
    assert "warning" not in good.stderr
    text = data.read_text().splitlines()
    fields = text[5].split(",")
    fields[4] = "1e6"  # f3, far above its range
    text[5] = ",".join(fields)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n")
    out = tmp_path / "out.csv"
    out.write_text("earlier")
    result = run("predict", str(binary_onnx), str(bad), "--strict", "-o", str(out))
    assert_error(result, "--strict", "1 value outside", "f3 = 1000000", "data row", "expected values inside")
    assert out.read_text() == "earlier" and sorted(os.listdir(tmp_path)) == ["bad.csv", "good.csv", "in.csv",
                                                                               "out.csv"]
    on_stdout = run("predict", str(binary_onnx), str(bad), "--strict")
    assert on_stdout.exit_code == 1 and on_stdout.stdout == ""  # the first batch holds the row: nothing written
    warned = ok("predict", str(binary_onnx), str(bad))
    assert "warning: 1 value outside" in warned.stderr and warned.stdout.count("\n") == 21


def test_old_files_without_ranges_warn_of_nothing(tmp_path):
    old = REFERENCE / "students-v0.1.0.onnx"
    data = tmp_path / "students.csv"
    data.write_text("lecture_hours,lab_hours\n1000,2\n")
    assert Predictor(old).drift([[1000.0, 2.0]]).out_of_range == {}
    result = ok("predict", str(old), str(data), "--strict")
    assert "warning" not in result.stderr


# -- progress -------------------------------------------------------------------------------


def test_progress_only_on_a_terminal(tmp_path, binary_onnx, monkeypatch):
    from edgelr import cli

    data = rows_csv(tmp_path / "in.csv", n_rows=500)
    monkeypatch.setattr(cli._ScoringProgress, "DELAY", 0.0)
    monkeypatch.setattr(cli._ScoringProgress, "EVERY", 0.0)
    piped = subprocess.run([sys.executable, "-m", "edgelr", "predict", str(binary_onnx), str(data), "-o",
                            str(tmp_path / "o.csv")], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert piped.returncode == 0 and "scoring" not in piped.stderr and "\r" not in piped.stderr
    assert "scoring" not in ok("predict", str(binary_onnx), str(data), "-o", str(tmp_path / "p.csv")).stderr
    shown = []
    monkeypatch.setattr(cli._ScoringProgress, "for_input",
                        classmethod(lambda cls, data, to_stdout: cls(os.path.getsize(data))))
    monkeypatch.setattr(cli._ScoringProgress, "__call__",
                        lambda self, rows: shown.append(rows))
    ok("predict", str(binary_onnx), str(data), "-o", str(tmp_path / "q.csv"))
    assert shown and shown[-1] == 500


def test_sigterm_while_waiting_on_a_pipe(tmp_path, binary_onnx):
    """A service stopped between rows: exit 143, no output, no temporary file, no shutdown abort."""
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edgelr", "predict", str(binary_onnx), "-", "--format", "jsonl",
                             "-o", str(out)], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        proc.stdin.write(b'{"f0": 1, "f1": 2, "f2": 3, "f3": 4, "f4": 5}\n')
        proc.stdin.flush()
        time.sleep(3)  # the row is scored; the reading thread waits for the next
        proc.terminate()
        assert proc.wait(30) == 143
        assert "Interrupted" in proc.stderr.read().decode()
    finally:
        proc.kill()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("digits", "message"), [(400, "(not finite); expected a finite number"),
                                                 (5000, "a number of more than 4,300 digits")])
def test_jsonl_integers_past_a_float_are_named_not_a_traceback(tmp_path, binary_onnx, digits, message):
    names = Predictor(binary_onnx).feature_names
    cells = ", ".join(f'"{n}": ' + ("1" + "0" * digits if i == 0 else "2") for i, n in enumerate(names))
    data = tmp_path / "huge.jsonl"
    data.write_text("{" + cells + "}\n")
    result = CliRunner().invoke(main, ["predict", str(binary_onnx), str(data)])
    assert result.exit_code == 1
    assert result.output.startswith("Error:") and message in result.output
