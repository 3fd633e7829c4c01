"""The encoding of feature columns (spec section 2): one fitted object, used by everyone.

Raw rows are float64 arrays in the training column order: a numeric column holds its
number, a text column the index of its value in that column's vocabulary (what the
reader saw, in first-seen order); a missing cell is NaN in both. ``fit_encoding`` learns,
from passes over such rows (in memory, streamed chunk by chunk, or one rank's share with
the sums combined over ranks), what scikit-learn's

    ColumnTransformer([("num", make_pipeline(SimpleImputer(strategy=...,
                                                           add_indicator=...),
                                             StandardScaler()), numeric),
                       ("cat", OneHotEncoder(handle_unknown="ignore"), text)])

learns: imputation values, which columns get a missing indicator, the standardization
statistics after imputation, and the categories seen in the training rows (a missing
text cell is a category of its own with imputation). Training encodes rows with it
(``Encoding.encode``), never as a dense one-hot matrix: each text column becomes the
index of its coefficient (``slot``), and the logit is ``x_num . w + sum_j W[slot_j]``. The
checkpoint stores it, the export builds its part of the graph from it, and the runtime
validates inputs by the metadata it writes.

Numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgelr.data import MISSING_TOKENS, NUMERIC, TEXT, Moments, as_text, is_missing_value, scale_of
from edgelr.errors import ConfigError, DataError

IMPUTE = ("mean", "median")
MISSING_CATEGORY = ""  # how a missing text cell is named among the categories (and fed to the graph)
_MEDIAN_CANDIDATES = 1 << 16  # values per column a median pass collects once the radix narrows to them

Chunks = Callable[[], Iterable[np.ndarray]]  # a fresh pass over raw rows, chunk by chunk


@dataclass(frozen=True)
class EncodingSpec:
    """What the user asked for (``--impute``, ``--missing-indicator``, ``--no-standardize``)."""

    impute: str | None = None  # None, "mean" or "median"
    missing_indicator: bool = False
    standardize: bool = True

    def validate(self) -> None:
        if self.impute not in (None, *IMPUTE):
            raise ConfigError(f"impute '{self.impute}' is unknown; expected None, 'mean' or 'median'")
        if self.missing_indicator and self.impute is None:
            raise ConfigError("--missing-indicator adds an input for each column with missing cells, which "
                              "only --impute allows; expected --impute mean|median with it")


@dataclass(frozen=True)
class Layout:
    """The raw columns: names in training order, their kinds, and each text column's vocabulary."""

    columns: list[str]
    kinds: list[str]
    vocab: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def numeric(cls, columns: Sequence[str]) -> Layout:
        return cls(list(columns), [NUMERIC] * len(columns))

    @classmethod
    def of(cls, data) -> Layout:
        """The raw columns of a read table (edgelr.data.Dataset, edgelr.outofcore.CachedTable)."""
        if data.kinds is None:
            return cls.numeric(data.feature_names)
        return cls(list(data.feature_names), list(data.kinds), dict(data.vocab))

    @property
    def numeric_positions(self) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == NUMERIC]

    @property
    def text_positions(self) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == TEXT]

    @property
    def plain(self) -> bool:
        """Every column numeric: the raw rows are the numeric features themselves."""
        return all(k == NUMERIC for k in self.kinds)

    def values(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw rows -> the values a model's inputs take: (numbers, text with "" where missing, or None)."""
        numbers = raw[:, self.numeric_positions]
        if not self.text_positions:
            return numbers, None
        text = np.empty((raw.shape[0], len(self.text_positions)), dtype=object)
        for j, pos in enumerate(self.text_positions):
            vocab = np.asarray(self.vocab[self.columns[pos]] + [MISSING_CATEGORY], dtype=object)
            codes = raw[:, pos]
            text[:, j] = vocab[np.where(np.isnan(codes), vocab.size - 1, codes).astype(np.int64)]
        return numbers, text


@dataclass
class ColumnStats:
    """Per-column sums of one pass over raw rows; ``merge`` combines chunks and ranks."""

    moments: Moments  # of the present cells of each numeric column (per-column counts)
    missing: np.ndarray  # (n_numeric,) missing cells
    low: np.ndarray  # (n_numeric,) smallest present value (+inf when none)
    high: np.ndarray  # (n_numeric,) largest present value (-inf when none)
    counts: list[np.ndarray]  # per text column: rows per vocabulary index, then the missing ones

    @classmethod
    def of(cls, raw: np.ndarray, layout: Layout, weight: np.ndarray | None = None) -> ColumnStats:
        """The stats of raw rows; with ``weight`` (n_rows,), each row counts as many times as it
        weighs in the moments, missing cells and category counts (rows of weight 0 not at all);
        the ranges are of every row."""
        num = raw[:, layout.numeric_positions]
        with np.errstate(invalid="ignore"):
            low = np.fmin.reduce(num, axis=0, initial=math.inf)
            high = np.fmax.reduce(num, axis=0, initial=-math.inf)
        counts = []
        for j in layout.text_positions:
            size = len(layout.vocab[layout.columns[j]])
            codes = raw[:, j]
            codes = np.where(np.isnan(codes), size, codes).astype(np.int64)
            counts.append(np.bincount(codes, weights=weight, minlength=size + 1))
        missing = np.isnan(num).sum(axis=0).astype(np.float64) if weight is None else weight @ np.isnan(num)
        return cls(Moments.of_present(num, weight), missing, low, high, counts)

    @classmethod
    def from_moments(cls, moments: Moments, low: np.ndarray, high: np.ndarray) -> ColumnStats:
        """The stats of numeric rows without missing cells, from a pass that computed their moments."""
        count = np.full(moments.mean.size, float(np.max(moments.count)))
        return cls(Moments(count, moments.mean, moments.m2), np.zeros(count.size), low, high, [])

    @classmethod
    def empty(cls, layout: Layout) -> ColumnStats:
        d = len(layout.numeric_positions)
        sizes = [len(layout.vocab[layout.columns[j]]) + 1 for j in layout.text_positions]
        return cls(Moments(np.zeros(d), np.zeros(d), np.zeros(d)), np.zeros(d), np.full(d, math.inf),
                   np.full(d, -math.inf), [np.zeros(s, dtype=np.int64) for s in sizes])

    def merge(self, other: ColumnStats) -> ColumnStats:
        return ColumnStats(self.moments.merge(other.moments), self.missing + other.missing,
                           np.fmin(self.low, other.low), np.fmax(self.high, other.high),
                           [a + b for a, b in zip(self.counts, other.counts)])


class Ranks:
    """How sums over rows are combined over torchrun ranks; in one process, as they are."""

    def merge_stats(self, stats: ColumnStats) -> ColumnStats:
        return stats

    def sum_array(self, values: np.ndarray) -> np.ndarray:
        return values

    def gather(self, values: np.ndarray) -> np.ndarray:
        """Every rank's 1-D float64 values concatenated (rank order)."""
        return values


ONE_PROCESS = Ranks()


def stats_of(chunks: Iterable[np.ndarray], layout: Layout) -> ColumnStats:
    return weighted_stats_of(((chunk, None) for chunk in chunks), layout)


def weighted_stats_of(chunks: Iterable[tuple[np.ndarray, np.ndarray | None]], layout: Layout) -> ColumnStats:
    """The stats of (raw rows, their weights or None) chunks: each row counted as many times as it weighs."""
    total = ColumnStats.empty(layout)
    for chunk, weight in chunks:
        if chunk.shape[0]:
            total = total.merge(ColumnStats.of(chunk, layout, weight))
    return total


def fit_encoding(layout: Layout, spec: EncodingSpec, chunks: Chunks, *, stats: ColumnStats | None = None,
                 ranks: Ranks = ONE_PROCESS) -> Encoding:
    """The encoding of the rows that ``chunks`` passes over (this rank's training rows).

    ``stats``: this rank's stats when a pass already computed them (the in-memory copy).
    A median takes a few more passes (``exact_medians``); everything else is one pass.
    """
    spec.validate()
    stats = ranks.merge_stats(stats if stats is not None else stats_of(chunks(), layout))
    numeric = [layout.columns[j] for j in layout.numeric_positions]
    empty = [n for n, c in zip(numeric, stats.moments.count) if c == 0]
    if empty:
        raise DataError(f"column '{empty[0]}' has no value in the training rows; expected some numbers there (with "
                        "a validation split, outside it too), or the features without this column")
    if spec.impute is None and stats.missing.any():
        name = numeric[int(np.flatnonzero(stats.missing)[0])]
        raise DataError(f"column '{name}' has missing cells; expected numbers, or impute='mean'|'median'")
    if spec.impute == "median":
        fill = exact_medians(lambda: (c[:, layout.numeric_positions] for c in chunks()), stats.moments.count, ranks)
    elif spec.impute == "mean":
        fill = stats.moments.mean.copy()
    else:
        fill = np.full(len(numeric), math.nan)
    indicators = [i for i, m in enumerate(stats.missing) if m > 0] if spec.missing_indicator else []
    design = _design_moments(stats, fill, indicators)
    if spec.standardize:
        mean, scale = design.mean, scale_of(design)
    else:
        mean, scale = np.zeros(design.mean.size), np.ones(design.mean.size)
    categories = [_categories(layout.vocab[layout.columns[j]], counts, spec.impute is not None)
                  for j, counts in zip(layout.text_positions, stats.counts)]
    return Encoding(list(layout.columns), list(layout.kinds), spec.impute, fill, indicators, mean, scale,
                    categories, stats.low, stats.high)


def _design_moments(stats: ColumnStats, fill: np.ndarray, indicators: list[int]) -> Moments:
    """Moments of the numeric design columns after imputation: the columns, then their indicators.

    An imputed cell adds a constant, so merging the present cells' moments with those of
    ``missing`` copies of the fill value is exact: no second pass over the rows.
    """
    present, missing = stats.moments, stats.missing
    filled = present.merge(Moments(missing, np.nan_to_num(fill), np.zeros(missing.size)))
    n = present.count + missing
    share = missing[indicators] / n[indicators]
    return Moments(np.concatenate([filled.count, n[indicators]]), np.concatenate([filled.mean, share]),
                   np.concatenate([filled.m2, n[indicators] * share * (1.0 - share)]))


def _categories(vocab: list[str], counts: np.ndarray, impute: bool) -> list[str]:
    """The values seen in the training rows, sorted (as OneHotEncoder's), the missing category last."""
    seen = sorted(v for v, c in zip(vocab, counts[:-1]) if c > 0)
    return seen + ([MISSING_CATEGORY] if impute and counts[-1] > 0 else [])


def exact_medians(chunks: Chunks, counts: np.ndarray, ranks: Ranks = ONE_PROCESS) -> np.ndarray:
    """Each column's median over its present (non-NaN) cells, as np.nanmedian gives it, in passes over ``chunks``.

    A radix selection on the bits of the float64 values (ordered as unsigned integers):
    each pass counts, per column, the values under the prefix found so far by their next
    8 bits, summed over ranks, until at most ``_MEDIAN_CANDIDATES`` values remain; one more
    pass collects those (gathered over ranks) and picks the two middle ones; when all 64
    bits are found first (many tied values), the prefixes are the values. Memory stays
    256 counts and at most ``_MEDIAN_CANDIDATES`` values per column, whatever the rows.
    """
    d = counts.size
    if d == 0:
        return np.zeros(0)
    targets = np.stack([(counts - 1) // 2, counts // 2]).astype(np.int64)  # ranks of the middle values, (2, d)
    prefix = np.zeros((2, d), dtype=np.uint64)
    remaining = np.stack([counts, counts]).astype(np.int64)
    shift = 64
    while shift > 0 and remaining.max() > _MEDIAN_CANDIDATES:
        shift -= 8
        hist = np.zeros((2, d, 256), dtype=np.int64)
        same = prefix[0] == prefix[1]  # both middle values under one prefix: count once
        for chunk in chunks():
            keys = _sortable(chunk)
            for j in range(d):
                for t in range(1 if same[j] else 2):
                    hist[t, j] += np.bincount(_digits(keys[:, j], prefix[t, j], shift), minlength=256)
        hist[1, same] = hist[0, same]
        hist = ranks.sum_array(hist)
        for t in range(2):
            for j in range(d):
                cum = np.cumsum(hist[t, j])
                digit = int(np.searchsorted(cum, targets[t, j], side="right"))
                targets[t, j] -= cum[digit - 1] if digit else 0
                remaining[t, j] = hist[t, j, digit]
                prefix[t, j] |= np.uint64(digit) << np.uint64(shift)
    if shift == 0:  # every bit found: the prefixes are the middle values (however many rows tie on them)
        return (_values_of(prefix[0]) + _values_of(prefix[1])) / 2.0
    values = np.empty((2, d))
    collected = [[[] for _ in range(d)] for _ in range(2)]
    for chunk in chunks():
        keys = _sortable(chunk)
        for t in range(2):
            for j in range(d):
                collected[t][j].append(keys[:, j][_under(keys[:, j], prefix[t, j], shift)])
    for t in range(2):
        for j in range(d):
            mine = np.concatenate(collected[t][j]) if collected[t][j] else np.zeros(0, np.uint64)
            values[t, j] = np.sort(ranks.gather(_values_of(mine)))[targets[t, j]]
    return (values[0] + values[1]) / 2.0


def _sortable(X: np.ndarray) -> np.ndarray:
    """float64 -> uint64 keys in the same order (NaN -> 0, below every number's key)."""
    bits = np.ascontiguousarray(X, dtype=np.float64).view(np.uint64)
    keys = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))
    keys[np.isnan(X)] = 0
    return keys


def _values_of(keys: np.ndarray) -> np.ndarray:
    """``_sortable``'s keys back to their float64 values."""
    bits = np.where(keys >> np.uint64(63), keys & ~np.uint64(1 << 63), ~keys)
    return bits.astype(np.uint64).view(np.float64)


def _under(keys: np.ndarray, prefix: np.uint64, shift: int) -> np.ndarray:
    """Whether each key is a present value whose bits above ``shift`` are ``prefix``'s."""
    present = keys != 0
    if shift >= 64:
        return present
    return present & ((keys >> np.uint64(shift)) == (prefix >> np.uint64(shift)))


def _digits(keys: np.ndarray, prefix: np.uint64, shift: int) -> np.ndarray:
    """The 8 bits at ``shift`` of the keys under ``prefix``'s bits above them."""
    return ((keys[_under(keys, prefix, shift + 8)] >> np.uint64(shift)) & np.uint64(255)).astype(np.int64)


@dataclass
class Encoding:
    """The fitted encoding; see the module docstring. Arrays are float64."""

    columns: list[str]  # every feature column, in training order
    kinds: list[str]  # NUMERIC or TEXT per column
    impute: str | None
    fill: np.ndarray  # (n_numeric,) imputation values (NaN without imputation)
    indicators: list[int]  # numeric positions (among the numeric columns) that have a missing indicator
    mean: np.ndarray  # (n_design_numeric,) standardization of the numeric columns, then the indicators
    scale: np.ndarray
    categories: list[list[str]]  # per text column, sorted; MISSING_CATEGORY last when it is one
    low: np.ndarray  # (n_numeric,) training range
    high: np.ndarray

    @property
    def numeric(self) -> list[str]:
        return [c for c, k in zip(self.columns, self.kinds) if k == NUMERIC]

    @property
    def text(self) -> list[str]:
        return [c for c, k in zip(self.columns, self.kinds) if k == TEXT]

    @property
    def n_numeric(self) -> int:
        """Numeric design columns: the numeric columns and their missing indicators."""
        return self.mean.size

    @property
    def n_categories(self) -> int:
        return sum(len(c) for c in self.categories)

    @property
    def n_design(self) -> int:
        """Coefficients per output: numeric design columns, then one per category."""
        return self.n_numeric + self.n_categories

    @property
    def offsets(self) -> list[int]:
        """The first category slot of each text column (slots count from 0 after the numeric design columns)."""
        return [int(x) for x in np.cumsum([0] + [len(c) for c in self.categories])[:-1]]

    @property
    def unknown_slot(self) -> int:
        """The slot of an unseen category (or a missing cell without a missing category): a zero coefficient."""
        return self.n_categories

    @property
    def indicator_names(self) -> list[str]:
        """The numeric columns that have a missing indicator."""
        return [self.numeric[i] for i in self.indicators]

    def design_names(self) -> list[str]:
        """A name per coefficient: numeric columns, '<col>_missing' indicators, '<col>=<category>'
        ('<col>=(missing)' for the missing category)."""
        names = self.numeric + [f"{n}_missing" for n in self.indicator_names]
        return names + [f"{c}={v if v != MISSING_CATEGORY else '(missing)'}"
                        for c, cats in zip(self.text, self.categories) for v in cats]

    def design_columns(self) -> list[str]:
        """The input column of each coefficient (``design_names``' order): an indicator's and a category's
        column are the column they describe."""
        return (self.numeric + self.indicator_names
                + [c for c, cats in zip(self.text, self.categories) for _ in cats])

    def unused_columns(self, weight: np.ndarray) -> list[str]:
        """Input columns whose every coefficient is exactly 0 in ``weight`` (n_outputs, n_design).

        An L1 penalty leaves such columns: a device need not measure them.
        """
        used = set(np.asarray(self.design_columns())[np.any(np.asarray(weight) != 0, axis=0)].tolist())
        return [c for c in self.columns if c not in used]

    # -- encoding rows ------------------------------------------------------------------

    def remaps(self, vocab: dict[str, list[str]]) -> list[np.ndarray]:
        """Per text column, vocabulary index -> slot, with one more entry for a missing cell."""
        out = []
        for name, cats, offset in zip(self.text, self.categories, self.offsets):
            index = {v: offset + i for i, v in enumerate(cats)}
            missing = index.pop(MISSING_CATEGORY, self.unknown_slot)  # the readers never put "" in a vocabulary
            out.append(np.array([index.get(v, self.unknown_slot) for v in vocab[name]] + [missing], dtype=np.int64))
        return out

    def encode(self, raw: np.ndarray, remaps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw rows (m, n_columns) -> (numeric design float64 (m, n_numeric), slots int64 (m, n_text) or None)."""
        if not self.text:  # every column numeric: no copy of the chunk to pick them
            return self.standardize(raw), None
        layout = Layout(self.columns, self.kinds)
        slots = np.empty((raw.shape[0], len(self.text)), dtype=np.int64)
        for j, (pos, remap) in enumerate(zip(layout.text_positions, remaps)):
            codes = raw[:, pos]
            slots[:, j] = remap[np.where(np.isnan(codes), remap.size - 1, codes).astype(np.int64)]
        return self.standardize(raw[:, layout.numeric_positions]), slots

    def encode_values(self, numbers: np.ndarray, text: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Values as a model's inputs take them -> what ``encode`` gives.

        numbers : (m, n_numeric columns) float, NaN where missing
        text : (m, n_text) strings (any object), "" or a missing token where missing
        """
        slots = self.slots_of(text) if self.text else None
        return self.standardize(np.asarray(numbers, dtype=np.float64)), slots

    def slots_of(self, text: np.ndarray) -> np.ndarray:
        """Text values (m, n_text) -> the slot of each one's category (int64 (m, n_text)); unseen -> unknown_slot."""
        slots = np.empty((text.shape[0], len(self.text)), dtype=np.int64)
        for j, (cats, offset) in enumerate(zip(self.categories, self.offsets)):
            index = {v: offset + i for i, v in enumerate(cats)}
            missing = index.get(MISSING_CATEGORY, self.unknown_slot)
            slots[:, j] = [missing if is_missing_value(v) else index.get(as_text(v), self.unknown_slot)
                           for v in text[:, j]]
        return slots

    def standardize(self, numbers: np.ndarray) -> np.ndarray:
        """Numeric columns (m, n_numeric columns) float64 -> imputed, indicators added, standardized."""
        if self.impute is not None:
            missing = np.isnan(numbers)
            if missing.any():
                numbers = np.where(missing, self.fill, numbers)
            if self.indicators:
                numbers = np.concatenate([numbers, missing[:, self.indicators].astype(np.float64)], axis=1)
        out = numbers - self.mean  # one chunk-sized temporary: the streamed chunks' memory budget counts them
        out /= self.scale
        return out

    # -- checkpoint ---------------------------------------------------------------------

    def to_state(self) -> dict:
        """Plain values only (a weights_only checkpoint holds them)."""
        return {
            "columns": list(self.columns), "kinds": list(self.kinds), "impute": self.impute,
            "fill": [None if math.isnan(v) else float(v) for v in self.fill], "indicators": list(self.indicators),
            "categories": [list(c) for c in self.categories],
            "low": [float(v) for v in self.low], "high": [float(v) for v in self.high],
        }

    @classmethod
    def from_state(cls, state: dict, mean, scale) -> Encoding:
        fill = np.array([math.nan if v is None else v for v in state["fill"]], dtype=np.float64)
        return cls(list(state["columns"]), list(state["kinds"]), state["impute"], fill, list(state["indicators"]),
                   np.asarray(mean, dtype=np.float64), np.asarray(scale, dtype=np.float64),
                   [list(c) for c in state["categories"]], np.asarray(state["low"], dtype=np.float64),
                   np.asarray(state["high"], dtype=np.float64))

    @classmethod
    def plain(cls, columns: Sequence[str], mean, scale) -> Encoding:
        """A numeric-only encoding without imputation (a checkpoint written before encodings existed)."""
        d = len(columns)
        return cls(list(columns), [NUMERIC] * d, None, np.full(d, math.nan), [], np.asarray(mean, np.float64),
                   np.asarray(scale, np.float64), [], np.full(d, -math.inf), np.full(d, math.inf))



def value_ids(encoding: Encoding) -> tuple[dict[str, int], np.ndarray]:
    """(id of each text value in the union of all columns' categories, slot of (id, column)).

    The missing spellings share one id; one more id stands for any unseen value. The slot
    table is int64 (n_ids, n_text): that column's category, its missing category, or
    ``unknown_slot``.
    """
    values = sorted({v for cats in encoding.categories for v in cats if v != MISSING_CATEGORY})
    ids = {v: i for i, v in enumerate(values)}
    missing, unseen = len(values), len(values) + 1
    slots = np.full((unseen + 1, len(encoding.text)), encoding.unknown_slot, dtype=np.int64)
    for j, (cats, offset) in enumerate(zip(encoding.categories, encoding.offsets)):
        for i, v in enumerate(cats):
            slots[missing if v == MISSING_CATEGORY else ids[v], j] = offset + i
    return {**ids, **{token: missing for token in MISSING_TOKENS}}, slots


def category_lookup(encoding: Encoding, source: str, target: str) -> tuple[list, list]:
    """The encoding's part of the ONNX graph: strings ``source`` (batch, n_text) -> int64 ``target``, each
    cell's ``value_ids`` id.

    One ai.onnx.ml LabelEncoder over the whole tensor: a hash lookup per cell, whatever
    the number of categories, and no per-column split (splitting a string tensor copies
    every string, which cost more than the lookups on 400k x 3 cells). The graph then
    takes each (id, column)'s coefficients from a table built with ``value_ids``' slots.
    Returns (nodes, extra opset imports); onnx is imported here only, at export.
    """
    from onnx import helper

    ids, slots = value_ids(encoding)
    node = helper.make_node("LabelEncoder", [source], [target], domain="ai.onnx.ml", name="edgelr_category_ids",
                            keys_strings=list(ids), values_int64s=list(ids.values()), default_int64=slots.shape[0] - 1)
    return [node], [helper.make_opsetid("ai.onnx.ml", 3)]
