"""Where the training rows live: in memory, or streamed from a binary cache on disk.

The objective only asks a row source for blocks of ``(X, slots, y, sample_weight)`` on the
training device, so full-batch L-BFGS reads each feature once per evaluation, in
cache-sized blocks, whether the rows sit in one tensor, in a binary file bigger than
the memory budget (read back chunk by chunk), or are one rank's share under torchrun.

Blocks are the encoded rows (edgelr.encoding): standardized float32 numeric features,
and for text columns the slot of each row's category (int64), never a one-hot matrix.
Standardization happens in float64 before the cast, so features with a large mean and a
small spread keep their precision. One exception: a caller's numeric array is trained on
where it lies (``InMemoryRows.in_place``), its blocks the raw rows, and the
standardization folded into the parameters (``Affine``) -- the user's data is not copied.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from edgelr import kernels
from edgelr.data import CACHE_CELLS, Moments, check_finite_matrix
from edgelr.encoding import (
    ONE_PROCESS,
    ColumnStats,
    Encoding,
    EncodingSpec,
    Layout,
    Ranks,
    fit_encoding,
    weighted_stats_of,
)
from edgelr.errors import DataError

# Rows per block: about 8 MB of float32 features, so a block stays in the CPU's shared
# cache between the forward product and the gradient product while two threads work
# (measured faster than 1, 2 and 4 MB blocks with two threads).
_BLOCK_BYTES = 8 * 2**20
_PILOT_ROWS = 1_024  # rows whose mean centres the float32 copy before the true mean is known
# Folding the standardization into float32 products costs about |mean| / scale times
# their rounding: up to this many spreads it stays far below the L-BFGS tolerance.
_FOLD_RATIO = 8.0

# X (m, d) float32, slots (m, n_text) int64 or None, y (m,), weight (m,) or None
Block = tuple[torch.Tensor, "torch.Tensor | None", torch.Tensor, "torch.Tensor | None"]
Fitter = Callable[[ColumnStats], Encoding]  # this rank's stats of its rows -> the encoding
Encoder = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]  # raw rows -> (design float64, slots)


def block_rows(n_features: int) -> int:
    """Rows per block for ``n_features`` float32 columns (between 1,024 and 65,536)."""
    return int(min(65_536, max(1_024, _BLOCK_BYTES // (4 * max(n_features, 1)))))


class Affine:
    """What a row source's blocks hold, against the model's standardized numeric features.

    The identity (``Affine()``) for blocks that are the standardized features. For raw
    rows (``Affine.folding``): feature j is (x_j - mean_j) / scale_j. Consumers of blocks
    call ``block`` on each (in their own thread) and ``fold`` on the parameters: a
    block's product with the folded weights, plus the folded bias, is the product of the
    standardized rows with the model's. ``unfold`` and ``hessian`` take sums over blocks
    back to the model's coordinates.
    """

    def __init__(self, center: torch.Tensor | None = None, delta: torch.Tensor | None = None,
                 inv_scale: torch.Tensor | None = None):
        # A block is x - center (center None: x); feature = (block - delta) * inv_scale.
        self.center, self.delta, self.inv_scale = center, delta, inv_scale

    @classmethod
    def folding(cls, mean: np.ndarray, scale: np.ndarray, dtype: np.dtype, device: torch.device) -> Affine:
        """For raw rows of ``dtype`` with the encoding's mean and scale (float64)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = float(np.max(np.abs(mean) / scale, initial=0.0))
        # Past _FOLD_RATIO spreads the products would lose digits to the mean: each block
        # is centred first (a cache-sized temporary), on the mean rounded to X's type.
        center = mean.astype(dtype) if ratio > _FOLD_RATIO else None
        delta = mean if center is None else mean - center.astype(np.float64)
        return cls(None if center is None else torch.as_tensor(center, device=device),
                   torch.as_tensor(delta, dtype=torch.float64, device=device),
                   torch.as_tensor(1.0 / scale, dtype=torch.float64, device=device))

    def block(self, X: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """A block of the source, in the products' ``dtype``, ready for the folded parameters."""
        if self.center is not None:
            X = X - self.center
        return X.to(dtype)

    def fold(self, W: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(W', b') with block @ W'^T + b' == standardized rows @ W^T + b; b' in float64.

        The folded bias carries sum_j W_j mean_j / scale_j, which can be large: callers
        add it to the float32 products in float64.
        """
        if self.inv_scale is None:
            return W, b.double()
        d = self.inv_scale.numel()
        Wn = W[:, :d].double() * self.inv_scale  # (k, d)
        return torch.cat([Wn.to(W.dtype), W[:, d:]], dim=1), b.double() - Wn @ self.delta

    def unfold(self, dW: torch.Tensor, db: torch.Tensor) -> torch.Tensor:
        """d/dW from the float64 sums G^T block (k, n_design) and G.sum(0) (k,)."""
        if self.inv_scale is None:
            return dW
        d = self.inv_scale.numel()
        dW = dW.clone()
        dW[:, :d] = (dW[:, :d] - db[:, None] * self.delta) * self.inv_scale
        return dW

    def hessian(self, H: torch.Tensor) -> torch.Tensor:
        """A binary model's Hessian in [w, b] from the one over [block, 1] (float64, (d+1, d+1))."""
        if self.inv_scale is None:
            return H
        d = self.inv_scale.numel()
        T = torch.eye(d + 1, dtype=torch.float64, device=H.device)  # [feature, 1] = T [block, 1]
        T[:d, :d] = torch.diag(self.inv_scale)
        T[:d, d] = -self.inv_scale * self.delta
        return T @ H @ T.T


class InMemoryRows:
    """Encoded rows held in tensors on the training device.

    X : (n, d) float32 standardized numeric features, or (``affine`` not the identity)
    the caller's raw numeric rows, float32 or float64, wherever they lie;
    slots : (n, n_text) int64 or None; y : (n,) int64; sample_weight : (n,) float64 or None.
    """

    parallel_blocks = True  # blocks are views of one tensor: several threads may sum them at once

    def __init__(self, X: torch.Tensor, slots: torch.Tensor | None, y: torch.Tensor,
                 sample_weight: torch.Tensor | None, affine: Affine | None = None):
        self.X, self.slots, self.y, self.sample_weight = X, slots, y, sample_weight
        self.affine = affine or Affine()
        self.n = self.X.shape[0]
        # Centred blocks are a temporary each: a quarter of the size keeps those of all
        # threads in the CPU cache and out of the process's peak memory.
        self.block_rows = block_rows(self.X.shape[1]) // (4 if self.affine.center is not None else 1)

    @classmethod
    def in_place(cls, X: np.ndarray, y: np.ndarray, sample_weight, mean: np.ndarray, scale: np.ndarray,
                 device: torch.device) -> InMemoryRows:
        """The caller's float32 or float64 numeric X (CPU), trained on where it lies: no copy of it.

        The standardization with ``mean`` and ``scale`` is folded into the parameters.
        """
        return cls(_tensor_quietly(torch.from_numpy, X), None, *_labels(y, sample_weight, device),
                   Affine.folding(mean, scale, X.dtype, device))

    @classmethod
    def encoded(cls, X: np.ndarray, y: np.ndarray, sample_weight, encode: Encoder, device: torch.device,
                index: np.ndarray | None = None) -> InMemoryRows:
        """Rows ``index`` of raw X (all when None), encoded by ``encode``; y and sample_weight align with ``index``."""
        features, slots = encode_to_tensors(X, encode, device, index=index)
        return cls(features, slots, *_labels(y, sample_weight, device))

    @classmethod
    def standardized(cls, X: np.ndarray, y: np.ndarray, sample_weight, mean, scale, device: torch.device,
                     index: np.ndarray | None = None) -> InMemoryRows:
        """Rows ``index`` of raw numeric X, standardized with a known mean and scale."""
        return cls.encoded(X, y, sample_weight, lambda raw: ((raw - mean) / scale, None), device, index=index)

    @classmethod
    def fitted(cls, X: np.ndarray, y: np.ndarray, sample_weight, fit: Fitter, device: torch.device,
               index: np.ndarray | None = None, workers: int = 1,
               row_weight: np.ndarray | None = None) -> tuple[InMemoryRows, Encoding]:
        """(rows, encoding): rows ``index`` of raw numeric X, standardized with ``fit(their stats)``.

        For rows without text columns or missing cells: X is read once for both the
        statistics and the copy; see ``standardize_fitted``.
        """
        X32, encoding = standardize_fitted(X, fit, device, index=index, workers=workers, row_weight=row_weight)
        return cls(X32, None, *_labels(y, sample_weight, device)), encoding

    def subsample(self, step: int) -> InMemoryRows:
        """Every ``step``-th row: spread over the whole file even when it is sorted.

        The features are a strided view (raw rows in place) or a copy (a standardized
        copy, whose passes then read only the subsample's bytes).
        """
        w = None if self.sample_weight is None else self.sample_weight[::step].contiguous()
        slots = None if self.slots is None else self.slots[::step].contiguous()
        X = self.X[::step] if self.affine.inv_scale is not None else self.X[::step].contiguous()
        return InMemoryRows(X, slots, self.y[::step].contiguous(), w, self.affine)

    def blocks(self) -> Iterator[Block]:
        for start in range(0, self.n, self.block_rows):
            stop = start + self.block_rows
            w = None if self.sample_weight is None else self.sample_weight[start:stop]
            slots = None if self.slots is None else self.slots[start:stop]
            yield self.X[start:stop], slots, self.y[start:stop], w

    def minibatch_pools(self) -> list[Block]:
        """What sgd/adam shuffle and draw mini-batches from: every row at once."""
        return [(self.X, self.slots, self.y, self.sample_weight)]


def encode_in_memory(X: np.ndarray, layout: Layout, spec: EncodingSpec, y: np.ndarray, sample_weight,
                     device: torch.device, *, index: np.ndarray | None = None, ranks: Ranks = ONE_PROCESS,
                     in_place: bool = False, row_weight: np.ndarray | None = None) -> tuple[InMemoryRows, Encoding]:
    """(rows, encoding): rows ``index`` of raw X (this rank's training rows), encoded with the encoding fitted on them.

    ``sample_weight`` weighs the rows in the objective (class weights included);
    ``row_weight`` (aligned with y), the caller's own row weights, also weighs the
    encoding's statistics: a row of weight 2 counts twice in the mean, the spread, a mean
    fill and the categories seen, so it is the row twice, as scikit-learn defines a
    sample weight. A median fill is of the rows unweighted (as SimpleImputer's, which
    takes no weights), and so is the rest of such an encoding.

    ``in_place``: X is the caller's array. A numeric float32 or float64 one (no missing
    cells, every row, on the CPU) is then trained on where it lies, after one pass for
    its statistics (``InMemoryRows.in_place``). Otherwise numeric columns without
    imputation take one read of X for the statistics and a standardized float32 copy
    (``standardize_fitted``), whose passes read half the bytes of float64 rows; and
    anything else one pass to fit the encoding (a median takes a few more) and one to
    encode.
    """
    workers = torch.get_num_threads()  # the cores the statistics pass may use, read before they are turned off
    with one_torch_thread():
        return _encode_in_memory(X, layout, spec, y, sample_weight, device, index, ranks, in_place, workers,
                                 None if spec.impute == "median" else row_weight)


def _encode_in_memory(X, layout, spec, y, sample_weight, device, index, ranks, in_place, workers, row_weight):
    if layout.plain and spec.impute is None:
        def fit(stats: ColumnStats) -> Encoding:
            if not (np.isfinite(stats.moments.mean).all() and np.isfinite(stats.moments.m2).all()):
                check_finite_matrix(X)  # names the NaN or infinity (or the overflow is reported by the fit)
            return fit_encoding(layout, spec, lambda: (), stats=stats, ranks=ranks)

        caller_array = in_place and _every_row(index, X.shape[0]) and device.type == "cpu"
        if caller_array and X.dtype in (np.float32, np.float64):
            encoding = fit(plain_stats(X, workers=workers, weight=row_weight)[0])
            return InMemoryRows.in_place(X, y, sample_weight, encoding.mean, encoding.scale, device), encoding
        return InMemoryRows.fitted(X, y, sample_weight, fit, device, index=index, workers=workers,
                                   row_weight=row_weight)
    stats = None if row_weight is None else _weighted_stats(X, index, layout, row_weight)
    encoding = fit_encoding(layout, spec, lambda: (part for _, part in row_chunks(X, index, CACHE_CELLS)),
                            stats=stats, ranks=ranks)
    return InMemoryRows.encoded(X, y, sample_weight, encoder(encoding, layout), device, index=index), encoding


def _weighted_stats(X: np.ndarray, index: np.ndarray | None, layout: Layout, weight: np.ndarray) -> ColumnStats:
    """The stats of rows ``index`` of raw X, each row counted as many times as it weighs (``ColumnStats.of``)."""
    return weighted_stats_of(((np.asarray(part, dtype=np.float64), weight[start : start + part.shape[0]])
                              for start, part in row_chunks(X, index, CACHE_CELLS)), layout)


def encoder(encoding: Encoding, layout: Layout) -> Encoder:
    """raw rows -> (design float64, slots) with ``encoding``, for rows read with ``layout``'s vocabularies."""
    remaps = encoding.remaps(layout.vocab)
    return lambda raw: encoding.encode(raw, remaps)


def _labels(y: np.ndarray, sample_weight, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    weights = None if sample_weight is None else _tensor_quietly(torch.as_tensor, sample_weight,
                                                                    dtype=torch.float64, device=device)
    return _tensor_quietly(torch.as_tensor, y, dtype=torch.int64, device=device), weights


def _tensor_quietly(make: Callable, array: np.ndarray, **kwargs) -> torch.Tensor:
    """``make(array, **kwargs)`` (torch.from_numpy, torch.as_tensor) without torch's warning on a read-only
    array: np.load's memory maps and pandas 3's arrays (copy on write) are read-only, and training
    only ever reads its rows, labels and weights."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        return make(array, **kwargs)


class StreamedRows:
    """Rows read back from a raw float64 cache in chunks, one pass per evaluation.

    ``read(start, stop)`` returns rows [start, stop) of the cache as float64;
    ``index`` (sorted row numbers) selects this source's rows (the training split,
    one rank's share); ``chunk_rows`` bounds the memory a pass needs.
    """

    # Each block holds its chunk: more blocks in flight on several threads would hold
    # more chunks than the memory budget allows.
    parallel_blocks = False
    affine = Affine()  # blocks are the standardized features

    def __init__(self, read: Callable[[int, int], np.ndarray], y: np.ndarray, index: np.ndarray, sample_weight,
                 encode: Encoder | None, device: torch.device, chunk_rows: int, n_features: int = 1):
        self.read, self.y, self.index = read, y, index
        self.sample_weight = sample_weight  # (len(index),) aligned with index, or None
        self.encode, self.device = encode, device  # encode None: a source for raw passes (chunks()) only
        self.chunk_rows = max(1, chunk_rows)
        self.n = int(index.size)
        self.block_rows = block_rows(n_features)

    def chunks(self) -> Iterator[tuple[slice, np.ndarray]]:
        """(positions in ``index``, raw float64 features) per chunk, in file order.

        Each chunk is one contiguous read of at most ``chunk_rows`` rows of the file, then
        the selected rows of it: a sparse index (the validation split, one rank's share)
        never makes a read larger than the budget allows.
        """
        lo = 0
        while lo < self.n:
            first = int(self.index[lo])
            hi = int(np.searchsorted(self.index, first + self.chunk_rows, side="left"))
            rows = self.index[lo:hi]
            raw = self.read(first, int(rows[-1]) + 1)
            if raw.shape[0] != rows.size:
                raw = raw[rows - first]
            yield slice(lo, hi), raw
            lo = hi

    def minibatch_pools(self) -> Iterator[Block]:
        """What sgd/adam shuffle and draw mini-batches from: one block at a time."""
        return self.blocks()

    def subsample(self, step: int) -> InMemoryRows | None:
        """Every ``step``-th row (the rows InMemoryRows.subsample takes), read into memory in one pass.

        None when they would take more rows than one chunk: the memory budget bounds them.
        """
        keep = np.arange(0, self.n, step)
        if keep.size > self.chunk_rows:
            return None
        parts = []  # encoded chunk by chunk: no float64 copy of them all
        for where, raw in self.chunks():
            lo, hi = np.searchsorted(keep, [where.start, where.stop])
            parts.append(encode_to_tensors(raw[keep[lo:hi] - where.start], self.encode, torch.device("cpu")))
        X = torch.cat([p[0] for p in parts]).to(self.device)
        slots = None if parts[0][1] is None else torch.cat([p[1] for p in parts]).to(self.device)
        weights = None if self.sample_weight is None else self.sample_weight[keep]
        return InMemoryRows(X, slots, *_labels(self.y[self.index[keep]], weights, self.device))

    def blocks(self) -> Iterator[Block]:
        pin = self.device.type == "cuda"  # pinned host memory: the copy to the GPU overlaps
        for where, raw in self.chunks():
            X, slots = encode_to_tensors(raw, self.encode, self.device, pin=pin)
            y = torch.as_tensor(self.y[self.index[where]], dtype=torch.int64).to(self.device, non_blocking=pin)
            w = (None if self.sample_weight is None
                 else torch.as_tensor(self.sample_weight[where], dtype=torch.float64).to(self.device))
            for start in range(0, X.shape[0], self.block_rows):
                stop = start + self.block_rows
                yield (X[start:stop], None if slots is None else slots[start:stop], y[start:stop],
                       None if w is None else w[start:stop])


def encode_to_tensors(X: np.ndarray, encode: Encoder, device: torch.device, *, pin: bool = False,
                      index: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``encode``(X[index]) chunk by chunk: (float32 (n, d) C-ordered, int64 slots (n, n_text) or None).

    The design is computed in float64 and stored float32; no full-size float64
    temporary, and X may be in any memory order (pandas hands columns over as a
    Fortran-ordered array).
    """
    n = X.shape[0] if index is None else index.size
    pin = pin and torch.cuda.is_available()
    out = slots = None
    for start, part in row_chunks(X, index, CACHE_CELLS):
        design, codes = encode(np.asarray(part, dtype=np.float64))
        if out is None:
            d = design.shape[1]
            out = torch.empty((n, d), dtype=torch.float32, pin_memory=True) if pin else _empty_float32(n, d)
            slots = None if codes is None else torch.empty((n, codes.shape[1]), dtype=torch.int64)
        _check_float32(design, start, index)
        out.numpy()[start : start + part.shape[0]] = design
        if slots is not None:
            slots.numpy()[start : start + part.shape[0]] = codes
    if out is None:  # no rows
        design, codes = encode(np.zeros((0, X.shape[1])))
        out = torch.zeros(design.shape, dtype=torch.float32)
        slots = None if codes is None else torch.zeros(codes.shape, dtype=torch.int64)
    if device.type == "cpu":
        return out, slots
    return out.to(device, non_blocking=pin), None if slots is None else slots.to(device)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32(design: np.ndarray, start: int, index: np.ndarray | None) -> None:
    """DataError naming the first row whose standardized value is past float32 (rows the encoding was
    not fitted on, such as the validation split: a value there may dwarf the training rows')."""
    if not design.size or (design.max() <= _FLOAT32_MAX and design.min() >= -_FLOAT32_MAX):
        return  # two reductions of a cache-sized chunk, no temporary
    past = np.argwhere(np.abs(design) > _FLOAT32_MAX)
    if not past.size:
        return  # a NaN made the extremes NaN: the caller's checks name it
    i, j = past[0]
    row = int(start + i if index is None else index[start + i])
    raise DataError(f"data row {row + 1}, feature column {j}: the value standardizes to {design[i, j]:.3g}, past "
                    "float32; expected values on the scale of the training rows")


def standardize_fitted(X: np.ndarray, fit: Fitter, device: torch.device, *, index: np.ndarray | None = None,
                       workers: int = 1, row_weight: np.ndarray | None = None) -> tuple[torch.Tensor, Encoding]:
    """(float32 standardized X[index], encoding), reading X once (numeric rows without missing cells).

    The mean is only known after the pass, so the pass stores X - pilot in float32
    (``plain_stats``): close to the true mean, so the copy keeps the precision of a
    centred value. ``fit`` turns the pass's moments and ranges into the encoding, and a
    float32-only pass over the copy shifts it by mean - pilot and scales it.
    """
    n = X.shape[0] if index is None else index.size
    out = _empty_float32(n, X.shape[1])
    stats, pilot = plain_stats(X, index, out=out, workers=workers, weight=row_weight)
    encoding = fit(stats)
    mean, scale = encoding.mean, encoding.scale
    inv_scale = torch.as_tensor(1.0 / scale, dtype=torch.float32)
    # (copy - (mean - pilot)) / scale as one fused pass: copy * inv_scale + shift
    torch.addcmul(torch.as_tensor((pilot - mean) / scale, dtype=torch.float32), out, inv_scale, out=out)
    return out.to(device), encoding


def plain_stats(X: np.ndarray, index: np.ndarray | None = None, *, out: torch.Tensor | None = None,
                workers: int = 1, weight: np.ndarray | None = None) -> tuple[ColumnStats, np.ndarray]:
    """(moments and ranges of X[index], pilot): one pass over numeric rows without missing cells.

    Sums are taken of X - pilot, pilot the mean of ~1,000 rows spread over X: close to
    the true mean, so a float32 X keeps the precision of centred values, and the chunks'
    float64 sums add up without a pairwise merge. ``out`` (float32, X[index]'s shape):
    the same pass stores X[index] - pilot there (``standardize_fitted``'s copy).
    ``workers`` threads sum chunks at once (the caller turns torch's own threads off:
    ``encode_in_memory``). ``weight`` (X[index]'s rows): each row counts as many times as
    it weighs in the moments (the pilot too); the ranges are of every row.
    """
    n = X.shape[0] if index is None else index.size
    spread = np.linspace(0, n - 1, min(n, _PILOT_ROWS)).astype(np.int64)
    with np.errstate(over="ignore", invalid="ignore"):  # huge or non-finite values are reported by the fit
        sample = np.asarray(X[spread if index is None else index[spread]], dtype=np.float64)
        heavy = weight is not None and weight[spread].sum() > 0  # weighted, the rows of weight 0 count not at all
        pilot = np.zeros(X.shape[1]) if not n else (np.average(sample, axis=0, weights=weight[spread]) if heavy
                                                     else sample.mean(axis=0))
    dtype = np.float32 if X.dtype == np.float32 else np.float64  # float32 rows are summed in float32
    shift = pilot.astype(dtype)
    pilot = shift.astype(np.float64)  # exactly the shift the sums are taken from
    scratch = threading.local()  # each thread's buffer for a chunk's deviations
    d = X.shape[1]

    def chunk_sums(chunk: tuple[int, np.ndarray]) -> np.ndarray:
        """[sum of x - pilot, sum of (x - pilot)^2, min, max] (4, d) float64 of one chunk; weighted, each
        row's terms times its weight."""
        start, part = chunk
        part = np.asarray(part, dtype=dtype)
        if out is None and weight is None:
            compiled = kernels.moment_sums(part, shift)  # one sweep of a float32 chunk (edgelr.kernels)
            if compiled is not None:
                return compiled
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, huge values: the fit names them
            dev = _deviations(part, shift, scratch)
            if out is not None:
                out.numpy()[start : start + part.shape[0]] = dev
            if weight is None:
                return np.stack([*_sum_and_squares(dev), *_min_and_max(part)])
            # The ranges are of every row, weight 0 too: their NaN or infinity is found as without weights.
            w = weight[start : start + part.shape[0]]
            return np.stack([w @ dev, w @ np.square(dev, dtype=np.float64), *_min_and_max(part)])

    sums = np.zeros((2, d))
    low, high = np.full(d, np.inf), np.full(d, -np.inf)
    # Two workers halve the pass. Smaller chunks than 2 MB were slower: the dispatch per
    # chunk outweighed the cache they saved. Overflow and NaN are no warning here: the
    # encoding's fit names the first bad value (edgelr.data.check_finite_matrix).
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for part in ordered_map(chunk_sums, row_chunks(X, index, CACHE_CELLS), workers):
            sums += part[:2]  # in chunk order: the same sums whatever the thread count
            np.minimum(low, part[2], out=low)  # NaN propagates: the fit reports it
            np.maximum(high, part[3], out=high)
        count = float(n) if weight is None else float(weight.sum())  # rows, or the weights' sum
        s1, s2 = sums
        total = count if count > 0 else 1.0
        moments = Moments(count, pilot + s1 / total, s2 - s1 * (s1 / total))
    return ColumnStats.from_moments(moments, low, high), pilot


# Reductions over a chunk's rows run on a view of it with r of its rows side by side on
# each line, r = rows // _LINES_PER_SUM: numpy reduces over a 2-D array's rows one row at a
# time, and rows of ~100 values made every chunk's subtraction, sums and extremes 2-4x
# slower than lines of a few thousand values.
_LINES_PER_SUM = 64


def _wide(a: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(a's first rows as ~_LINES_PER_SUM lines of r rows side by side, the rows left over), views both.

    None when that view would be a copy (a not C-ordered) or has no lines. Each column's
    value of the j-th row in a line sits at position (j, column) of that line's (r, d)
    reshape, so a reduction over the lines followed by one over the r positions reduces
    over every row: float32 partial sums of ~64 values (relative error ~1e-7 typically),
    then float64 across the r positions.
    """
    m, d = a.shape
    r = max(1, m // _LINES_PER_SUM)
    head = m - m % r
    if not a.flags.c_contiguous or head == 0 or d == 0:
        return None
    return a[:head].reshape(-1, d * r), a[head:]


def _deviations(part: np.ndarray, shift: np.ndarray, scratch: threading.local) -> np.ndarray:
    """part - shift in a buffer of this thread's, C-ordered (part may be in any order)."""
    buffer = getattr(scratch, "buffer", None)
    if buffer is None or buffer.size < part.size:
        buffer = scratch.buffer = np.empty(part.size, dtype=part.dtype)  # reused: no page faults per chunk
    dev = buffer[: part.size].reshape(part.shape)
    wide = _wide(part)
    if wide is None:
        return np.subtract(part, shift, out=dev)
    head, rest = wide
    r = head.shape[1] // part.shape[1]
    np.subtract(head, np.tile(shift, r), out=dev[: head.shape[0] * r].reshape(head.shape))
    np.subtract(rest, shift, out=dev[head.shape[0] * r :])
    return dev


def _sum_and_squares(dev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum, sum of squares) over the rows of a C-ordered chunk, float64 (d,) each."""
    wide = _wide(dev)
    if wide is None:
        return dev.sum(axis=0, dtype=np.float64), np.einsum("ij,ij->j", dev, dev).astype(np.float64)
    head, rest = wide
    d = dev.shape[1]
    s1 = head.sum(axis=0).astype(np.float64).reshape(-1, d).sum(axis=0) + rest.sum(axis=0, dtype=np.float64)
    s2 = (np.einsum("ij,ij->j", head, head).astype(np.float64).reshape(-1, d).sum(axis=0)
          + np.einsum("ij,ij->j", rest, rest).astype(np.float64))
    return s1, s2


def _min_and_max(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) over the rows of a chunk, float64 (d,) each; NaN where a column has one."""
    wide = _wide(part)
    if wide is None:
        return part.min(axis=0).astype(np.float64), part.max(axis=0).astype(np.float64)
    head, rest = wide
    d = part.shape[1]
    low, high = head.min(axis=0).reshape(-1, d).min(axis=0), head.max(axis=0).reshape(-1, d).max(axis=0)
    if rest.shape[0]:
        low, high = np.minimum(low, rest.min(axis=0)), np.maximum(high, rest.max(axis=0))
    return low.astype(np.float64), high.astype(np.float64)


def _empty_float32(n: int, d: int) -> torch.Tensor:
    """An uninitialized (n, d) float32 tensor from numpy's allocator.

    numpy asks the kernel for huge pages on large arrays (madvise), so the first write
    to the array costs about a quarter of what it costs on torch.empty's pages
    (measured: 21 ms against 93 ms for 400 MB), a cost every row pays once.
    """
    return torch.from_numpy(np.empty((n, d), dtype=np.float32))


@contextlib.contextmanager
def one_torch_thread():
    """torch's intra-op threads off (restored after), for passes over rows.

    The passes are bound by reading the rows, and where they need both cores they sum
    blocks on threads of their own (``ordered_map``). An OpenMP team of torch's was no
    faster there, held 5-8 MiB more on 1M x 100, and on a loaded machine made a pass
    5-30x slower: its threads spin at every barrier while another process holds a core.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def ordered_map(fn: Callable, items: Iterator, workers: int) -> Iterator:
    """fn(item) for each item, on ``workers`` threads, yielded in order.

    For passes over rows in memory that one core cannot saturate: MKL ran the
    matrix-vector products of one block on one core here (2-core EPYC), numpy reduces on
    one core, and both release the GIL. Items are drawn lazily, at most two per thread
    ahead. Results come back in item order, so sums over them agree to the bit whatever
    the thread count.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def row_chunks(X: np.ndarray, index: np.ndarray | None, cells: int) -> Iterator[tuple[int, np.ndarray]]:
    """(position, rows) of X[index] (all of X when index is None) in chunks of about ``cells`` values."""
    step = max(1, cells // max(X.shape[1], 1))
    if _every_row(index, X.shape[0]):
        index = None  # slices, not gathers
    n = X.shape[0] if index is None else index.size
    for start in range(0, n, step):
        yield start, (X[start : start + step] if index is None else X[index[start : start + step]])


def _every_row(index: np.ndarray | None, n: int) -> bool:
    """Whether ``index`` (sorted unique row numbers, or None for all) selects all n rows, in order."""
    return index is None or (index.size == n and (n == 0 or index[-1] == n - 1))
