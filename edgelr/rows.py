"""Where the training rows live: in memory, or streamed from a binary cache on disk.

The objective only asks a row source for blocks of ``(X, y, sample_weight)`` on the
training device, so full-batch L-BFGS reads each feature once per evaluation, in
cache-sized blocks, whether the rows sit in one tensor, in a binary file bigger than
the memory budget (read back chunk by chunk), or are one rank's share under torchrun.

Blocks are standardized float32 features; standardization happens in float64 before
the cast, so features with a large mean and a small spread keep their precision.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch

# Rows per block: about 2 MB of float32 features, so a block stays in the CPU cache
# between the forward product and the gradient product.
_BLOCK_BYTES = 2 * 2**20

Block = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]  # X (m, d) float32, y (m,), weight (m,) or None


def block_rows(n_features: int) -> int:
    """Rows per block for ``n_features`` float32 columns (between 1,024 and 65,536)."""
    return int(min(65_536, max(1_024, _BLOCK_BYTES // (4 * max(n_features, 1)))))


class InMemoryRows:
    """Standardized float32 rows held in one tensor on the training device.

    X : ndarray (n, d) raw features; y : (n,) int64; sample_weight : (n,) or None.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, sample_weight, mean, scale, device: torch.device,
                 index: np.ndarray | None = None):
        # index: the rows of X to hold (y and sample_weight are already aligned with it)
        self.X = standardize_to_tensor(X, mean, scale, device, index=index)  # (n, d) float32
        self.y = torch.as_tensor(y, dtype=torch.int64, device=device)
        self.sample_weight = (None if sample_weight is None
                              else torch.as_tensor(sample_weight, dtype=torch.float64, device=device))
        self.n = self.X.shape[0]
        self._rows = block_rows(self.X.shape[1])

    def blocks(self) -> Iterator[Block]:
        for start in range(0, self.n, self._rows):
            stop = start + self._rows
            w = None if self.sample_weight is None else self.sample_weight[start:stop]
            yield self.X[start:stop], self.y[start:stop], w

    def minibatch_pools(self) -> list[Block]:
        """What sgd/adam shuffle and draw mini-batches from: every row at once."""
        return [(self.X, self.y, self.sample_weight)]


class StreamedRows:
    """Rows read back from a raw float64 cache in chunks, one pass per evaluation.

    ``read(start, stop)`` returns rows [start, stop) of the cache as float64;
    ``index`` (sorted row numbers) selects this source's rows (the training split,
    one rank's share); ``chunk_rows`` bounds the memory a pass needs.
    """

    def __init__(self, read: Callable[[int, int], np.ndarray], y: np.ndarray, index: np.ndarray, sample_weight,
                 mean, scale, device: torch.device, chunk_rows: int):
        self.read, self.y, self.index = read, y, index
        self.sample_weight = sample_weight  # (len(index),) aligned with index, or None
        self.mean, self.scale, self.device = mean, scale, device
        self.chunk_rows = max(1, chunk_rows)
        self.n = int(index.size)
        self._rows = block_rows(mean.size)

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

    def blocks(self) -> Iterator[Block]:
        pin = self.device.type == "cuda"  # pinned host memory: the copy to the GPU overlaps
        for where, raw in self.chunks():
            X = standardize_to_tensor(raw, self.mean, self.scale, self.device, pin=pin)
            y = torch.as_tensor(self.y[self.index[where]], dtype=torch.int64).to(self.device, non_blocking=pin)
            w = (None if self.sample_weight is None
                 else torch.as_tensor(self.sample_weight[where], dtype=torch.float64).to(self.device))
            for start in range(0, X.shape[0], self._rows):
                stop = start + self._rows
                yield X[start:stop], y[start:stop], None if w is None else w[start:stop]


def standardize_to_tensor(X: np.ndarray, mean, scale, device: torch.device, *, pin: bool = False,
                          index: np.ndarray | None = None) -> torch.Tensor:
    """(X[index] - mean) / scale computed in float64, stored float32 (n, d), C-ordered.

    In row blocks with torch's threads: no full-size temporary, and X may be in any memory
    order (pandas hands columns over as a Fortran-ordered array).
    """
    n = X.shape[0] if index is None else index.size
    out = torch.empty((n, X.shape[1]), dtype=torch.float32, pin_memory=pin and torch.cuda.is_available())
    shift = torch.as_tensor(mean, dtype=torch.float64)
    inv_scale = 1.0 / torch.as_tensor(scale, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a read-only array: it is only read here
        for start, part in row_chunks(X, index, 2**19):  # 4 MB float64 temporaries: they stay in the cache
            src = torch.as_tensor(np.asarray(part, dtype=np.float64))
            out[start : start + part.shape[0]] = (src - shift).mul_(inv_scale)
    return out.to(device, non_blocking=pin) if device.type != "cpu" else out


def row_chunks(X: np.ndarray, index: np.ndarray | None, cells: int) -> Iterator[tuple[int, np.ndarray]]:
    """(position, rows) of X[index] (all of X when index is None) in chunks of about ``cells`` values."""
    step = max(1, cells // max(X.shape[1], 1))
    if index is not None and index.size == X.shape[0] and (index.size == 0 or index[-1] == index.size - 1):
        index = None  # every row, in order (sorted unique indices): slices, not gathers
    n = X.shape[0] if index is None else index.size
    for start in range(0, n, step):
        yield start, (X[start : start + step] if index is None else X[index[start : start + step]])


