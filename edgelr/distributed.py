"""Data-parallel training under torchrun, with torch.distributed (gloo on CPU, nccl on GPU).

Every rank reads and holds a share of the rows. The objective's sums (loss, gradient),
the standardization moments and the metrics are combined over ranks, so each rank runs the same
L-BFGS steps on the same numbers as one process holding every row would.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from edgelr.data import (
    DEFAULT_READ,
    Dataset,
    ReadOptions,
    checked_weights,
    encode_labels,
    integral_as_int,
    open_table,
    read_csv,
    read_numeric_share,
)
from edgelr.encoding import ColumnStats, Ranks
from edgelr.errors import ConfigError
from edgelr.metrics import MetricsAccumulator
from edgelr.outofcore import CachedTable, cache_csv, cache_csv_share


@dataclass
class Cluster(Ranks):
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, tensor: torch.Tensor, what: str = "summing the objective") -> torch.Tensor:
        """Elementwise sum over ranks (a new tensor; the argument is left as it was)."""
        out = tensor.detach().clone()
        with self._collective(what):
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    # -- edgelr.encoding.Ranks: the encoding's statistics over every rank's rows --------

    def merge_stats(self, local: ColumnStats) -> ColumnStats:
        """Combine every rank's column statistics, in rank order, so all ranks get the same result."""
        gathered: list[ColumnStats | None] = [None] * self.world_size
        with self._collective("combining the encoding statistics"):
            dist.all_gather_object(gathered, local)
        total = gathered[0]
        for part in gathered[1:]:
            total = total.merge(part)
        return total

    def sum_array(self, values: np.ndarray) -> np.ndarray:
        """A numpy array summed over ranks (int64 or float64)."""
        out = torch.from_numpy(np.ascontiguousarray(values)).to(self.device)
        with self._collective("combining the encoding statistics"):
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.cpu().numpy()

    def gather(self, values: np.ndarray) -> np.ndarray:
        return self.gather_rows(values)

    def gather_rows(self, values: np.ndarray) -> np.ndarray:
        """Every rank's 1-D float64 values, concatenated in rank order, on every rank."""
        local = torch.as_tensor(np.asarray(values, dtype=np.float64), device=self.device)
        sizes = [torch.zeros(1, dtype=torch.int64, device=self.device) for _ in range(self.world_size)]
        with self._collective("gathering per-row values"):
            dist.all_gather(sizes, torch.tensor([local.numel()], dtype=torch.int64, device=self.device))
            padded = torch.zeros(max(int(n) for n in sizes), dtype=torch.float64, device=self.device)
            padded[: local.numel()] = local
            parts = [torch.empty_like(padded) for _ in range(self.world_size)]
            dist.all_gather(parts, padded)
        return torch.cat([part[: int(n)] for part, n in zip(parts, sizes)]).cpu().numpy()

    def combine_metrics(self, local: MetricsAccumulator) -> MetricsAccumulator:
        """Every rank's metric sums added (and, for the ROC AUC, every row's score gathered)."""
        counts, scores, positive = local.parts()
        flag = torch.tensor([float(bool(local.binary))], device=self.device)
        binary = bool(self.sum(flag, "combining the metrics").item())
        counts = self.sum(torch.as_tensor(counts, device=self.device), "combining the metrics").cpu().numpy()
        if binary:
            scores, positive = self.gather_rows(scores), self.gather_rows(positive)
        return MetricsAccumulator.from_parts(counts, scores, positive, binary=binary)

    def everyone(self, ok: bool) -> bool:
        """Whether ``ok`` holds on every rank (all ranks get the same answer)."""
        return not self.sum(torch.tensor([float(not ok)], device=self.device), "reading the data").item()

    def barrier(self) -> None:
        with self._collective("waiting for rank 0 to write the checkpoint"):
            dist.barrier()

    @contextlib.contextmanager
    def _collective(self, what: str):
        # Another rank that stopped on an error (and printed it) breaks the collective
        # here: one line on this rank too, not the backend's traceback.
        try:
            yield
        except RuntimeError as exc:
            raise ConfigError(f"rank {self.rank}: another rank stopped while {what} (its error is above); "
                              f"expected every rank to run to the end") from exc

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def read_share(path: str | os.PathLike, *, label: str | None, features: list[str] | None, cluster: Cluster,
               options: ReadOptions = DEFAULT_READ, weight: str | None = None) -> Dataset:
    """The CSV as this rank needs it: its own slice of the rows, and every row's label (and weight).

    Each rank parses only its byte range of an all-numeric file; the labels (one number
    per row) and the weights of ``weight`` are gathered so every rank makes the same
    classes, the same stratified split and the same class weights. If any rank cannot
    take that path (text labels, a bad cell, a pipe), every rank reads the whole file
    with the exact reader instead, which names any problem.
    """
    share = None if options.categorical else read_numeric_share(path, label=label, features=features,
                                                                 part=cluster.rank, parts=cluster.world_size,
                                                                 weight=weight)
    if not cluster.everyone(share is not None):
        return read_csv(path, label=label, features=features, options=options, weight=weight)
    feature_names, label_name, X, label_values, weights = share
    classes, y, first_row = _labels_of_all_rows(cluster, path, label_name, label_values)
    return Dataset(X, y, feature_names, classes, label_name, os.fspath(path), first_row=first_row,
                   sample_weight=_weights_of_all_rows(cluster, path, weight, weights))


def cache_share(path: str | os.PathLike, folder: str, *, label: str | None, features: list[str] | None, budget: int,
                cluster: Cluster, options: ReadOptions = DEFAULT_READ, weight: str | None = None) -> CachedTable:
    """``cache_csv`` past the memory budget, each rank caching only its byte range (as read_share)."""
    share = None if options.categorical else cache_csv_share(path, folder, label=label, features=features,
                                                              budget=budget, part=cluster.rank,
                                                              parts=cluster.world_size, weight=weight)
    if not cluster.everyone(share is not None):
        return cache_csv(path, folder, label=label, features=features, budget=budget, options=options, weight=weight)
    feature_names, label_name, cache, label_values, weights = share
    classes, y, first_row = _labels_of_all_rows(cluster, path, label_name, label_values)
    return CachedTable(cache, int(y.size), len(feature_names), y.astype(np.int32), classes, feature_names, label_name,
                       os.fspath(path), first_row=first_row, cached_rows=int(label_values.size),
                       sample_weight=_weights_of_all_rows(cluster, path, weight, weights))


def _weights_of_all_rows(cluster: Cluster, path, weight: str | None, values: np.ndarray | None) -> np.ndarray | None:
    """Every row's weight (rank order), checked as read_csv checks them; None without a weight column."""
    if weight is None:
        return None
    with open_table(path) as table:
        return checked_weights(table, cluster.gather_rows(values), weight)


def _labels_of_all_rows(cluster: Cluster, path, label_name: str, values: np.ndarray) -> tuple[list, np.ndarray, int]:
    """(classes, class index of every row of every rank, this rank's first row) from each rank's label values."""
    counts = cluster.gather_rows(np.array([values.size]))
    where = f"{os.fspath(path)}, column '{label_name}'"
    classes, y = encode_labels(integral_as_int(cluster.gather_rows(values)), where=where)
    return classes, y, int(counts[: cluster.rank].sum())


def check_supported(settings) -> None:
    """Mini-batches are drawn from each rank's own rows, so they would not add up to a
    one-process run; full-batch training (lbfgs, or sgd/adam without --batch-size) does."""
    if settings.batch_size is not None:
        raise ConfigError(f"--batch-size {settings.batch_size} under torchrun: each rank would step on its own "
                          "mini-batches and the ranks' models would drift apart; expected full-batch training "
                          "(no --batch-size) when running data-parallel")


def from_environment(device: torch.device) -> Cluster | None:
    """The torchrun cluster this process belongs to, or None outside torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        # One GPU per rank: the local rank picks it, as torchrun's docs recommend.
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"torch.distributed could not start ({backend}): {exc}; expected to run under "
                          "torchrun, e.g. torchrun --standalone --nproc-per-node 2 -m edgelr train data.csv") from exc
    return Cluster(dist.get_rank(), dist.get_world_size(), device)
