"""Rows for ``edgelr predict`` / ``evaluate`` from stdin and JSON Lines, and the JSON Lines output.

A source yields ``Block``s: the model's inputs for a batch of rows, the cells of the
``--keep`` columns, and (for ``evaluate``) the label cells. A regular file is read in
batches of up to 65,536 rows. A pipe is read by a thread that parses each record as it
arrives; a batch is whatever has arrived when the scorer is ready for one (at most
4,096 rows, at least one), so a row that comes on its own is scored and answered at
once, and a fast pipe still scores in big batches. The queue between them is bounded:
memory stays flat whatever the input's length.

CSV here is the csv module's, with the cell rules of edgelr.data (numbers, missing
tokens, the same messages); a kept CSV cell is copied as it was written (quotes and
all) into a CSV output. Torch-free: the standard library, numpy and edgelr.data.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from edgelr.data import _NUMBER, MISSING_TOKENS, check_header, csv_numbers, missing_problem
from edgelr.errors import DataError
from edgelr.interrupts import ReadAhead, open_heard

# Cells per batch of parsed records. A record is Python strings, ~60 bytes a cell: batches of 65,536 rows
# of 31 cells held ~390 MiB; by cells, a batch is ~4,000 such rows (~85 MiB in all, as fast) whatever the
# width. A pipe's rows also wait in a queue of one batch's size, parsed.
BATCH_CELLS = 131_072
FORMATS = ("csv", "jsonl")


@dataclass
class Block:
    """A batch of rows as the model takes them.

    numbers : (n, n_features) float64, NaN where missing
    text : (n, n_text) object strings, "" where missing; None for a model without text columns
    kept : per row, the ``--keep`` cells: a CSV output's text of them (each cell as written, then a
        comma) or, for a JSON Lines output, a list of their values; None without --keep
    labels : the label cells (``evaluate``), else None
    skip : leading rows already written (the fast CSV path's hand-over), not to write again
    drift : the block's edgelr.runtime.Drift, counted on the fast path's parse thread, else None
    """

    numbers: np.ndarray
    text: np.ndarray | None
    kept: list | None = None
    labels: list | None = None
    skip: int = 0
    drift: object = None  # the rows' Drift (first_row from the block's start) when counted already


def format_of(path: str, given: str | None = None) -> str:
    """'jsonl' for a .jsonl / .ndjson name, else 'csv'; ``given`` (--format) wins."""
    if given is not None:
        return given
    return "jsonl" if os.fspath(path).lower().endswith((".jsonl", ".ndjson")) else "csv"


def is_live(handle) -> bool:
    """Whether rows may arrive slowly (a pipe, a terminal, a socket): anything but a regular file."""
    try:
        return not stat.S_ISREG(os.fstat(handle.fileno()).st_mode)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):  # an in-memory stream (tests)
        return False


def open_source(data: str) -> tuple[io.BufferedReader, str, bool]:
    """(binary handle, name for messages, live) for a path or '-' (stdin)."""
    if data == "-":
        handle = getattr(sys.stdin, "buffer", None) or sys.stdin
        live = is_live(handle)
        if live:
            # A reader of its own on a copy of the descriptor: the reading thread may still be blocked in
            # it when the process ends (an interruption), and Python's shutdown flushes sys.stdin's reader,
            # which would wait on that thread's lock and abort ("could not acquire lock").
            handle = open(os.dup(handle.fileno()), "rb")
        return handle, "stdin", live
    try:
        handle = open_heard(data)  # a named pipe's open waits for its writer: on a thread, so a signal is heard
    except FileNotFoundError as exc:
        raise DataError(f"{data}: no such file") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{data}: is a directory; expected a CSV or JSON Lines file") from exc
    except OSError as exc:
        raise DataError(f"{data}: cannot be read ({exc.strerror or exc})") from exc
    return handle, data, is_live(handle)  # a named pipe is read as stdin's is: on a thread, as rows come


@contextlib.contextmanager
def opened(data: str) -> Iterator[tuple[io.BufferedReader, str, bool]]:
    """``open_source(data)`` for a ``with``: a file is closed at its end, and a pipe read to its end (a named
    one, or the copy of stdin's descriptor that ``open_source`` made). Stdin itself is left open.

    A pipe left before its end (an interruption, an error) is left open too: the thread
    reading it may still be blocked in a read, and closing the handle would wait for that
    read to end, for ever if no more rows come. The command's process ends soon after; a
    library caller keeps that handle and its thread until the pipe's writer is done.
    """
    handle, name, live = open_source(data)
    ours = data != "-" or live  # a file, or open_source's copy of stdin's pipe: not sys.stdin itself
    try:
        yield handle, name, live
    except BaseException:
        if ours and not live:
            handle.close()
        raise
    if ours:
        handle.close()


def batches(records: Iterator, live: bool, width: int) -> Iterator[list]:
    """Lists of up to ``batch_rows(width)`` records of ``width`` cells; when ``live``, of those that have
    arrived (at least one).

    The records are produced on a thread when live. An exception there is raised here after the
    records before it: every row before a bad line is answered, then the error ends the stream.
    """
    rows = batch_rows(width)
    if not live:
        batch = []
        for record in records:
            batch.append(record)
            if len(batch) == rows:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    ahead = ReadAhead(lambda: records, rows)  # bounded: a fast producer waits for the scorer
    try:
        while (item := ahead.get()) is not ReadAhead.END:  # waits for the next row
            batch = [item]
            for item in ahead.arrived():  # and takes the rows that came with it
                batch.append(item)
                if len(batch) == rows:
                    break
            yield batch
    finally:  # left early (an error, an interruption, a caller done): the thread goes too
        ahead.close()


def batch_rows(width: int) -> int:
    """Records per batch for records of ``width`` cells."""
    return max(64, BATCH_CELLS // max(width, 1))


# -- CSV ----------------------------------------------------------------------------------


class _Recorder:
    """The lines a csv.reader takes, kept until the row they make is handed out (the raw record)."""

    def __init__(self, lines):
        self.lines, self.raw = lines, []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.raw.append(line)
        return line


def csv_source(handle, name: str, live: bool, *, numeric: Sequence[str], text: Sequence[str], allow_missing: bool,
               keep: Sequence[str] = (), label: str | None = None, out_format: str = "csv",
               skip_rows: int = 0, line_offset: int = 0, rows_before: int = 0) -> Iterator[Block]:
    """Blocks of a headed CSV from a binary handle (the exact reader's cell rules and messages).

    ``skip_rows``: data rows passed over (read again from the start); ``line_offset``, ``rows_before``: the
    handle is the header line, then the stream from after that many data lines, holding that many data rows,
    after the header (``edgelr.pipes``).
    """
    lines = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    recorder = _Recorder(lines)
    reader = csv.reader(recorder)
    try:
        header = check_header(next(reader, None), name, source="input")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}, line 1: not UTF-8 text ({exc.reason}); expected a UTF-8 CSV file") from exc
    except csv.Error as exc:
        raise DataError(f"{name}, line 1: malformed CSV header ({exc})") from exc
    wanted = [*numeric, *text, *keep, *([label] if label else [])]
    missing = [n for n in dict.fromkeys(wanted) if n not in header]
    if missing:
        kinds = [("--keep column" if n in keep else "label column" if n == label else "feature column")
                 for n in missing]
        raise DataError(f"{name}: {kinds[0]} {', '.join(repr(m) for m in missing)} not found; "
                        f"the header has: {', '.join(header)}")
    recorder.raw.clear()
    width = len(header)
    keep_cols = [header.index(n) for n in keep]
    raw_keep = bool(keep) and out_format == "csv"

    def records() -> Iterator[tuple[int, list[str], str | None]]:
        seen = 0
        try:
            for row in reader:
                raw = "".join(recorder.raw) if raw_keep else None
                recorder.raw.clear()
                if not row:  # a blank line carries no data
                    continue
                line = reader.line_num + line_offset
                if len(row) != width:
                    raise DataError(f"{name}, line {line}: {len(row)} fields, expected {width} as in the header")
                seen += 1
                if seen > skip_rows:
                    yield line, row, raw
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}, line {reader.line_num + line_offset + 1}: not UTF-8 text ({exc.reason}); "
                            "expected a UTF-8 CSV file") from exc
        except csv.Error as exc:
            raise DataError(f"{name}, line {reader.line_num + line_offset}: malformed CSV ({exc})") from exc

    num_cols = [header.index(n) for n in numeric]
    text_cols = [header.index(n) for n in text]
    label_col = header.index(label) if label else None
    any_rows = False
    for batch in batches(records(), live, width):
        any_rows = True
        line_numbers = [b[0] for b in batch]
        rows = [b[1] for b in batch]
        numbers = csv_numbers(rows, line_numbers, num_cols, header, name, allow_missing)
        cells = None
        if text_cols:
            cells = np.empty((len(rows), len(text_cols)), dtype=object)
            for j, c in enumerate(text_cols):
                cells[:, j] = ["" if row[c].strip() in MISSING_TOKENS else row[c] for row in rows]
        kept = None
        if keep:
            if raw_keep:
                kept = [_kept_raw(raw, row, keep_cols) for _, row, raw in batch]
            else:
                kept = [[row[c] for c in keep_cols] for row in rows]
        labels = None
        if label_col is not None:
            labels = [_label_cell(row[label_col], line, name, label) for row, line in zip(rows, line_numbers)]
        yield Block(numbers, cells, kept, labels)
    if not any_rows and not skip_rows and not rows_before:
        raise DataError(f"{name}: the header has no data rows below it; expected at least one row")


def _label_cell(cell: str, line: int, name: str, label: str) -> str:
    value = cell.strip()
    if not value or value in MISSING_TOKENS:
        raise DataError(f"{name}, line {line}, column '{label}': {missing_problem(cell)} as the label; "
                        "expected a class name")
    return value


def raw_fields(record: str) -> list[str]:
    """A CSV record's fields as written (quotes kept), split as the csv module splits them."""
    record = record.rstrip("\r\n")
    fields, i, n = [], 0, len(record)
    while True:
        if i < n and record[i] == '"':
            k = i + 1
            while True:
                k = record.find('"', k)
                if k < 0 or k + 1 >= n or record[k + 1] != '"':
                    break
                k += 2
            end = record.find(",", k + 1) if k >= 0 else -1
        else:
            end = record.find(",", i)
        if end < 0:
            fields.append(record[i:])
            return fields
        fields.append(record[i:end])
        i = end + 1


def _kept_raw(raw: str, row: list[str], cols: list[int]) -> str:
    fields = raw_fields(raw)
    if len(fields) != len(row):  # a record this split does not take apart as csv did: write the values
        return "".join(csv_field(row[c]) + "," for c in cols)
    return "".join(fields[c] + "," for c in cols)


def csv_field(value) -> str:
    """A value as csv.writer writes it as one field (quoted where it must be)."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow([value, ""])
    return text.getvalue()[:-2]


# -- JSON Lines ---------------------------------------------------------------------------


def jsonl_source(handle, name: str, live: bool, *, numeric: Sequence[str], text: Sequence[str], allow_missing: bool,
                 keep: Sequence[str] = (), label: str | None = None, out_format: str = "jsonl") -> Iterator[Block]:
    """Blocks of JSON Lines (one object per line; keys are column names, others ignored; a missing key or
    null is a missing value) from a binary handle."""
    lines = io.TextIOWrapper(handle, encoding="utf-8-sig", newline=None)

    def records() -> Iterator[tuple[int, dict]]:
        number = 0
        try:
            for number, line in enumerate(lines, start=1):  # noqa: B007 (read after the loop for the message)
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{name}, line {number}: not JSON ({exc.msg} at column {exc.colno}); "
                                    "expected one JSON object per line") from exc
                except ValueError as exc:  # an integer past Python's 4,300-digit limit
                    raise DataError(f"{name}, line {number}: a number of more than 4,300 digits; expected "
                                    "one JSON object per line, its numbers ones a float can hold") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{name}, line {number}: got a JSON {_json_kind(obj)}; expected one JSON "
                                    "object per line, its keys the column names")
                yield number, obj
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}, line {number + 1}: not UTF-8 text ({exc.reason}); "
                            "expected UTF-8 JSON Lines") from exc

    checked = False
    # A record holds the line's every key, however many: batches of at most 4,096 records (BATCH_CELLS / 32),
    # fewer when the keys asked for are more than 32.
    for batch in batches(records(), live, max(len(numeric) + len(text) + len(keep) + 1, 32)):
        objs = [b[1] for b in batch]
        numbers_of = [b[0] for b in batch]
        if keep and not checked:
            absent = [k for k in keep if k not in objs[0]]
            if absent:
                raise DataError(f"{name}, line {numbers_of[0]}: --keep {', '.join(repr(k) for k in absent)}, not a "
                                f"key of the first object; it has: {', '.join(map(str, objs[0]))}")
        checked = True
        numbers = np.empty((len(objs), len(numeric)))
        for j, col in enumerate(numeric):
            numbers[:, j] = _json_numbers([o.get(col) for o in objs], numbers_of, col, name, allow_missing)
        cells = None
        if text:
            cells = np.empty((len(objs), len(text)), dtype=object)
            for j, col in enumerate(text):
                cells[:, j] = [_json_text(o.get(col), n, col, name) for o, n in zip(objs, numbers_of)]
        kept = None
        if keep:
            if out_format == "csv":
                kept = ["".join(_csv_of_json(o.get(k)) + "," for k in keep) for o in objs]
            else:
                kept = [[o.get(k) for k in keep] for o in objs]
        labels = None
        if label is not None:
            labels = [_json_label(o.get(label), n, label, name) for o, n in zip(objs, numbers_of)]
        yield Block(numbers, cells, kept, labels)


def _json_kind(value) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _json_numbers(values: list, lines: list[int], col: str, name: str, allow_missing: bool) -> np.ndarray:
    if all(type(v) is float or type(v) is int for v in values):
        try:
            out = np.array(values, dtype=np.float64)
        except OverflowError:  # an integer past float64: named below
            out = None
        if out is not None and np.isfinite(out).all():
            return out
    out = np.empty(len(values))
    for i, v in enumerate(values):
        where = f"{name}, line {lines[i]}, key '{col}'"
        if v is None or (isinstance(v, str) and v.strip() in MISSING_TOKENS):
            if not allow_missing:
                what = "missing (no such key, or null)" if v is None else f"missing value {json.dumps(v)}"
                raise DataError(f"{where}: {what}; expected a number (the model was trained without --impute, "
                                "so it cannot fill missing values in)")
            out[i] = math.nan
        elif (type(v) is float or type(v) is int) or (isinstance(v, str) and _NUMBER.fullmatch(v)):
            try:
                out[i] = float(v)
            except OverflowError:  # an integer past float64
                out[i] = math.inf
            if not math.isfinite(out[i]):
                raise DataError(f"{where}: got {v} (not finite); expected a finite number")
        else:
            raise DataError(f"{where}: got {json.dumps(v)}; expected a number (the model reads this column "
                            "as numbers)")
    return out


def _json_text(v, line: int, col: str, name: str) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return "" if v.strip() in MISSING_TOKENS else v
    if isinstance(v, bool):
        return json.dumps(v)
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer()):
        return str(int(v))
    if isinstance(v, float):
        return repr(v)
    raise DataError(f"{name}, line {line}, key '{col}': got a JSON {_json_kind(v)}; expected a category "
                    "(a string or a number)")


def _json_label(v, line: int, col: str, name: str):
    if v is None or isinstance(v, (dict, list)) or (isinstance(v, str) and v.strip() in MISSING_TOKENS):
        raise DataError(f"{name}, line {line}, key '{col}': got {json.dumps(v)} as the label; "
                        "expected a class name")
    return v.strip() if isinstance(v, str) else json.dumps(v) if isinstance(v, bool) else str(v)


def _csv_of_json(v) -> str:
    if v is None:
        return ""
    return csv_field(v if isinstance(v, str) else json.dumps(v))


class JsonLinesWriter:
    """``edgelr predict``'s JSON Lines: per row the kept columns, ``label`` (the class),
    ``probabilities`` {class: p} (``%.9g`` of the float32 value, as the CSV has it) and,
    with --explain, ``contributions`` {column: c}."""

    def __init__(self, out, classes: Sequence, keep: Sequence[str] = (), explain: Sequence[str] = ()):
        self.out = out
        self.started = False
        self._classes = list(classes)
        self._keys = [str(c) for c in classes]
        self._keep = list(keep)
        self._explain = list(explain)

    def header(self) -> None:
        self.started = True

    def rows(self, labels: np.ndarray, proba: np.ndarray, kept: list | None = None,
             contributions: np.ndarray | None = None) -> None:
        lines = []
        keys, classes = self._keys, self._classes
        probabilities = [[float(f"{p:.9g}") for p in row] for row in proba.tolist()]
        contribution_rows = contributions.tolist() if contributions is not None else None
        for i, label in enumerate(labels.tolist()):
            obj = dict(zip(self._keep, kept[i])) if kept is not None else {}
            obj["label"] = classes[label]
            obj["probabilities"] = dict(zip(keys, probabilities[i]))
            if contribution_rows is not None:
                obj["contributions"] = dict(zip(self._explain, contribution_rows[i]))
            lines.append(json.dumps(obj, allow_nan=False))
        if lines:
            self.out.write("\n".join(lines) + "\n")
