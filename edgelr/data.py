"""Reading and validating training data (spec section 2).

Numpy and the standard library only, so the torch-free side can reuse it. Bad data is
an error that names the file, the line and the column, never a guess.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import stat
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from edgelr.errors import DataError

STUDENTS_NAME = "students"

# The classic tutorial: hours of lectures, hours of lab -> failed (0) / passed (1).
_STUDENTS_X = [[1, 2], [2, 3], [3, 1], [4, 3], [5, 3], [6, 2]]
_STUDENTS_Y = [0, 0, 0, 1, 1, 1]
_STUDENTS_FEATURES = ["lecture_hours", "lab_hours"]

# float64 values per chunk when a pass over an array works chunk by chunk: 4 MB, so a
# chunk's temporaries stay in the CPU cache (measured 1.7x faster than 32 MB chunks).
CACHE_CELLS = 2**19

# Rows converted to floats at a time: bounds the memory held as Python strings.
_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class Dataset:
    """A labelled table ready for training.

    X : ndarray of shape (n_rows, n_features), float64 raw feature values (see first_row)
    y : ndarray of shape (n_rows,), int64 index into ``classes``
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    classes: list
    label_name: str
    source: str  # the file it came from, for messages and the model card
    # None: X holds every row. Under torchrun, a rank that read only its share holds rows
    # [first_row, first_row + len(X)) in X, and y still holds every row's label.
    first_row: int | None = None

    @property
    def n_rows(self) -> int:
        return int(self.y.size)


def students() -> Dataset:
    """The built-in six-student dataset of the tutorial."""
    return Dataset(
        X=np.asarray(_STUDENTS_X, dtype=np.float64),
        y=np.asarray(_STUDENTS_Y, dtype=np.int64),
        feature_names=list(_STUDENTS_FEATURES),
        classes=[0, 1],
        label_name="passed",
        source=f"{STUDENTS_NAME} (built-in)",
    )


def read_csv(
    path: str | os.PathLike, *, label: str | None = None, features: Sequence[str] | None = None
) -> Dataset:
    """Read a labelled CSV with a header row.

    ``label`` defaults to the last column, ``features`` to every other column.
    Raises DataError naming the file, line and column of the first bad cell.
    """
    with _Table(path) as table:
        return _labelled(table, label, features)


def _labelled(table: _Table, label: str | None, features: Sequence[str] | None) -> Dataset:
    feature_names, label_name = table.columns(label, features)
    where = f"{table.name}, column '{label_name}'"
    fast = table.read_numeric(feature_names, label_name)
    if fast is not None:
        X, label_values = fast
        classes, y = encode_labels(integral_as_int(label_values), where=where)
    else:
        X, label_cells = table.read(feature_names, label_name)
        classes, y = labels_from_cells(label_cells, where=where)
    return Dataset(X, y, feature_names, classes, label_name, table.name)


def read_features(path: str | os.PathLike, feature_names: Sequence[str]) -> np.ndarray:
    """Read only the named feature columns of a CSV (any order, extra columns ignored).

    Returns an ndarray of shape (n_rows, len(feature_names)), float64.
    """
    with _Table(path) as table:
        table.require(feature_names, what="feature column")
        fast = table.read_numeric(list(feature_names), None)
        X = fast[0] if fast is not None else table.read(list(feature_names), None)[0]
    return X


def read_numeric_share(path: str | os.PathLike, *, label: str | None, features: Sequence[str] | None,
                       part: int, parts: int) -> tuple[list[str], str, np.ndarray, np.ndarray] | None:
    """(feature names, label name, X, label values) of the ``part``-th of ``parts`` slices of the file.

    The data lines are cut into ``parts`` byte ranges at line ends, so each part reads
    only its own bytes (one rank's share under torchrun) and the parts, in order, are the
    file's rows in order. Only an all-numeric regular file takes this path: anything
    else returns None, and the caller reads the whole file with the exact reader, which
    names the line and column of any problem.
    """
    if not is_regular_file(os.fspath(path)):
        return None  # first: a pipe can be read once only, and the exact reader must have it whole
    with _Table(path) as table:
        feature_names, label_name = table.columns(label, features)
        header, name = table.header, table.name
    with byte_range_stream(name, part, parts, header=True) as stream:
        rows = _all_numeric(stream, len(header))
    if rows is None:
        return None
    return feature_names, label_name, _select(rows, header, feature_names), rows[:, header.index(label_name)]


def byte_range(path: str, part: int, parts: int) -> tuple[bytes, int, int]:
    """(header line, start, stop): the ``part``-th of ``parts`` byte ranges of the data lines, cut at line starts."""
    with open(path, "rb") as handle:
        header = handle.readline()
        body, size = handle.tell(), os.fstat(handle.fileno()).st_size

        def line_start(offset: int) -> int:
            """The first line start at or after ``offset``."""
            if offset <= body or offset >= size:
                return min(max(offset, body), size)
            handle.seek(offset - 1)
            handle.readline()  # the rest of the line holding byte offset - 1
            return handle.tell()

        start, stop = (line_start(body + (size - body) * k // parts) for k in (part, part + 1))
        return header, start, stop


@contextlib.contextmanager
def byte_range_stream(path: str, part: int, parts: int, *, header: bool) -> Iterator[io.BufferedReader]:
    """A binary stream of the ``part``-th byte range's data lines, after the header line when ``header``."""
    header_line, start, stop = byte_range(path, part, parts)
    with open(path, "rb") as raw:
        raw.seek(start)
        yield io.BufferedReader(_ByteRange(raw, stop, header_line if header else b""))


class _ByteRange(io.RawIOBase):
    """``prefix``, then a binary file from its current position up to byte ``stop`` only."""

    def __init__(self, handle, stop: int, prefix: bytes = b""):
        self.handle, self.stop, self.prefix = handle, stop, prefix

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.prefix:
            n = min(len(buffer), len(self.prefix))
            buffer[:n], self.prefix = self.prefix[:n], self.prefix[n:]
            return n
        n = min(len(buffer), self.stop - self.handle.tell())
        return self.handle.readinto(memoryview(buffer)[:n]) if n > 0 else 0


def _select(table: np.ndarray, header: list[str], names: Sequence[str]) -> np.ndarray:
    """The named columns of a parsed table: a view when they are side by side (no 400 MB copy for 1M x 50)."""
    cols = [header.index(n) for n in names]
    if cols == list(range(cols[0], cols[0] + len(cols))):
        return table[:, cols[0] : cols[0] + len(cols)]
    return table[:, cols]


def labels_from_cells(cells: Sequence[str], *, where: str) -> tuple[list, np.ndarray]:
    """Class names and indices from CSV label cells.

    Cells that all read as finite numbers become numbers (integers when integral), so
    the classes of "0"/"1" are 0 and 1 and "10" sorts after "9"; otherwise strings.
    """
    numeric = _as_numbers(cells)
    return encode_labels(np.asarray(numeric if numeric is not None else cells), where=where)


def encode_labels(values, *, where: str) -> tuple[list, np.ndarray]:
    """Map labels to (classes, y) with classes = sorted(set(labels)), y int64 indices."""
    # A list goes through object dtype: np.asarray([0, "a"]) would silently make "0" a string.
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{where}: expected a 1-D array of labels, got shape {arr.shape}")
    if arr.dtype.kind == "O":
        kinds = {type(plain_value(v)) for v in arr.tolist()}
        if str in kinds and len(kinds) > 1:
            raise DataError(f"{where}: labels mix numbers and strings; expected one kind")
        arr = np.asarray([plain_value(v) for v in arr.tolist()])
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(f"{where}: labels contain NaN or infinity; expected class names or numbers")
    classes, y = np.unique(arr, return_inverse=True)
    if classes.size < 2:
        found = classes[0] if classes.size else "none"
        raise DataError(
            f"{where}: needs samples of at least 2 classes, but the data contains only one class: {found}"
        )
    return [plain_value(c) for c in classes], y.astype(np.int64).reshape(-1)


def standardization(moments: Moments, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std (ddof=0) per column from X's moments, like StandardScaler.

    Also X's finiteness check: a NaN or inf makes its column's moments non-finite, and
    only then is X searched for the cell to name.
    """
    if not (np.isfinite(moments.mean).all() and np.isfinite(moments.m2).all()):
        check_finite_matrix(X)
    return moments.mean, scale_of(moments)


def scale_of(moments: Moments) -> np.ndarray:
    """Standard deviations from the moments; a constant column gets scale 1 so it maps to 0."""
    mean, var, n = moments.mean, moments.var, moments.count
    if not (np.isfinite(mean).all() and np.isfinite(var).all()):
        col = int(np.flatnonzero(~(np.isfinite(mean) & np.isfinite(var)))[0])
        raise DataError(f"feature column {col}: values too large to standardize (variance overflows "
                        "float64); expected values below about 1e150")
    # A constant column's computed variance is rounding noise, rarely exactly 0 (a column
    # of 0.1 gives ~1e-34): treat variance within that noise as zero, as StandardScaler does.
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return scale


@dataclass
class Moments:
    """Per-column count, mean and sum of squared deviations; merged across chunks and ranks."""

    count: float
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, n_features: int) -> Moments:
        return cls(0.0, np.zeros(n_features), np.zeros(n_features))

    @classmethod
    def of(cls, X: np.ndarray) -> Moments:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by scale_of
            mean = X.mean(axis=0, dtype=np.float64)
            dev = X - mean  # float64: X is float64, or promoted by the float64 mean
            return cls(float(X.shape[0]), mean, np.einsum("ij,ij->j", dev, dev))

    def merge(self, other: Moments) -> Moments:
        """Chan et al.'s pairwise update: exact in exact arithmetic, stable in floating point."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        with np.errstate(over="ignore", invalid="ignore"):
            delta = other.mean - self.mean
            mean = self.mean + delta * (other.count / n)
            m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return Moments(n, mean, m2)

    @property
    def var(self) -> np.ndarray:
        return self.m2 / self.count


def moments_of_chunks(chunks: Iterator[np.ndarray], n_features: int) -> Moments:
    """Moments of row chunks (ndarrays of shape (m, n_features)) merged in order."""
    total = Moments.empty(n_features)
    for chunk in chunks:
        if chunk.shape[0]:
            total = total.merge(Moments.of(chunk))
    return total


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (train, validation), keeping class proportions.

    Each class sends round(fraction * count) rows to validation but always keeps at
    least one row for training, so a rare class never vanishes from the fit.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"--val-fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == cls))
        n_val = min(int(round(fraction * rows.size)), rows.size - 1)
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def as_matrix(X, *, name: str = "X") -> np.ndarray:
    """An array-like of shape (n_rows, n_features) as float64, for the Python API (values not checked)."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected a numeric array of shape (n_rows, n_features); {exc}") from exc
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-D array of shape (n_rows, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name}: expected at least one row, got shape {arr.shape}")
    return arr


def check_finite_matrix(X, *, name: str = "X") -> np.ndarray:
    """Validate an array-like of shape (n_rows, n_features) of finite numbers for the Python API."""
    arr = as_matrix(X, name=name)
    if not _all_finite(arr):
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{name}: row {row}, column {col} is {arr[row, col]}; expected finite numbers")
    return arr


class _Table:
    """A CSV file with a header, read lazily so big files stream through in chunks."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.name = self.path
        # One handle for the whole read: the file is read once, so a pipe works too.
        self._handle = self._open()
        self._reader = csv.reader(self._handle)
        try:
            header = next(self._reader, None)
            self.header = self._check_header(header)
        except UnicodeDecodeError as exc:
            self.close()
            raise self._not_utf8(exc) from exc
        except csv.Error as exc:
            self.close()
            raise DataError(f"{self.name}, line 1: malformed CSV header ({exc})") from exc
        except DataError:
            self.close()
            raise

    def __enter__(self) -> _Table:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    def _check_header(self, header: list[str] | None) -> list[str]:
        if not header or all(not c.strip() for c in header):
            raise DataError(f"{self.name}: the file is empty; expected a header row and data rows")
        names = [c.strip() for c in header]
        for i, col in enumerate(names):
            if not col:
                raise DataError(f"{self.name}, line 1: column {i + 1} has an empty name in the header")
        dupes = sorted({c for c in names if names.count(c) > 1})
        if dupes:
            raise DataError(f"{self.name}, line 1: duplicate column names in the header: {', '.join(dupes)}")
        return names

    def columns(self, label: str | None, features: Sequence[str] | None) -> tuple[list[str], str]:
        """(feature names, label name) from --label / --features, checked against the header."""
        label_name = label if label is not None else self.header[-1]
        self.require([label_name], what="label column")
        if features is None:
            feature_names = [c for c in self.header if c != label_name]
        else:
            feature_names = list(features)
            self.require(feature_names, what="feature column")
            repeated = sorted({f for f in feature_names if feature_names.count(f) > 1})
            if repeated:
                raise DataError(f"{self.name}: --features names {', '.join(repeated)} more than once; "
                                "expected each column once")
            if label_name in feature_names:
                raise DataError(
                    f"{self.name}: column '{label_name}' is both the label and a feature; "
                    "expected --features to list only input columns"
                )
        if not feature_names:
            raise DataError(f"{self.name}: no feature columns besides the label '{label_name}'")
        return feature_names, label_name

    def require(self, names: Sequence[str], *, what: str) -> None:
        missing = [n for n in names if n not in self.header]
        if missing:
            raise DataError(
                f"{self.name}: {what} {', '.join(repr(m) for m in missing)} not found; "
                f"the header has: {', '.join(self.header)}"
            )

    def read(self, feature_names: list[str], label_name: str | None) -> tuple[np.ndarray, list[str]]:
        """Return (X float64, label cells); label cells are empty when no label is asked for."""
        blocks, labels = [], []
        for X, cells in self.blocks(feature_names, label_name):
            blocks.append(X)
            labels.extend(cells)
        return np.concatenate(blocks), labels

    def read_numeric(self, feature_names: list[str], label_name: str | None) -> tuple[np.ndarray, np.ndarray] | None:
        """(X float64, label values float64 or None) through a C parser (pandas', else numpy's), or None.

        The fast path for the common big file: a regular file whose cells are all finite
        numbers. Anything else (strings, quotes, an empty or bad cell, a ragged row, a
        pipe) returns None, and the exact reader, ~6x slower, reads the file and names
        the file, line and column of any problem.
        """
        if not is_regular_file(self.path):
            return None
        table = _all_numeric(self.path, len(self.header))
        if table is None:
            return None
        labels = table[:, self.header.index(label_name)] if label_name is not None else None
        return _select(table, self.header, feature_names), labels

    def blocks(self, feature_names: Sequence[str], label_name: str | None = None):
        """Yield (X block float64, label cells) per chunk of rows; the table is read once.

        A table is single-use: its one file handle is consumed and closed by this pass.
        """
        cols = [self.header.index(n) for n in feature_names]
        label_col = self.header.index(label_name) if label_name is not None else None
        empty = True
        for chunk, chunk_lines in self._chunks():
            empty = False
            cells = self._label_cells(chunk, chunk_lines, label_col) if label_col is not None else []
            yield self._to_floats(chunk, chunk_lines, cols), cells
        if empty:
            raise DataError(f"{self.name}: the header has no data rows below it; expected at least one row")

    def _open(self):
        try:
            return open(self.path, newline="", encoding="utf-8-sig")
        except FileNotFoundError as exc:
            raise DataError(f"{self.name}: no such file") from exc
        except IsADirectoryError as exc:
            raise DataError(f"{self.name}: is a directory; expected a CSV file") from exc
        except PermissionError as exc:
            raise DataError(f"{self.name}: permission denied") from exc
        except OSError as exc:
            raise DataError(f"{self.name}: cannot be read ({exc.strerror or exc})") from exc

    def _not_utf8(self, exc: UnicodeDecodeError) -> DataError:
        """Name the first line that does not decode; the exception only knows a buffer offset."""
        with contextlib.suppress(OSError), open(self.path, "rb") as handle:  # a pipe cannot be reread
            for number, raw in enumerate(handle, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as bad:
                    byte = raw[bad.start]
                    return DataError(f"{self.name}, line {number}: not UTF-8 text (byte {byte:#x}); "
                                     "expected a UTF-8 CSV file")
        return DataError(f"{self.name}: not UTF-8 text ({exc.reason}); expected a UTF-8 CSV file")

    def _chunks(self) -> Iterator[tuple[list[list[str]], list[int]]]:
        width = len(self.header)
        reader = self._reader
        with self._handle:
            try:
                chunk, chunk_lines = [], []
                for row in reader:
                    if not row:  # a blank line carries no data (a trailing newline, say)
                        continue
                    if len(row) != width:
                        raise DataError(
                            f"{self.name}, line {reader.line_num}: {len(row)} fields, "
                            f"expected {width} as in the header"
                        )
                    chunk.append(row)
                    chunk_lines.append(reader.line_num)
                    if len(chunk) == _CHUNK_ROWS:
                        yield chunk, chunk_lines
                        chunk, chunk_lines = [], []
                if chunk:
                    yield chunk, chunk_lines
            except UnicodeDecodeError as exc:
                raise self._not_utf8(exc) from exc
            except csv.Error as exc:
                raise DataError(f"{self.name}, line {reader.line_num}: malformed CSV ({exc})") from exc

    def _to_floats(self, chunk: list[list[str]], lines: list[int], cols: list[int]) -> np.ndarray:
        cells = [[row[c] for c in cols] for row in chunk]
        try:
            block = np.array(cells, dtype=np.float64)
        except ValueError:
            block = None  # find the first bad cell below, to name it
        if block is None or not np.isfinite(block).all():
            self._raise_first_bad_cell(cells, lines, cols)
        return block.reshape(len(chunk), len(cols))

    def _raise_first_bad_cell(self, cells, lines, cols) -> None:
        for row, line in zip(cells, lines):
            for value, c in zip(row, cols):
                problem = _cell_problem(value)
                if problem:
                    raise DataError(
                        f"{self.name}, line {line}, column '{self.header[c]}': {problem}; "
                        "expected a finite number"
                    )
        raise AssertionError("a bad cell was detected but not found")  # pragma: no cover

    def _label_cells(self, chunk, lines, col: int) -> list[str]:
        cells = [row[col].strip() for row in chunk]
        for value, line in zip(cells, lines):
            problem = "empty label" if not value else _non_finite_label(value)
            if problem:
                raise DataError(
                    f"{self.name}, line {line}, column '{self.header[col]}': {problem}; "
                    "expected a class name or a finite number"
                )
        return cells


def _all_numeric(source: str | io.BufferedIOBase, width: int) -> np.ndarray | None:
    """Every row of a headed CSV (a path, or a binary stream from the header line on) as
    float64 (n_rows, width), or None if any cell is not a finite number.

    pandas' C parser when pandas is installed (the training extra has it: ~2x numpy's on
    1M x 50, bench/readers.py), else numpy's.
    """
    try:
        import pandas as pd
    except ImportError:
        return _all_numeric_numpy(source, width)
    try:
        # A ragged row either raises (too many fields) or leaves a NaN (too few): both fall back.
        frame = pd.read_csv(source, dtype=np.float64, engine="c", encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError):
        return None
    # Rows one field longer than the header make pandas take the first column as the row
    # index, silently shifting every column: only a plain row count is trusted.
    if not isinstance(frame.index, pd.RangeIndex):
        return None
    table = frame.to_numpy()
    if table.shape[0] == 0 or table.shape[1] != width or not _all_finite(table):
        return None
    return table


def _all_finite(table: np.ndarray) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        # Column sums: one pass, no temporaries, NaN and inf propagate; only a sum that
        # overflows from finite cells needs the full test.
        return bool(np.isfinite(table.sum(axis=0)).all() or np.isfinite(table).all())


def _all_numeric_numpy(source: str | io.BufferedIOBase, width: int) -> np.ndarray | None:
    opened = open(source, encoding="utf-8-sig") if isinstance(source, str) else io.TextIOWrapper(source, "utf-8-sig")
    try:
        with opened as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            handle.readline()  # the header, already checked by the exact reader
            # comments=None: '#' is data here; without usecols, a ragged row is an error.
            table = np.loadtxt(handle, delimiter=",", comments=None, dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError, OSError):
        return None
    if table.shape[0] == 0 or table.shape[1] != width or not _all_finite(table):
        return None
    return table


def numeric_chunks(path: str, width: int, chunk_rows: int,
                   part: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """All-numeric rows in float64 blocks of shape (<= chunk_rows, width), for streaming.

    ``part`` (k, parts): only the data lines of the k-th of ``parts`` byte ranges.
    Raises NotAllNumeric where the exact reader must take over (it names the problem).
    """
    with contextlib.ExitStack() as stack:
        if part is None:
            handle = stack.enter_context(open(path, encoding="utf-8-sig"))
            handle.readline()
        else:
            stream = stack.enter_context(byte_range_stream(path, *part, header=False))
            handle = stack.enter_context(io.TextIOWrapper(stream, encoding="utf-8"))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", UserWarning)
        while True:
            try:
                block = np.loadtxt(handle, delimiter=",", comments=None, dtype=np.float64, ndmin=2,
                                   max_rows=chunk_rows)
            except (ValueError, UnicodeDecodeError) as exc:
                raise NotAllNumeric(str(exc)) from exc
            if block.shape[0] == 0:
                return
            if block.shape[1] != width or not np.isfinite(block).all():
                raise NotAllNumeric("a ragged row or a non-finite cell")
            yield block


class NotAllNumeric(Exception):
    """The fast numeric reader cannot take this file; the exact reader will say why."""


def open_table(path: str | os.PathLike) -> _Table:
    """The CSV's header checked; use as a context manager."""
    return _Table(path)


def is_regular_file(path: str) -> bool:
    # A pipe or a FIFO can be read once only: the exact reader's single pass must have it.
    with contextlib.suppress(OSError):
        return stat.S_ISREG(os.stat(path).st_mode)
    return False


def integral_as_int(values: np.ndarray) -> np.ndarray:
    """Numeric labels as the exact reader makes them: integers when all are integral."""
    if np.all(values == np.round(values)) and np.abs(values).max() < 2**53:
        return values.astype(np.int64)
    return values


def _cell_problem(value: str) -> str | None:
    if not value.strip():
        return "empty cell"
    try:
        number = float(value)
    except ValueError:
        return f"got '{value}'"
    if not math.isfinite(number):
        return f"got '{value.strip()}' (not finite)"
    return None


def _non_finite_label(value: str) -> str | None:
    """'nan', 'inf', ... read as numbers but name no class: an error, not a string class."""
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isfinite(number) else f"label '{value}' is not finite"


def _as_numbers(values: Sequence[str]) -> list | None:
    """All labels as numbers (ints when integral), or None if any is not a finite number."""
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(x):
            return None
        out.append(x)
    if all(x.is_integer() for x in out):
        return [int(x) for x in out]
    return out


def plain_value(value):
    """A class name as a plain JSON-able Python value (no numpy scalars)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def iter_feature_blocks(path: str | os.PathLike, feature_names: Sequence[str]) -> Iterator[np.ndarray]:
    """Stream the named feature columns of a CSV in blocks of rows (flat memory).

    Yields float64 arrays of shape (<= 65,536, len(feature_names)); same errors as read_csv.
    """
    with _Table(path) as table:
        table.require(feature_names, what="feature column")
        for X, _ in table.blocks(feature_names):
            yield X


def read_label_cells(path: str | os.PathLike, feature_names: Sequence[str], label: str) -> tuple[np.ndarray, list]:
    """(X, raw label cells) for scoring a model on labelled data; one class is fine here."""
    with _Table(path) as table:
        table.require([*feature_names, label], what="column")
        return table.read(list(feature_names), label)
