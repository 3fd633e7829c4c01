"""The self-describing checkpoint (spec section 4).

A dict of plain values and tensors written with ``torch.save`` and read back only with
``torch.load(weights_only=True)``: a file that needs pickle to load is refused, never
executed. The loader needs nothing but the file to rebuild the model.

Version 2 adds ``encoding`` (edgelr.encoding.Encoding.to_state: column kinds,
categories, imputation, training ranges); ``feature_names`` are then the numeric
columns (the ONNX ``features`` input) and ``mean``/``scale`` the numeric design
columns'. A version-1 file is a numeric model without imputation, and still loads.
"""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import torch
from torch import nn

from edgelr import __version__
from edgelr.encoding import Encoding
from edgelr.errors import CheckpointError
from edgelr.fileio import atomic_path
from edgelr.model import LogisticModel, n_outputs, probabilities

FORMAT = "edgelr.checkpoint"
FORMAT_VERSION = 2

# Keys every checkpoint carries, with the Python type each must have.
_REQUIRED = {
    "format": str,
    "format_version": int,
    "feature_names": list,
    "classes": list,
    "mean": torch.Tensor,
    "scale": torch.Tensor,
    "weight": torch.Tensor,
    "bias": torch.Tensor,
    "threshold": float,
    "config": dict,
    "metrics": dict,
    "history": list,
}


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` (see ``_REQUIRED``) atomically, tagged with format and version."""
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, "edgelr_version": __version__, **state}
    _validate(state, os.fspath(path))
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and validate a checkpoint; CheckpointError says why a file is refused."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise CheckpointError(f"{name}: is a directory; expected a .pt written by 'edgelr train'")
    if not os.path.isfile(name):
        raise CheckpointError(f"{name}: no such checkpoint file; expected a .pt written by 'edgelr train'")
    if not zipfile.is_zipfile(name):
        raise CheckpointError(
            f"{name}: not a torch checkpoint ({_guess_kind(name)}); expected a .pt written by 'edgelr train'"
        )
    try:
        state = torch.load(name, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{name}: holds Python objects that are only loadable by running code, which edgelr refuses; "
            "expected a checkpoint written by 'edgelr train'"
        ) from exc
    except Exception as exc:  # torch raises RuntimeError, EOFError, ... for damaged archives
        raise CheckpointError(f"{name}: unreadable or truncated torch file ({type(exc).__name__}); "
                              "expected a checkpoint written by 'edgelr train'") from exc
    _validate(state, name)
    return state


def encoding_of(state: dict) -> Encoding:
    """The checkpoint's encoding (a version-1 file: numeric columns, standardized, no imputation)."""
    if "encoding" in state:
        return Encoding.from_state(state["encoding"], state["mean"].numpy(), state["scale"].numpy())
    return Encoding.plain(state["feature_names"], state["mean"].numpy(), state["scale"].numpy())


class RawModel(nn.Module):
    """The model a checkpoint describes, on raw values: numbers (n, n_numeric columns), NaN where
    missing, and for text columns an (n, n_text) array of strings -> probabilities (n, n_classes).

    The rows are encoded by the checkpoint's encoding (edgelr.encoding, in float64, as
    training encodes them); torch scores the encoded rows.
    """

    def __init__(self, state: dict, dtype: torch.dtype):
        super().__init__()
        self.encoding = enc = encoding_of(state)
        self.model = LogisticModel(enc.n_design, len(state["classes"]), n_numeric=enc.n_numeric, dtype=dtype)
        with torch.no_grad():
            self.model.linear.weight.copy_(state["weight"])
            self.model.linear.bias.copy_(state["bias"])

    def forward(self, x: torch.Tensor, text: np.ndarray | None = None) -> torch.Tensor:
        if self.encoding.text:
            text = np.asarray(text, dtype=object).reshape(x.shape[0], len(self.encoding.text))
        design, slots = self.encoding.encode_values(x.detach().cpu().double().numpy(), text)
        dtype = self.model.linear.weight.dtype
        return probabilities(self.model.logits(torch.from_numpy(design).to(dtype),
                                               None if slots is None else torch.from_numpy(slots)))


def build_model(state: dict, dtype: torch.dtype = torch.float64) -> RawModel:
    """The torch module a checkpoint describes, on raw values, in eval mode on the CPU."""
    return RawModel(state, dtype).eval()


def _validate(state, name: str) -> None:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{name}: a torch file but not an edgelr checkpoint (no '{FORMAT}' format tag)")
    version = state.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{name}: damaged checkpoint: format version {version!r}, expected 1 or more")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{name}: checkpoint format version {version!r} is newer than this edgelr reads "
            f"({FORMAT_VERSION}); upgrade edgelr"
        )
    for key, kind in _REQUIRED.items():
        if not isinstance(state.get(key), kind):
            raise CheckpointError(f"{name}: damaged checkpoint: '{key}' is missing or not a {kind.__name__}")
    k = len(state["classes"])
    encoding = state.get("encoding")
    if encoding is not None and not (isinstance(encoding, dict) and isinstance(encoding.get("categories"), list)
                                     and isinstance(encoding.get("kinds"), list)):
        raise CheckpointError(f"{name}: damaged checkpoint: 'encoding' is not an edgelr encoding")
    # The numeric design columns: the numeric features, then their missing indicators.
    d = len(state["feature_names"]) + (len(encoding.get("indicators", [])) if encoding is not None else 0)
    n_design = d + (sum(len(c) for c in encoding["categories"]) if encoding is not None else 0)
    expected = {"mean": (d,), "scale": (d,), "weight": (n_outputs(k), n_design), "bias": (n_outputs(k),)}
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise CheckpointError(
                f"{name}: damaged checkpoint: '{key}' has shape {tuple(state[key].shape)}, "
                f"expected {shape} for {len(state['feature_names'])} numeric features and {k} classes"
            )
    if k < 2:
        raise CheckpointError(f"{name}: damaged checkpoint: {k} class(es), expected at least 2")
    if not all(isinstance(f, str) for f in state["feature_names"]):
        raise CheckpointError(f"{name}: damaged checkpoint: feature names must be strings")
    if not 0.0 < state["threshold"] < 1.0:
        raise CheckpointError(f"{name}: damaged checkpoint: threshold {state['threshold']}, expected 0 < t < 1")
    for key in ("mean", "scale", "weight", "bias"):
        if not torch.isfinite(state[key]).all():
            raise CheckpointError(f"{name}: damaged checkpoint: '{key}' holds NaN or infinity")


def _guess_kind(name: str) -> str:
    """A hint for the message: what the file looks like instead."""
    with open(name, "rb") as handle:
        head = handle.read(64)
    if not head:
        return "the file is empty"
    if name.endswith(".onnx") or b"pytorch" in head or head[:1] == b"\x08":
        return "it looks like an ONNX model"
    if head[:1] == b"\x80":
        return "it is a bare pickle"
    return "not a zip archive: truncated, or another kind of file"
