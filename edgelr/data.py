"""Reading and validating training data (spec section 2).

Numpy and the standard library only, so the torch-free side can reuse it. Bad data is
an error that names the file, the line and the column, never a guess.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import math
import os
import re
import stat
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgelr.errors import DataError
from edgelr.interrupts import ThreadedReader

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

NUMERIC, TEXT = "numeric", "text"
# Cells that mean "no value" (spec section 2), compared after stripping spaces.
MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL"})
DEFAULT_MAX_CATEGORIES = 1000
# A number as CSV readers write one: sign, ASCII digits, point, exponent, spaces around.
# Python's float() also takes '1_000', non-ASCII digits, 'inf' and 'nan': those are not numbers here.
_NUMBER = re.compile(r"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*")


@dataclass(frozen=True)
class ReadOptions:
    """How feature cells are read (the training flags of spec section 2)."""

    categorical: tuple[str, ...] = ()  # columns read as text even when their cells are numbers
    impute: bool = False  # whether a missing cell is allowed (its value comes from the encoding)
    max_categories: int = DEFAULT_MAX_CATEGORIES


DEFAULT_READ = ReadOptions()  # no --categorical, no --impute: a missing cell is an error


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
    # Per feature: NUMERIC, or TEXT (X holds the index of the cell's value in vocab[name]).
    # A missing cell is NaN in either kind.
    kinds: list[str] | None = None  # None: every feature is numeric
    vocab: dict[str, list[str]] = field(default_factory=dict)
    # (n_rows,) float64 per-row weights from --weight-column, or None (every row weighs 1)
    sample_weight: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.y.size)


# A small synthetic table of the kind users bring: pump readings with text columns (site,
# model) and empty cells, label 'failed'. Shipped as a CSV inside the package.
PUMPS_NAME = "pumps"
BUILTIN = (STUDENTS_NAME, PUMPS_NAME)


def builtin(name: str, options: ReadOptions = DEFAULT_READ, *, label: str | None = None,
            features: Sequence[str] | None = None) -> Dataset:
    """A built-in data set by name: the tutorial's students, or the pumps table (read as ``read_csv`` reads it)."""
    if name == STUDENTS_NAME:
        return students()
    if name != PUMPS_NAME:
        raise DataError(f"no built-in data set '{name}'; expected one of {', '.join(BUILTIN)}")
    import importlib.resources

    with importlib.resources.as_file(importlib.resources.files("edgelr") / "datasets" / "pumps.csv") as path:
        data = read_csv(path, label=label, features=features, options=options)
    return dataclasses.replace(data, source=f"{PUMPS_NAME} (built-in)")


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


def check_header(header: list[str] | None, name: str, *, source: str = "file") -> list[str]:
    """The column names of a CSV header row, stripped; an empty header, an empty name or a repeated one is an error."""
    if not header or all(not c.strip() for c in header):
        raise DataError(f"{name}: the {source} is empty; expected a header row and data rows")
    names = [c.strip() for c in header]
    for i, col in enumerate(names):
        if not col:
            raise DataError(f"{name}, line 1: column {i + 1} has an empty name in the header")
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise DataError(f"{name}, line 1: duplicate column names in the header: {', '.join(dupes)}")
    return names


def csv_numbers(rows: list[list[str]], lines: list[int], cols: list[int], header: list[str], name: str,
                allow_missing: bool) -> np.ndarray:
    """The numeric feature cells ``cols`` of CSV rows, float64 (n, len(cols)).

    A word, an infinity, or a missing cell the model cannot fill is an error naming its line and column.
    """
    X = np.empty((len(rows), len(cols)))
    for j, c in enumerate(cols):
        column = [row[c] for row in rows]
        values, missing, word, bad = parse_numbers(column)
        where = f"{name}, line {{}}, column '{header[c]}'"
        if bad is not None:
            raise DataError(f"{where.format(lines[bad])}: got '{column[bad].strip()}' (not finite); "
                            "expected a finite number")
        if word is not None:
            raise DataError(f"{where.format(lines[word])}: got '{column[word]}'; expected a number "
                            "(the model reads this column as numbers)")
        if missing is not None and not allow_missing:
            raise DataError(f"{where.format(lines[missing])}: {missing_problem(column[missing])}; expected a "
                            "number (the model was trained without --impute, so it cannot fill missing cells in)")
        X[:, j] = values
    return X



def read_csv(
    path: str | os.PathLike, *, label: str | None = None, features: Sequence[str] | None = None,
    options: ReadOptions = DEFAULT_READ, weight: str | None = None,
) -> Dataset:
    """Read a labelled CSV with a header row.

    ``label`` defaults to the last column, ``features`` to every other column (but
    ``weight``, a column of per-row sample weights); ``options`` say which columns are
    text and whether missing cells are allowed.
    Raises DataError naming the file, line and column of the first bad cell.
    """
    with _Table(path) as table:
        if weight is None:
            return _labelled(table, label, features, options)
        return _weighted(table, label, features, options, weight)


def _weighted(table: _Table, label: str | None, features: Sequence[str] | None, options: ReadOptions,
              weight: str) -> Dataset:
    """``_labelled`` with the weight column read as one more feature, then taken out of X."""
    feature_names, label_name = weighted_columns(table, label, features, weight)
    data = _labelled(table, label_name, [*feature_names, weight], options)
    w = checked_weights(table, np.ascontiguousarray(data.X[:, -1]), weight,
                        words=data.kinds is not None and data.kinds[-1] != NUMERIC)
    return dataclasses.replace(data, X=data.X[:, :-1], feature_names=feature_names, sample_weight=w,
                               kinds=None if data.kinds is None else data.kinds[:-1],
                               vocab={k: v for k, v in data.vocab.items() if k != weight})


def weighted_columns(table: _Table, label: str | None, features: Sequence[str] | None,
                     weight: str | None) -> tuple[list[str], str]:
    """(feature names, label name) of a table read with the weight column ``weight`` (None: none), which is
    neither."""
    if weight is None:
        return table.columns(label, features)
    table.require([weight], what="weight column")
    if label is None:  # the last column, as without weights, unless that is the weights
        label = next(c for c in reversed(table.header) if c != weight) if len(table.header) > 1 else weight
    feature_names, label_name = table.columns(label, features, exclude=weight)
    if weight == label_name or weight in feature_names:
        role = "the label" if weight == label_name else "a feature"
        raise DataError(f"{table.name}: column '{weight}' is both the weight column and {role}; "
                        "expected a column of its own")
    return feature_names, label_name


def checked_weights(table: _Table, w: np.ndarray, weight: str, *, words: bool = False) -> np.ndarray:
    """The weight column's values ``w`` (every data row's), or a DataError naming the first bad one.

    ``words``: the column was read as text.
    """
    if words:
        raise DataError(f"{table.name}, column '{weight}': the weight column holds words; "
                        "expected numbers >= 0 (per-row sample weights)")
    bad = np.flatnonzero(~(np.isfinite(w) & (w >= 0)))
    if bad.size:
        value = "empty" if np.isnan(w[bad[0]]) else f"{w[bad[0]]:g}"
        raise DataError(f"{table.name}, {table.where_row(int(bad[0]))}, column '{weight}': weight {value}; "
                        "expected a finite number >= 0")
    if not w.any():
        raise DataError(f"{table.name}, column '{weight}': every weight is 0; expected some rows to weigh more")
    return w


def _labelled(table: _Table, label: str | None, features: Sequence[str] | None, options: ReadOptions) -> Dataset:
    feature_names, label_name = table.columns(label, features)
    where = f"{table.name}, column '{label_name}'"
    check_categorical(table.name, feature_names, options.categorical)
    # A word in the first row means text columns: pandas' float parser would read the whole file to say so.
    numeric = not options.categorical and table.first_row_numeric(feature_names)
    fast = table.read_numeric(feature_names, label_name, allow_missing=options.impute) if numeric else None
    if fast is not None:
        X, label_values = fast
        classes, y = encode_labels(integral_as_int(label_values), where=where)
        if options.impute and np.isnan(X).all(axis=0).any():  # the exact reader names the column
            fast = None  # (without --impute the fast readers take finite numbers only)
    if fast is not None:
        return Dataset(X, y, feature_names, classes, label_name, table.name)
    parsed = _read_table_pandas(table, feature_names, label_name, options)
    if parsed is not None:
        X, label_cells, kinds, vocab = parsed
    else:
        X, label_cells, columns = table.read(feature_names, label_name, options)
        kinds, vocab = list(columns.kinds), columns.vocabularies()
    classes, y = labels_from_cells(label_cells, where=where)
    return Dataset(X, y, feature_names, classes, label_name, table.name, kinds=kinds, vocab=vocab)


def _read_table_pandas(table: _Table, feature_names: list[str], label_name: str,
                       options: ReadOptions) -> tuple[np.ndarray, list[str], list[str], dict] | None:
    """A table with text columns or missing cells through pandas' C parser: what ``_Table.read`` gives
    (X, label cells, kinds, vocabularies), or None wherever the exact reader must read it.

    Every cell is read as a string, then each column is classified with numpy and
    ``pandas.factorize`` (vocabularies in first-seen order, as ``Columns`` builds them).
    Anything the exact reader would refuse (a mixed column, a missing cell without
    --impute, too many categories, a ragged row, an infinite number, a missing label)
    returns None, and the exact reader reads the file again to name it.
    """
    if not is_regular_file(table.path):
        return None
    try:
        import pandas as pd
    except ImportError:
        return None
    try:
        frame = pd.read_csv(table.path, dtype=str, keep_default_na=False, na_filter=False, engine="c",
                            encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError):
        return None
    # Only missing fields (a short row) are NaN with na_filter off; a longer row shifts the index.
    if (not isinstance(frame.index, pd.RangeIndex) or frame.shape != (frame.shape[0], len(table.header))
            or frame.shape[0] == 0 or frame.isna().to_numpy().any()):
        return None
    position = {name: i for i, name in enumerate(table.header)}
    X = np.empty((frame.shape[0], len(feature_names)))
    kinds, vocab = [], {}
    for j, name in enumerate(feature_names):
        cells = frame.iloc[:, position[name]].to_numpy(dtype=object)
        numbers = None if name in options.categorical else _fast_numbers(cells.tolist())
        if numbers is not None:  # the common column: every cell a number, none missing
            X[:, j] = numbers
            kinds.append(NUMERIC)
            continue
        # Which cells are missing, decided once per distinct value (Python's strip, as the exact reader).
        codes, uniques = pd.factorize(cells)
        missing = np.array([v.strip() in MISSING_TOKENS for v in uniques], dtype=bool)[codes]
        if missing.all() or (missing.any() and not options.impute):
            return None
        present = cells[~missing]
        X[missing, j] = math.nan
        numbers = None if name in options.categorical else _fast_numbers(present.tolist())
        if numbers is not None:
            X[~missing, j] = numbers
            kinds.append(NUMERIC)
            continue
        codes, uniques = pd.factorize(present)
        auto = name not in options.categorical
        if len(uniques) > options.max_categories or (auto and any(_NUMBER.fullmatch(v) or _infinite(v)
                                                                  for v in uniques)):
            return None
        X[~missing, j] = codes
        kinds.append(TEXT)
        vocab[name] = [str(v) for v in uniques]
    codes, uniques = pd.factorize(frame.iloc[:, position[label_name]].to_numpy(dtype=object))
    names = np.array([v.strip() for v in uniques], dtype=object)  # label cells are stripped, as _label_cells does
    if any(not c or c in MISSING_TOKENS or non_finite_label(c) for c in names):
        return None
    return X, names[codes].tolist(), kinds, vocab


def read_raw(path: str | os.PathLike, numeric: Sequence[str], text: Sequence[str] = (), *,
             allow_missing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The named columns of a CSV as a model reads them (any order, extra columns ignored).

    Returns (numbers float64 (n_rows, len(numeric)) with NaN for missing cells, text
    object array (n_rows, len(text)) with "" for missing cells). A missing number is an
    error unless ``allow_missing``.
    """
    blocks = list(iter_raw_blocks(path, numeric, text, allow_missing=allow_missing))
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


def read_numeric_share(path: str | os.PathLike, *, label: str | None, features: Sequence[str] | None,
                       part: int, parts: int, weight: str | None = None
                       ) -> tuple[list[str], str, np.ndarray, np.ndarray, np.ndarray | None] | None:
    """(feature names, label name, X, label values, weights or None) of the ``part``-th of ``parts`` slices of the file.

    The data lines are cut into ``parts`` byte ranges at line ends, so each part reads
    only its own bytes (one rank's share under torchrun) and the parts, in order, are the
    file's rows in order. Only an all-numeric regular file takes this path: anything
    else returns None, and the caller reads the whole file with the exact reader, which
    names the line and column of any problem. ``weight``: the weight column (unchecked:
    see ``checked_weights``), neither a feature nor the label.
    """
    if not is_regular_file(os.fspath(path)):
        return None  # first: a pipe can be read once only, and the exact reader must have it whole
    with _Table(path) as table:
        feature_names, label_name = weighted_columns(table, label, features, weight)
        header, name = table.header, table.name
    with byte_range_stream(name, part, parts, header=True) as stream:
        rows = _all_numeric(stream, len(header))
    if rows is None:
        return None
    weights = None if weight is None else np.ascontiguousarray(rows[:, header.index(weight)])
    return (feature_names, label_name, _select(rows, header, feature_names), rows[:, header.index(label_name)],
            weights)


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
    countable = arr.size and (arr.dtype.kind in "bi" or (arr.dtype.kind == "u" and arr.dtype.itemsize < 8))
    classes, y = _small_integer_classes(arr) if countable else (None, None)
    if classes is None:
        classes, y = np.unique(arr, return_inverse=True)
    if classes.size < 2:
        found = classes[0] if classes.size else "none"
        raise DataError(
            f"{where}: needs samples of at least 2 classes, but the data contains only one class: {found}"
        )
    return [plain_value(c) for c in classes], y.astype(np.int64, copy=False).reshape(-1)


def _small_integer_classes(arr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """np.unique(arr, return_inverse=True) by counting, for integer labels in a small range; (None, None) otherwise.

    Labels are usually 0/1 or a few codes: a count and a table lookup take a fraction of
    a sort's time and one temporary the size of y, not three.
    """
    low, high = int(arr.min()), int(arr.max())
    if high - low >= 2**16:
        return None, None
    shifted = arr if arr.dtype == np.int64 and low == 0 else np.subtract(arr, low, dtype=np.int64)
    present = np.flatnonzero(np.bincount(shifted, minlength=high - low + 1))
    if shifted is arr and present.size == high + 1:
        return present.astype(arr.dtype), arr  # already the indices 0..k-1: no copy (y is only read)
    lookup = np.zeros(high - low + 1, dtype=np.int64)
    lookup[present] = np.arange(present.size)
    return (present + low).astype(arr.dtype), np.take(lookup, shifted, out=shifted)


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

    @classmethod
    def of_present(cls, X: np.ndarray, weight: np.ndarray | None = None) -> Moments:
        """Moments of each column's cells that are not NaN (per-column counts).

        ``weight`` (n_rows,): each row counts that many times (its count is the weights'
        sum), as scikit-learn's sample_weight counts a row of weight 2 as the row twice.
        """
        present = ~np.isnan(X)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if weight is None:
                count = present.sum(axis=0).astype(np.float64)
                mean = np.where(count > 0, np.where(present, X, 0.0).sum(axis=0) / np.maximum(count, 1), 0.0)
                dev = np.where(present, X - mean, 0.0)
                return cls(count, mean, np.einsum("ij,ij->j", dev, dev))
            w = present * weight[:, None]  # (m, d): a missing cell weighs nothing
            count = w.sum(axis=0)
            total = np.einsum("ij,ij->j", np.where(present, X, 0.0), w)
            mean = np.where(count > 0, total / np.where(count > 0, count, 1), 0.0)
            dev = np.where(present, X - mean, 0.0)
            return cls(count, mean, np.einsum("ij,ij,ij->j", w, dev, dev))

    def merge(self, other: Moments) -> Moments:
        """Chan et al.'s pairwise update: exact in exact arithmetic, stable in floating point.

        Counts may be per column (arrays): columns with missing cells count only the others.
        """
        if np.all(other.count == 0):
            return self
        if np.all(self.count == 0):
            return other
        n = self.count + other.count
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            delta = other.mean - self.mean
            mean = self.mean + delta * np.where(n > 0, other.count / n, 0.0)
            m2 = self.m2 + other.m2 + delta**2 * np.where(n > 0, self.count * other.count / n, 0.0)
        return Moments(n, mean, m2)

    @property
    def var(self) -> np.ndarray:
        return self.m2 / self.count


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (train, validation), keeping class proportions.

    Each class sends round(fraction * count) rows to validation but always keeps at
    least one row for training, so a rare class never vanishes from the fit.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"--val-fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:  # every row trains: what the loop below gives, without its sorts
        return np.arange(y.size), np.arange(0)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == cls))
        n_val = min(int(round(fraction * rows.size)), rows.size - 1)
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def as_matrix(X, *, name: str = "X", keep_float: bool = False) -> np.ndarray:
    """An array-like of shape (n_rows, n_features) as float64, for the Python API (values not checked).

    ``keep_float``: a float32 or float64 ndarray comes back as it is (no copy), other types as float64.
    """
    try:
        keep = keep_float and isinstance(X, np.ndarray) and X.dtype in (np.float32, np.float64)
        arr = X if keep else np.asarray(X, dtype=np.float64)
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
        value = arr[row, col]
        hint = ", or impute='mean'|'median' to fill missing values in" if np.isnan(value) else ""
        # "NaN" / "inf" spelled so: scikit-learn's estimator checks look for those words
        raise DataError(f"{name}: row {row}, column {col} is {'NaN' if np.isnan(value) else value}; expected finite "
                        f"numbers (no NaN or inf){hint}")
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
            self.header = check_header(header, self.name)
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

    def columns(self, label: str | None, features: Sequence[str] | None,
                exclude: str | None = None) -> tuple[list[str], str]:
        """(feature names, label name) from --label / --features, checked against the header.

        ``exclude``: a column that is neither (the weight column), left out of the default features.
        """
        label_name = label if label is not None else self.header[-1]
        self.require([label_name], what="label column")
        if features is None:
            feature_names = [c for c in self.header if c not in (label_name, exclude)]
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

    def read(self, feature_names: list[str], label_name: str | None,
             options: ReadOptions = DEFAULT_READ) -> tuple[np.ndarray, list[str], Columns]:
        """(X float64, label cells, the columns' kinds and vocabularies); no label cells when no label is asked for."""
        blocks, labels = [], []
        columns = Columns(self.name, feature_names, options)
        for X, cells in self.blocks(columns, label_name):
            blocks.append(X)
            labels.extend(cells)
        columns.finish()
        return np.concatenate(blocks), labels, columns

    def read_numeric(self, feature_names: list[str], label_name: str | None, *,
                     allow_missing: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """(X float64, label values float64 or None) through a C parser (pandas', else numpy's), or None.

        The fast path for the common big file: a regular file whose cells are all finite
        numbers (or, with ``allow_missing``, missing feature cells, as NaN). Anything else
        (strings, quotes, a bad cell, a ragged row, a pipe) returns None, and the exact
        reader, ~6x slower, reads the file and names the file, line and column of any problem.
        """
        if not is_regular_file(self.path):
            return None
        table = _all_numeric(self.path, len(self.header), allow_missing=allow_missing)
        if table is None:
            return None
        X = _select(table, self.header, feature_names)
        labels = table[:, self.header.index(label_name)] if label_name is not None else None
        if allow_missing and (np.isinf(X).any() or (labels is not None and not np.isfinite(labels).all())):
            return None
        return X, labels

    def first_row_numeric(self, feature_names: Sequence[str]) -> bool:
        """Whether the first data row's feature cells are all numbers or missing (a peek from a second handle:
        this table's own handle is kept for the single pass). True when it cannot tell."""
        if not is_regular_file(self.path):
            return True
        with contextlib.suppress(OSError, UnicodeDecodeError, csv.Error, StopIteration), \
                open(self.path, newline="", encoding="utf-8-sig") as handle:
            rows = csv.reader(handle)
            next(rows)
            row = next(rows)
            if len(row) == len(self.header):
                cells = [row[self.header.index(n)] for n in feature_names]
                return all(c.strip() in MISSING_TOKENS or _NUMBER.fullmatch(c) or _infinite(c) for c in cells)
        return True

    def blocks(self, columns: Columns, label_name: str | None = None):
        """Yield (X block float64, label cells) per chunk of rows; the table is read once.

        ``columns`` reads the feature cells (and learns their kinds as it goes). A table is
        single-use: its one file handle is consumed and closed by this pass.
        """
        cols = [self.header.index(n) for n in columns.names]
        label_col = self.header.index(label_name) if label_name is not None else None
        empty = True
        for chunk, chunk_lines in self._chunks():
            empty = False
            cells = self._label_cells(chunk, chunk_lines, label_col) if label_col is not None else []
            yield columns.parse(chunk, chunk_lines, cols), cells
        if empty:
            raise DataError(f"{self.name}: the header has no data rows below it; expected at least one row")

    def raw_blocks(self, numeric: Sequence[str], text: Sequence[str], *, allow_missing: bool,
                   label_name: str | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
        """(numbers float64 with NaN for missing, text object array with "" for missing, label cells)
        per chunk, for scoring a model whose column kinds are known."""
        num_cols = [self.header.index(n) for n in numeric]
        text_cols = [self.header.index(n) for n in text]
        label_col = self.header.index(label_name) if label_name is not None else None
        empty = True
        for chunk, lines in self._chunks():
            empty = False
            X = self._model_numbers(chunk, lines, num_cols, allow_missing)
            T = np.empty((len(chunk), len(text_cols)), dtype=object)
            for j, c in enumerate(text_cols):
                T[:, j] = ["" if cell.strip() in MISSING_TOKENS else cell for cell in (row[c] for row in chunk)]
            cells = self._label_cells(chunk, lines, label_col) if label_col is not None else []
            yield X, T, cells
        if empty:
            raise DataError(f"{self.name}: the header has no data rows below it; expected at least one row")

    def _model_numbers(self, chunk, lines, cols: list[int], allow_missing: bool) -> np.ndarray:
        """The numeric feature cells of a chunk; a word, or a missing cell the model cannot fill, is an error."""
        block = _fast_numbers([[row[c] for c in cols] for row in chunk])
        if block is not None:
            return block.reshape(len(chunk), len(cols))
        return csv_numbers(chunk, lines, cols, self.header, self.name, allow_missing)

    def _open(self):
        try:
            if not is_regular_file(self.path) and os.path.exists(self.path):
                # A named pipe, read on a thread: a wait for its writer stays interruptible.
                return io.TextIOWrapper(io.BufferedReader(ThreadedReader(self.path)), encoding="utf-8-sig",
                                        newline="")
            return open(self.path, newline="", encoding="utf-8-sig")
        except FileNotFoundError as exc:
            raise DataError(f"{self.name}: no such file") from exc
        except IsADirectoryError as exc:
            raise DataError(f"{self.name}: is a directory; expected a CSV file") from exc
        except PermissionError as exc:
            raise DataError(f"{self.name}: permission denied") from exc
        except OSError as exc:
            raise DataError(f"{self.name}: cannot be read ({exc.strerror or exc})") from exc

    def where_row(self, row: int) -> str:
        """'line N' of data row ``row`` (0-based, blank lines skipped as the reader skips them), read again.

        For an error found after the read, when only the row's position is known; a file that
        cannot be read again (a pipe) gets 'data row N'.
        """
        if not is_regular_file(self.path):  # opening a named pipe again would wait for a writer
            return f"data row {row + 1}"
        with contextlib.suppress(OSError, UnicodeDecodeError, csv.Error, DataError), self._open() as handle:
            reader = csv.reader(handle)
            next(reader, None)  # the header
            rows = (reader.line_num for cells in reader if cells)
            line = next(itertools.islice(rows, row, None), None)
            if line is not None:
                return f"line {line}"
        return f"data row {row + 1}"

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

    def _label_cells(self, chunk, lines, col: int) -> list[str]:
        cells = [row[col].strip() for row in chunk]
        for value, line in zip(cells, lines):
            problem = ("empty label" if not value else f"missing label '{value}'" if value in MISSING_TOKENS
                       else non_finite_label(value))
            if problem:
                raise DataError(
                    f"{self.name}, line {line}, column '{self.header[col]}': {problem}; "
                    "expected a class name or a finite number"
                )
        return cells


def _all_numeric(source: str | io.BufferedIOBase, width: int, *, allow_missing: bool = False) -> np.ndarray | None:
    """Every row of a headed CSV (a path, or a binary stream from the header line on) as
    float64 (n_rows, width), or None if any cell is not a finite number. With
    ``allow_missing``, spec section 2's missing cells are NaN (pandas only; the caller
    checks which columns may hold them).

    polars' parser for a file without missing cells when polars is installed (the
    training extra has it: 1M x 50 in about half of pandas' time, bench/readers.py);
    pandas' C parser otherwise (~2x numpy's), else numpy's.
    """
    if isinstance(source, str) and not allow_missing:
        with contextlib.suppress(ImportError):
            return _all_numeric_polars(source, width)
    try:
        import pandas as pd
    except ImportError:
        return None if allow_missing else _all_numeric_numpy(source, width)
    # Only our missing tokens are NaN: pandas' defaults also take 'None', '#N/A', ...
    missing = {"na_values": sorted(MISSING_TOKENS), "keep_default_na": False} if allow_missing else {}
    try:
        # A ragged row either raises (too many fields) or leaves a NaN (too few): both fall back.
        frame = pd.read_csv(source, dtype=np.float64, engine="c", encoding="utf-8-sig", **missing)
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError):
        return None
    # Rows one field longer than the header make pandas take the first column as the row
    # index, silently shifting every column: only a plain row count is trusted.
    if not isinstance(frame.index, pd.RangeIndex):
        return None
    table = frame.to_numpy()
    if table.shape[0] == 0 or table.shape[1] != width or not (allow_missing or _all_finite(table)):
        return None
    # A row with too few fields reads as NaN in its last cells, like missing ones: only a
    # last column without gaps proves that every row was whole.
    if allow_missing and np.isnan(table[:, -1]).any():
        return None
    return table


def _all_numeric_polars(path: str, width: int) -> np.ndarray | None:
    """``_all_numeric`` of a file by polars (its threads parse byte ranges of the file in parallel).

    Every cell polars takes as a float64 is a number of spec section 2's syntax or a
    non-finite value; it refuses the rest ('1_000', '0x1', a trailing space: the exact
    reader then reads the file). A blank line or a short row reads as nulls, which are
    NaN here, and a long row is an error: both fall back too.
    """
    import polars as pl

    try:
        # Columns by position (the exact reader checked the header): no name rules of polars' own apply.
        frame = pl.read_csv(path, has_header=False, skip_rows=1, schema={f"c{i}": pl.Float64 for i in range(width)},
                            encoding="utf8", quote_char='"')
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return None
    if frame.height == 0:
        return None
    table = frame.to_numpy()
    del frame
    return table if _all_finite(table) else None


def _all_finite(table: np.ndarray) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        # Column sums: one pass, no temporaries, NaN and inf propagate; only a sum that
        # overflows from finite cells needs the full test.
        return bool(np.isfinite(table.sum(axis=0)).all() or np.isfinite(table).all())


def _all_numeric_numpy(source: str | io.BufferedIOBase, width: int, *,
                       allow_missing: bool = False) -> np.ndarray | None:
    if allow_missing:
        return None  # numpy's reader takes no missing cells: the exact reader reads them
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


def missing_problem(cell: str) -> str:
    """How a missing cell is named in a message: 'empty cell' or "missing cell 'NA'"."""
    token = cell.strip()
    return "empty cell" if not token else f"missing cell '{token}'"


def _fast_numbers(cells: list) -> np.ndarray | None:
    """Cells (a list, or a list of rows) as float64 when every one is a finite number as spec section 2
    defines it, else None. numpy's conversion does the work; what float() takes beyond that
    syntax ('1_000', non-ASCII digits, 'nan', 'inf') is caught after it, in one scan."""
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        return None
    flat = "".join(cells if not cells or isinstance(cells[0], str) else (c for row in cells for c in row))
    if "_" in flat or not flat.isascii() or not _all_finite(values.reshape(len(cells), -1)):
        return None
    return values


def parse_numbers(cells: list[str]) -> tuple[np.ndarray, int | None, int | None, int | None]:
    """(values with NaN for missing cells, first missing, first word, first non-finite number).

    The positions are None when there is none. A word is any cell that is neither missing
    nor a number.
    """
    fast = _fast_numbers(cells)
    if fast is not None:
        return fast, None, None, None
    values = np.empty(len(cells))
    missing = word = bad = None
    for i, cell in enumerate(cells):
        if cell.strip() in MISSING_TOKENS:
            values[i] = math.nan
            missing = i if missing is None else missing
        elif _NUMBER.fullmatch(cell):
            values[i] = float(cell)
            if bad is None and not math.isfinite(values[i]):
                bad = i
        elif _infinite(cell):  # 'inf', '-Infinity', 'NAN': numbers to float(), not finite ones
            values[i] = math.nan
            bad = i if bad is None else bad
        else:
            values[i] = math.nan
            word = i if word is None else word
    return values, missing, word, bad


def _infinite(cell: str) -> bool:
    try:
        return not math.isfinite(float(cell))
    except ValueError:
        return False


def check_categorical(source: str, names: Sequence[str], categorical: Sequence[str]) -> None:
    """--categorical may name feature columns only."""
    unknown = [c for c in categorical if c not in names]
    if unknown:
        raise DataError(f"{source}: --categorical names {', '.join(repr(c) for c in unknown)}, not a feature "
                        f"column; expected some of: {', '.join(names)}")


class Columns:
    """The feature columns of a training CSV, read chunk by chunk: their kinds and vocabularies.

    A column is text when it is named in ``categorical`` or none of its cells is a number;
    numeric when every cell that is not missing is a number. A column with both is an
    error naming its first word, and a text column with more than ``max_categories``
    distinct values one that says it looks like an id. Parsed cells are float64: the
    number, or the index of the value in the column's vocabulary (first-seen order); NaN
    when missing.
    """

    def __init__(self, source: str, names: Sequence[str], options: ReadOptions):
        check_categorical(source, names, options.categorical)
        self.source, self.names, self.options = source, list(names), options
        self.kinds: list[str | None] = [TEXT if n in options.categorical else None for n in names]
        self.vocab: list[dict[str, int]] = [{} for _ in names]
        self._first_number: list[tuple[int, str] | None] = [None] * len(names)
        self._first_word: list[tuple[int, str] | None] = [None] * len(names)
        self._present = [0] * len(names)

    def parse(self, chunk: list[list[str]], lines: list[int], cols: list[int]) -> np.ndarray:
        """The chunk's feature cells as float64 (rows, len(names)); raises DataError naming line and column."""
        if not any(self.kinds):
            block = _fast_numbers([[row[c] for c in cols] for row in chunk])
            if block is not None:  # the common case: every cell a number
                for j, c in enumerate(cols):
                    self._seen_number(j, lines[0], chunk[0][c])
                    self._present[j] += len(chunk)
                return block.reshape(len(chunk), len(cols))
        X = np.empty((len(chunk), len(cols)))
        for j, c in enumerate(cols):
            X[:, j] = self._parse_column(j, [row[c] for row in chunk], lines)
        return X

    def _parse_column(self, j: int, cells: list[str], lines: list[int]) -> np.ndarray:
        if self.kinds[j] == TEXT and self.names[j] in self.options.categorical:
            return self._codes(j, cells, lines)
        values, missing, word, bad = parse_numbers(cells)
        if missing is not None and not self.options.impute:
            self._fail(j, lines[missing], f"{missing_problem(cells[missing])}; expected a value, "
                                          "or --impute mean|median to fill missing cells in")
        if word is None:
            if bad is not None:
                self._fail(j, lines[bad], f"got '{cells[bad].strip()}' (not finite); expected a finite number")
            present = np.flatnonzero(~np.isnan(values))
            if present.size:
                self._seen_number(j, lines[present[0]], cells[present[0]])
                self._present[j] += present.size
            return values
        first_number = next((i for i in range(len(cells)) if i < word and not np.isnan(values[i])), None)
        if self._first_number[j] is None and first_number is None:
            first_number = next((i for i in range(word + 1, len(cells))
                                 if cells[i].strip() not in MISSING_TOKENS and _NUMBER.fullmatch(cells[i])), None)
        if first_number is not None and self._first_number[j] is None:
            self._first_number[j] = (lines[first_number], cells[first_number])
        if self._first_word[j] is None:
            self._first_word[j] = (lines[word], cells[word])
        if self._first_number[j] is not None:
            self._mixed(j)
        self.kinds[j] = TEXT
        return self._codes(j, cells, lines)

    def _codes(self, j: int, cells: list[str], lines: list[int]) -> np.ndarray:
        """Vocabulary indices of text cells (NaN for missing ones)."""
        vocab, limit = self.vocab[j], self.options.max_categories
        auto = self.names[j] not in self.options.categorical
        out = np.empty(len(cells))
        for i, cell in enumerate(cells):
            if cell.strip() in MISSING_TOKENS:
                if not self.options.impute:
                    self._fail(j, lines[i], f"{missing_problem(cell)}; expected a value, "
                                            "or --impute mean|median to make missing a category of its own")
                out[i] = math.nan
                continue
            code = vocab.get(cell)
            if code is None:
                if auto and _NUMBER.fullmatch(cell):
                    self._first_number[j] = (lines[i], cell)
                    self._mixed(j)
                if len(vocab) == limit:
                    self._fail(j, lines[i], f"more than {limit} distinct values ('{cell}' is one more); it looks "
                                            f"like an id column, not a category: expected at most --max-categories "
                                            f"{limit} (raise it), or --features without this column")
                code = vocab[cell] = len(vocab)
            out[i] = code
            self._present[j] += 1
        return out

    def _seen_number(self, j: int, line: int, cell: str) -> None:
        if self._first_number[j] is None:
            self._first_number[j] = (line, cell)
        if self._first_word[j] is not None:
            self._mixed(j)

    def _mixed(self, j: int) -> None:
        (line, word), (number_line, number) = self._first_word[j], self._first_number[j]
        self._fail(j, line, f"got '{word}' in a column that also holds numbers (line {number_line}: "
                            f"'{number.strip()}'); expected numbers only, or --categorical {self.names[j]} "
                            "to read the column as text")

    def _fail(self, j: int, line: int, problem: str):
        raise DataError(f"{self.source}, line {line}, column '{self.names[j]}': {problem}")

    def finish(self) -> None:
        """After the last chunk: a column with no value at all is an error; undecided columns are numeric."""
        for j, name in enumerate(self.names):
            if not self._present[j]:
                raise DataError(f"{self.source}, column '{name}': every cell is missing; expected some values, "
                                "or --features without this column")
        self.kinds = [k or NUMERIC for k in self.kinds]

    def vocabularies(self) -> dict[str, list[str]]:
        """Each text column's values in the order of their indices."""
        return {n: list(v) for n, v, k in zip(self.names, self.vocab, self.kinds) if k == TEXT}


def non_finite_label(value: str) -> str | None:
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
        if not isinstance(v, str) or not _NUMBER.fullmatch(v):  # '1_000' and '١' are class names, not numbers
            return None
        x = float(v)
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


def read_features(path: str | os.PathLike, feature_names: Sequence[str]) -> np.ndarray:
    """The named numeric columns of a CSV (any order, extra columns ignored), float64 (n_rows, len(feature_names))."""
    return read_raw(path, feature_names)[0]


def iter_raw_blocks(path: str | os.PathLike, numeric: Sequence[str], text: Sequence[str] = (), *,
                    allow_missing: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream ``read_raw``'s arrays in blocks of at most 65,536 rows (flat memory)."""
    with _Table(path) as table:
        table.require([*numeric, *text], what="feature column")
        for X, T, _ in table.raw_blocks(numeric, text, allow_missing=allow_missing):
            yield X, T


def read_label_cells(path: str | os.PathLike, numeric: Sequence[str], label: str, text: Sequence[str] = (), *,
                     allow_missing: bool = False) -> tuple[np.ndarray, np.ndarray, list]:
    """(numbers, text, raw label cells) for scoring a model on labelled data; one class is fine here."""
    with _Table(path) as table:
        table.require([*numeric, *text, label], what="column")
        parts = list(table.raw_blocks(numeric, text, allow_missing=allow_missing, label_name=label))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            [c for p in parts for c in p[2]])


def is_dataframe(X) -> bool:
    # Duck-typed so pandas is never imported here for plain arrays.
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "to_numpy")


def table_from_frame(frame, *, categorical: Sequence[str] = (), impute: bool = False,
                     max_categories: int = DEFAULT_MAX_CATEGORIES) -> tuple[np.ndarray, list[str], list[str], dict]:
    """A pandas DataFrame as the CSV reader gives a table: (X float64, names, kinds, vocab).

    Columns of numbers (any numeric dtype) are numeric unless named in ``categorical``;
    columns of strings (object, string or category dtype) are text; None, NaN and pd.NA
    are missing. Text columns hold vocabulary indices in X, as in ``Columns``.
    """
    names = [str(c) for c in frame.columns]
    unknown = [c for c in categorical if c not in names]
    if unknown:
        raise DataError(f"X: categorical names {', '.join(repr(c) for c in unknown)}, not a column; expected "
                        f"some of: {', '.join(names)}")
    X = np.empty((len(frame), len(names)))
    kinds, vocab = [], {}
    for j, name in enumerate(names):
        column = frame.iloc[:, j]
        values = column.to_numpy(dtype=object)
        missing = np.array([is_missing_value(v) for v in values], dtype=bool)
        if missing.any() and not impute:
            row = int(np.flatnonzero(missing)[0])
            raise DataError(f"X: row {row}, column '{name}' is missing ({values[row]!r}); expected a value, "
                            "or impute='mean'|'median'")
        if missing.all():
            raise DataError(f"X: column '{name}' has no values; expected some, or X without this column")
        words = [i for i, v in enumerate(values) if isinstance(v, str) and not missing[i]]
        if name not in categorical and not words:  # numbers, whatever the dtype (object, category, nullable)
            X[:, j] = [math.nan if m else float(v) for v, m in zip(values, missing)]
            kinds.append(NUMERIC)
            continue
        if name not in categorical and len(words) < (~missing).sum():
            number = next(i for i, v in enumerate(values) if not missing[i] and not isinstance(v, str))
            raise DataError(f"X: column '{name}' mixes numbers and words (row {words[0]}: {values[words[0]]!r}, "
                            f"row {number}: {values[number]!r}); expected one kind, or categorical=['{name}'] "
                            "to read it as text")
        index: dict[str, int] = {}
        for i, v in enumerate(values):
            if missing[i]:
                X[i, j] = math.nan
                continue
            text = as_text(v)
            code = index.get(text)
            if code is None:
                if len(index) == max_categories:
                    raise DataError(f"X: column '{name}' has more than {max_categories} distinct values; it looks "
                                    "like an id column, not a category: expected at most max_categories "
                                    f"{max_categories} (raise it), or X without this column")
                code = index[text] = len(index)
            X[i, j] = code
        kinds.append(TEXT)
        vocab[name] = list(index)
    return X, names, kinds, vocab


def is_missing_value(value) -> bool:
    """A missing value in a DataFrame or a mapping: None, NaN, pandas' NA, or a missing token ("", "NA", ...)."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, str):
        return value.strip() in MISSING_TOKENS
    return type(value).__name__ in ("NAType", "NaTType")


def as_text(value) -> str:
    """A category value as the CSV reader would have read it: integral numbers without '.0'."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and float(value).is_integer()):
        return str(int(value))
    return str(value)
