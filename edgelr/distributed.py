"""Data-parallel training under torchrun, with torch.distributed (gloo on CPU, nccl on GPU).

Every rank holds a share of the training rows. The objective's sums (loss, gradient)
and the standardization moments are combined over ranks, so each rank runs the same
L-BFGS steps on the same numbers as one process holding every row would.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from edgelr.data import Moments
from edgelr.errors import ConfigError


@dataclass
class Cluster:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, rows: np.ndarray) -> np.ndarray:
        """This rank's rows: every world_size-th, so shares differ by one row at most."""
        return rows[self.rank :: self.world_size]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over ranks (a new tensor; the argument is left as it was)."""
        out = tensor.detach().clone()
        with self._collective("summing the gradient"):
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def merge_moments(self, local: Moments) -> Moments:
        """Combine every rank's moments, in rank order, so all ranks get the same result."""
        gathered: list[Moments | None] = [None] * self.world_size
        with self._collective("combining the standardization statistics"):
            dist.all_gather_object(gathered, local)
        total = Moments(0.0, np.zeros_like(local.mean), np.zeros_like(local.m2))
        for part in gathered:
            total = total.merge(part)
        return total

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
