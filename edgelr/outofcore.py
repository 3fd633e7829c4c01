"""Training on a CSV bigger than the memory budget (``--memory-budget``).

One pass over the CSV writes the raw features to a binary float64 cache in a temporary
folder and keeps only the labels; every later pass (standardization statistics, each
L-BFGS evaluation, the metrics) reads the cache back in chunks sized to the budget.
The cache is read with plain file reads, not a memory map, so the pages read do not
stay counted in the process's resident memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from edgelr.data import (
    DEFAULT_READ,
    NUMERIC,
    Columns,
    NotAllNumeric,
    ReadOptions,
    checked_weights,
    encode_labels,
    integral_as_int,
    is_regular_file,
    labels_from_cells,
    numeric_chunks,
    open_table,
    weighted_columns,
)
from edgelr.errors import ConfigError

_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
          "T": 10**12, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
# Bytes the in-memory path needs per byte of CSV: the parsed float64 table, the
# training copy, its float32 standardized copy (numbers take ~8-10 characters in a CSV).
_IN_MEMORY_FACTOR = 3
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def parse_size(text: str) -> int:
    """'128MB', '1.5GiB', '500k', '1000000' -> bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text or "")
    unit = match.group(2).upper() if match else None
    if not match or unit not in _UNITS:
        raise ConfigError(f"--memory-budget '{text}' is not understood; expected a size such as 256MB, 2GB or 512MiB")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise ConfigError(f"--memory-budget '{text}' is {size} bytes; expected a size above 0, such as 256MB")
    return size


def default_budget() -> int:
    """Half of the machine's physical memory."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def needs_streaming(path: str | os.PathLike, budget: int) -> bool:
    """Whether reading ``path`` into memory would pass ``budget`` (pipes: never streamed)."""
    path = os.fspath(path)
    return is_regular_file(path) and os.path.getsize(path) * _IN_MEMORY_FACTOR > budget


@dataclass
class CachedTable:
    """Raw float64 features in a binary file (n_rows, n_features), and the labels.

    Text columns hold vocabulary indices, missing cells NaN, as ``edgelr.data.Columns`` reads them.
    """

    path: str
    n_rows: int
    n_features: int
    y: np.ndarray  # (n_rows,) int32 class indices
    classes: list
    feature_names: list[str]
    label_name: str
    source: str
    # None: the cache holds every row. Under torchrun, a rank that read only its share
    # caches rows [first_row, first_row + cached_rows); y still holds every row's label.
    first_row: int | None = None
    cached_rows: int = 0
    kinds: list[str] | None = None  # None: every feature is numeric
    vocab: dict[str, list[str]] = field(default_factory=dict)
    sample_weight: np.ndarray | None = None  # (n_rows,) float64 from --weight-column, or None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) (row numbers of the whole file) as float64 (stop - start, n_features)."""
        width = self.n_features * 8
        with open(self.path, "rb") as handle:
            handle.seek((start - (self.first_row or 0)) * width)
            flat = np.fromfile(handle, dtype=np.float64, count=(stop - start) * self.n_features)
        return flat.reshape(stop - start, self.n_features)


def chunk_rows_for(budget: int, n_features: int) -> int:
    """Rows per chunk: a quarter of the budget, at ~4 float64-sized copies per cell in flight."""
    return int(max(1024, budget // 4 // (n_features * 8 * 4)))


def cache_csv(path: str | os.PathLike, folder: str, *, label: str | None, features, budget: int,
              options: ReadOptions = DEFAULT_READ, weight: str | None = None) -> CachedTable:
    """One pass over the CSV into ``folder``; same errors (file, line, column) as read_csv.

    ``weight``: a column of per-row sample weights (``--weight-column``), kept in memory
    (8 bytes a row) and checked as read_csv checks it.
    """
    with open_table(path) as table:
        feature_names, label_name = weighted_columns(table, label, features, weight)
        read = feature_names + ([weight] if weight is not None else [])  # the weights: one more column, taken out
        columns = Columns(table.name, read, options)
        cols = [table.header.index(n) for n in read]
        label_col = table.header.index(label_name)
        width = len(table.header)
        rows = chunk_rows_for(budget, width)
        cache = os.path.join(folder, "features.f64")
        kinds = None  # the numeric fast path: every column numeric
        weighted = weight is not None
        try:
            if options.categorical:
                raise NotAllNumeric("--categorical columns are text")
            codes, values, w = _write_cache(numeric_chunks(table.path, width, rows), cache, cols, label_col, weighted)
            classes, y_values = encode_labels(integral_as_int(values), where=f"{table.name}, column '{label_name}'")
        except NotAllNumeric:
            # Text, quotes, missing or bad cells: the exact reader reads the file (and names any problem).
            codes, cells, w = _write_cache_exact(table, cache, columns, label_name, weighted)
            columns.finish()
            kinds = list(columns.kinds)
            classes, y_values = labels_from_cells(cells, where=f"{table.name}, column '{label_name}'")
        vocab = columns.vocabularies()
        if weighted:
            w = checked_weights(table, w, weight, words=kinds is not None and kinds[-1] != NUMERIC)
            kinds = None if kinds is None else kinds[:-1]
            vocab.pop(weight, None)
        y = y_values[codes].astype(np.int32)
        return CachedTable(cache, int(y.size), len(feature_names), y, classes, feature_names, label_name, table.name,
                           kinds=kinds, vocab=vocab, sample_weight=w)


def cache_csv_share(path: str | os.PathLike, folder: str, *, label: str | None, features, budget: int,
                    part: int, parts: int, weight: str | None = None
                    ) -> tuple[list[str], str, str, np.ndarray, np.ndarray | None] | None:
    """The ``part``-th of ``parts`` byte ranges of an all-numeric CSV into ``folder``.

    (feature names, label name, cache path, label value per cached row, weight per cached
    row or None), or None when the file is not all numbers (the caller then caches the
    whole file, whose exact reader names any problem). The weights are not checked here.
    """
    if not is_regular_file(os.fspath(path)):
        return None  # first: a pipe can be read once only, and the exact reader must have it whole
    with open_table(path) as table:
        feature_names, label_name = weighted_columns(table, label, features, weight)
        cols = [table.header.index(n) for n in feature_names + ([weight] if weight is not None else [])]
        label_col, width, name = table.header.index(label_name), len(table.header), table.name
    cache = os.path.join(folder, "features.f64")
    try:
        chunks = numeric_chunks(name, width, chunk_rows_for(budget, width), (part, parts))
        codes, values, weights = _write_cache(chunks, cache, cols, label_col, weight is not None)
    except NotAllNumeric:
        return None
    return feature_names, label_name, cache, values[codes], weights


def _write_cache(blocks: Iterator[np.ndarray], cache: str, cols: list[int], label_col: int, weighted: bool = False):
    """(codes per row into the distinct label values, those values, the weights or None) from numeric blocks.

    ``weighted``: the last of ``cols`` is the weight column, kept apart from the cache.
    """
    distinct: dict[float, int] = {}
    codes, weights = [], []
    features = cols[:-1] if weighted else cols
    with open(cache, "wb") as out:
        for block in blocks:
            np.ascontiguousarray(block[:, features]).tofile(out)
            codes.append(_codes(block[:, label_col].tolist(), distinct))
            if weighted:
                weights.append(block[:, cols[-1]].copy())
    if not codes:
        raise NotAllNumeric("no data rows")  # the exact reader words the error
    return (np.concatenate(codes), np.asarray(list(distinct), dtype=np.float64),
            np.concatenate(weights) if weighted else None)


def _write_cache_exact(table, cache: str, columns: Columns, label_name: str, weighted: bool = False):
    """``_write_cache`` through the exact reader: label cells, not values."""
    with open(cache, "wb") as out:  # the table's own handle has read only the header
        distinct: dict[str, int] = {}
        codes, weights = [], []
        for X, cells in table.blocks(columns, label_name):
            np.ascontiguousarray(X[:, :-1] if weighted else X).tofile(out)
            codes.append(_codes(cells, distinct))
            if weighted:
                weights.append(X[:, -1].copy())
    return np.concatenate(codes), list(distinct), np.concatenate(weights) if weighted else None


def _codes(values: list, distinct: dict) -> np.ndarray:
    """Index of each value in ``distinct`` (grown in first-seen order)."""
    return np.fromiter((distinct.setdefault(v, len(distinct)) for v in values), dtype=np.int32, count=len(values))


def return_freed_memory() -> None:
    """Have glibc hand freed chunk buffers back to the system at once.

    By default glibc raises its mmap threshold after the first large free, so the
    chunk-sized buffers of later passes come from the heap and stay counted in the
    process's memory after use; at 2M rows that added ~50 MB over the budget. A fixed
    threshold keeps buffers of 1 MB and more in their own mappings. Other C libraries:
    nothing to do, nothing done.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 2**20)


def scratch_folder() -> tempfile.TemporaryDirectory:
    """A temporary folder for the cache (the system's temporary folder, or $EDGELR_CACHE_DIR)."""
    return tempfile.TemporaryDirectory(prefix="edgelr-cache-", dir=os.environ.get("EDGELR_CACHE_DIR"))
