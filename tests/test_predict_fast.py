"""Fast scoring of CSV files (issue 11): the block parse and ``edgelr predict`` on big files.

Every ``predict`` output here is compared byte for byte with an independent reference: the csv
module reads the file, the Predictor scores the rows given by column name (its own number
parse), and csv.writer writes the label with each probability as ``%.9g``.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import edgelr.csvblocks as csvblocks
import edgelr.scoring as scoring
from edgelr.cli import main
from edgelr.csvblocks import NotFast, data_lines, parse_block
from edgelr.data import iter_raw_blocks
from edgelr.errors import DataError
from edgelr.runtime import Predictor, PredictorError
from tests import test_runtime
from tests.conftest import make_data, write_csv

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "reference"
imputing_onnx = test_runtime.imputing_onnx  # a numeric model trained with --impute mean (a fixture)


def float32_of(cell: str) -> np.float32:
    """What the exact reader gives for a number cell: float() (correctly rounded float64), then float32."""
    with np.errstate(over="ignore"):
        return np.float32(float(cell))


# -- the block parse ----------------------------------------------------------------------

EDGE_CELLS = ["0", "-0", "+0.0", "+1", ".5", "5.", "-.25", "00012.5000", "1E5", "1e-05", "1E+07", "-1e+00",
              "16777217", "16777219", "33554435", "0.1", "0.30000001192092896", "3.4028235e38", "1.4e-45",
              "7e-46", "1.401298464324817e-45", "1e-99", "123456789012345678901234", "0.0000000000000000000001",
              "9.9999999999999999999e-5", "-2.5e-10", "1.17549435e-38", "1.1754942e-38"]


def random_cell(rng: random.Random) -> str:
    x = rng.gauss(0, 1) * 10.0 ** rng.randint(-12, 12)
    kind = rng.randrange(9)
    if kind == 0:
        return f"{x:.7g}"
    if kind == 1:
        return repr(x)
    if kind == 2:
        return f"{x:.3f}"
    if kind == 3:
        return str(int(x * 1000) % 10**9)
    if kind == 4:
        return f"{x:.5e}"
    if kind == 5:
        return repr(float(np.float32(x)))
    if kind == 6:
        return f"{float(np.float32(x)):.9g}"
    if kind == 7:
        return f"{x:.17g}"
    return rng.choice(EDGE_CELLS)


@pytest.mark.parametrize("seed", range(6))
def test_parse_block_gives_the_float32_of_the_correctly_rounded_float64(seed):
    rng = random.Random(seed)
    for _ in range(60):
        width = rng.randint(1, 7)
        rows = [[random_cell(rng) for _ in range(width)] for _ in range(rng.randint(1, 40))]
        cols = rng.sample(range(width), rng.randint(1, width))
        text = "".join(",".join(row) + ("\r\n" if rng.random() < 0.3 else "\n") for row in rows)
        got = parse_block(text.encode(), width, cols)
        expected = np.array([[float32_of(row[c]) for c in cols] for row in rows], dtype=np.float32)
        assert got.dtype == np.float32 and got.shape == expected.shape
        # Bit for bit: -0.0 and 0.0 differ, and so does any last-bit rounding.
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32), err_msg=repr(rows))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.from_regex(r"[+-]?([0-9]{1,12}(\.[0-9]{0,11})?|\.[0-9]{1,11})([eE][+-]?[0-9]{1,2})?",
                              fullmatch=True), min_size=1, max_size=12))
def test_any_cell_of_the_fast_syntax_is_exact_or_refused(cells):
    text = "\n".join(f"x,{c}" for c in cells) + "\n"
    expected = np.array([float32_of(c) for c in cells], dtype=np.float32)
    too_long = any(len(c.lstrip("+-")) > csvblocks.MAX_DIGITS for c in cells)
    if too_long or np.isinf(expected).any():  # infinite in float32, or long: the exact reader reads them
        with pytest.raises(NotFast):
            parse_block(text.encode(), 2, [1])
        return
    got = parse_block(text.encode(), 2, [1])[:, 0]
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("block", [
    b'a,1\n"b",2\n',  # a quote: fields might hold commas or newlines
    b"x, 2\n", b"x,2 \n", b"x,\t2\n",  # spaces: numbers to the exact reader, not to this parse
    b"x,\n", b"x,NA\n", b"x,nan\n", b"x,NaN\n", b"x,null\n",  # missing cells
    b"x,inf\n", b"x,-Infinity\n", b"x,1e400\n", b"x,1e100\n",  # not finite, or a 3-digit exponent
    b"x,1_0\n", b"x,0x10\n", "x,\u0661\n".encode(), b"x,1.2.3\n", b"x,1e\n", b"x,e5\n", b"x,.\n", b"x,-\n",
    b"x,+-1\n", b"x,--1\n", b"x,1-\n", b"x,1e5.5\n", b"x,1e+\n", b"x,1ee5\n", b"x,abc\n",  # words
    b"x," + b"1" * 25 + b"\n",  # longer than the fast parse takes
    b"x,1e39\n", b"x,-3.5e38\n",  # finite, but not in float32
    b"x,1,2\n", b"x\n", b"x,1\n\nx,2\n",  # ragged lines, a blank line
    b"x,1\ry,2\n", b"x,1\x00\n", b"x\x00,1\n",  # a lone carriage return, NUL bytes
    b"x,1\n\xff,2\n",  # not UTF-8
])
def test_parse_block_refuses_what_it_cannot_prove(block):
    with pytest.raises(NotFast):
        parse_block(block, 2, [1])


def test_parse_block_ignores_the_columns_it_does_not_score():
    block = "Ünïcode name,1.5,yes\nplain text,-2,no\n".encode()
    np.testing.assert_array_equal(parse_block(block, 3, [1]), np.array([[1.5], [-2.0]], dtype=np.float32))
    assert parse_block(block, 3, []).shape == (2, 0)


@pytest.mark.parametrize("text,lines", [
    (b"a,b\n1,2\n3,4\n", b"1,2\n3,4\n"),
    (b"a,b\r\n1,2\r\n3,4", b"1,2\r\n3,4\n"),  # no newline at the end
    (b"a,b\n1,2\n\n\r\n\n", b"1,2\n"),  # blank lines at the end are dropped, as the exact reader skips them
    (b"\xef\xbb\xbfa,b\n1,2\n", b"1,2\n"),  # a byte order mark
    (b"a,b\n", b""), (b"a,b", b""), (b"a,b\n\n\n", b""),
    (b"a,b\n1,2\n\n3,4\n", b"1,2\n\n3,4\n"),  # a blank line inside stays: parse_block refuses it
])
def test_data_lines_whatever_the_block_size(text, lines):
    for size in (1, 2, 3, 7, 64, 1 << 16):
        blocks = [block.tobytes() for block in data_lines(io.BytesIO(text), size)]
        assert b"".join(blocks) == lines
        assert all(b.endswith(b"\n") for b in blocks)


@pytest.mark.parametrize("header", [b'"a",b\n1,2\n', b"a\rb\n1,2\n"])
def test_data_lines_leaves_headers_the_csv_module_must_split(header):
    with pytest.raises(NotFast):
        list(data_lines(io.BytesIO(header), 64))


# -- edgelr predict against the reference ---------------------------------------------------


def reference_output(model: Path, data: Path) -> bytes:
    """The csv module reads the rows, the Predictor scores them by column name, csv.writer writes them."""
    predictor = Predictor(model)
    with open(data, newline="", encoding="utf-8-sig") as handle:
        rows = [{name: row[name] for name in predictor.columns} for row in csv.DictReader(handle)]
    labels, proba = predictor.predict_with_proba(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", *(f"probability_{c}" for c in predictor.classes)])
    writer.writerows([label, *(f"{p:.9g}" for p in row)] for label, row in zip(labels, proba.tolist()))
    return out.getvalue().encode()


def predict(model: Path, data: Path, out: Path):
    return CliRunner().invoke(main, ["predict", str(model), str(data), "-o", str(out)])


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 2 KB: a few thousand rows span a hundred blocks and both parse threads."""
    monkeypatch.setattr(csvblocks, "BLOCK_BYTES", 2048)


@pytest.fixture
def exact_reader_calls(monkeypatch):
    """How many times predict fell back to the exact reader."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0])
        return iter_raw_blocks(*args, **kwargs)

    monkeypatch.setattr(scoring, "iter_raw_blocks", counting)
    return calls


def numeric_rows(n_rows: int, seed: int, *, scale: float = 1.0) -> list[list[str]]:
    """id, the 5 features (in shuffled order, in the formats writers use) and a text label column."""
    X, y = make_data(2, n_rows=n_rows, seed=seed)
    formats = [lambda v: f"{v:.7g}", repr, lambda v: f"{v:.3f}", lambda v: f"{v:.6e}",
               lambda v: repr(float(np.float32(v)))]
    return [[f"id{i}", *(formats[(i + j) % 5](v * scale) for j, v in enumerate(row)), "yes" if label else "no"]
            for i, (row, label) in enumerate(zip(X.tolist(), y))]


HEADER = ["id", "f0", "f1", "f2", "f3", "f4", "target"]


def test_predict_numeric_file_over_many_blocks_is_byte_identical(tmp_path, binary_onnx, small_blocks,
                                                                 exact_reader_calls):
    data = write_csv(tmp_path / "in.csv", HEADER, numeric_rows(4000, seed=1))
    assert predict(binary_onnx, data, tmp_path / "out.csv").exit_code == 0
    assert (tmp_path / "out.csv").read_bytes() == reference_output(binary_onnx, data)
    assert exact_reader_calls == []  # the fast parse read it all


def test_predict_crlf_shuffled_columns_and_string_classes(tmp_path, multiclass_onnx, small_blocks,
                                                          exact_reader_calls):
    rows = numeric_rows(3000, seed=2)
    order = [6, 3, 0, 5, 1, 4, 2]  # features in another order than the model's, among other columns
    data = tmp_path / "in.csv"
    with open(data, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow([HEADER[i] for i in order])
        writer.writerows([[row[i] for i in order] for row in rows])
    assert predict(multiclass_onnx, data, tmp_path / "out.csv").exit_code == 0
    assert (tmp_path / "out.csv").read_bytes() == reference_output(multiclass_onnx, data)
    assert exact_reader_calls == []


def test_predict_takes_over_with_the_exact_reader_mid_file(tmp_path, binary_onnx, small_blocks, exact_reader_calls):
    rows = numeric_rows(3000, seed=3)
    rows[2100][0] = "id, with a comma"  # csv.writer quotes it: the fast parse stops at that block
    rows[2500][2] = " 1.5 "  # spaces around a number: a number to the exact reader
    rows[2600][6] = "Ünïcode"
    data = write_csv(tmp_path / "in.csv", HEADER, rows)
    assert predict(binary_onnx, data, tmp_path / "out.csv").exit_code == 0
    assert (tmp_path / "out.csv").read_bytes() == reference_output(binary_onnx, data)
    assert len(exact_reader_calls) == 1


def test_predict_fallback_past_the_exact_readers_first_chunk(tmp_path, binary_onnx, exact_reader_calls):
    """70,000 rows, a quoted cell near the end: the exact reader's first 65,536-row chunk is passed
    over, the next scored whole and written from the first row not written yet."""
    rows = numeric_rows(70_000, seed=4)
    rows[69_000][0] = 'say "hi"'
    data = write_csv(tmp_path / "in.csv", HEADER, rows)
    assert predict(binary_onnx, data, tmp_path / "out.csv").exit_code == 0
    assert (tmp_path / "out.csv").read_bytes() == reference_output(binary_onnx, data)
    assert len(exact_reader_calls) == 1


@pytest.mark.parametrize("ending", ["\n\n\n", "", "\r\n\r\n"])
def test_predict_file_endings_and_byte_order_mark(tmp_path, binary_onnx, small_blocks, exact_reader_calls, ending):
    rows = numeric_rows(500, seed=5)
    text = "\ufeff" + ",".join(HEADER) + "\n" + "\n".join(",".join(r) for r in rows) + ending
    data = tmp_path / "in.csv"
    data.write_text(text, encoding="utf-8")
    assert predict(binary_onnx, data, tmp_path / "out.csv").exit_code == 0
    assert (tmp_path / "out.csv").read_bytes() == reference_output(binary_onnx, data)
    assert exact_reader_calls == []


def test_predict_saturated_rows(tmp_path, binary_onnx, small_blocks):
    """Rows far out: probabilities exactly 0 and 1 in float32, scored and written as they are."""
    data = write_csv(tmp_path / "in.csv", HEADER, numeric_rows(2000, seed=6, scale=300.0))
    assert predict(binary_onnx, data, tmp_path / "out.csv").exit_code == 0
    out = (tmp_path / "out.csv").read_bytes()
    assert out == reference_output(binary_onnx, data)
    assert b",0,1\n" in out or b",1,0\n" in out


def test_predict_missing_cells_and_text_models_go_through_the_exact_reader(tmp_path, imputing_onnx, small_blocks,
                                                                          exact_reader_calls):
    rows = numeric_rows(1500, seed=8)
    for i in range(0, 1500, 7):
        rows[i][1 + i % 5] = ["", "NA", "nan", "null"][i % 4]
    data = write_csv(tmp_path / "in.csv", HEADER, rows)
    assert predict(imputing_onnx, data, tmp_path / "out.csv").exit_code == 0
    assert (tmp_path / "out.csv").read_bytes() == reference_output(imputing_onnx, data)
    assert len(exact_reader_calls) == 1

    pumps = REFERENCE / "pumps-v0.2.0.onnx"  # text columns and imputation, exported by v0.2.0
    rows = [["north", "P100", "71.5", "4.2", "4.1", "3100", "yes"], ["harbour", "", "58.0", "", "4.3", "400", "no"],
            ["south", "", "", "", "", "", "no"], ["a, quoted site", "P200", "60", "3", "4", "10", "no"]] * 50
    header = ["site", "model", "temperature_c", "vibration_mm_s", "pressure_bar", "run_hours", "failed"]
    data = write_csv(tmp_path / "pumps.csv", header, rows)
    assert predict(pumps, data, tmp_path / "pumps_out.csv").exit_code == 0
    assert (tmp_path / "pumps_out.csv").read_bytes() == reference_output(pumps, data)


def exact_error(model: Path, data: Path) -> str:
    """The error predict gave before the fast parse: the exact reader's blocks scored one by one."""
    predictor = Predictor(model)
    try:
        for numbers, text in iter_raw_blocks(data, predictor.feature_names, predictor.categorical_names,
                                             allow_missing=predictor.impute is not None):
            predictor.score(numbers, text)
    except (DataError, PredictorError) as exc:
        return str(exc)
    raise AssertionError("no error")


@pytest.mark.parametrize("row,col,cell", [
    (1700, 2, "x"),  # a word in a number column
    (1800, 3, ""),  # a missing cell, the model does not impute
    (1900, 1, "inf"),  # not finite
    (10, 4, "1e39"),  # finite, but infinity in float32: the Predictor's error
    (2999, 5, "NaN"),
])
def test_predict_errors_name_the_line_and_column_as_before(tmp_path, binary_onnx, small_blocks, row, col, cell):
    rows = numeric_rows(3000, seed=9)
    rows[row][col] = cell
    data = write_csv(tmp_path / "in.csv", HEADER, rows)
    (tmp_path / "out.csv").write_text("earlier\n")
    result = predict(binary_onnx, data, tmp_path / "out.csv")
    assert result.exit_code == 1
    expected = exact_error(binary_onnx, data)
    assert result.stderr.strip() == f"Error: {expected}"
    if cell != "1e39":
        assert f"line {row + 2}, column '{HEADER[col]}'" in expected
    assert (tmp_path / "out.csv").read_text() == "earlier\n"  # the earlier file untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]  # no temporary file left


def test_predict_ragged_line_error_as_before(tmp_path, binary_onnx, small_blocks):
    rows = numeric_rows(2000, seed=10)
    rows[1500].append("extra")
    data = write_csv(tmp_path / "in.csv", HEADER, rows)
    result = predict(binary_onnx, data, tmp_path / "out.csv")
    assert result.exit_code == 1 and result.stderr.strip() == f"Error: {exact_error(binary_onnx, data)}"
    assert "line 1502: 8 fields, expected 7" in result.stderr


def test_predict_to_stdout_matches_the_file(tmp_path, binary_onnx, small_blocks):
    data = write_csv(tmp_path / "in.csv", HEADER, numeric_rows(800, seed=11))
    result = CliRunner().invoke(main, ["predict", str(binary_onnx), str(data)])
    assert result.exit_code == 0
    assert result.stdout.encode() == reference_output(binary_onnx, data)
