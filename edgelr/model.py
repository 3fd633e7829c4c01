"""The logistic-regression module: standardization plus one linear layer.

Binary models have one output unit and a sigmoid, as scikit-learn does, so the L2
penalty lands on the same single weight vector; 3+ classes have one unit per class
and a softmax (multinomial). ``forward`` returns the probabilities only.
"""

from __future__ import annotations

import torch
from torch import nn


def n_outputs(n_classes: int) -> int:
    """Units of the linear layer: 1 for a binary model, one per class otherwise."""
    return 1 if n_classes == 2 else n_classes


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities of shape (n, n_classes) from logits of shape (n, n_outputs).

    Binary: column 0 is sigmoid(-z) rather than 1 - sigmoid(z), which keeps its
    precision in the tail where sigmoid(z) rounds to 1.
    """
    if logits.shape[1] == 1:
        return torch.cat([torch.sigmoid(-logits), torch.sigmoid(logits)], dim=1)
    return torch.softmax(logits, dim=1)


class LogisticModel(nn.Module):
    """Raw features (n, n_features) -> probabilities (n, n_classes)."""

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        mean: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs(n_classes), dtype=dtype)
        # Parameters start at zero (spec section 3): every run from the same data agrees.
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("mean", _or_fill(mean, n_features, 0.0, dtype))
        self.register_buffer("scale", _or_fill(scale, n_features, 1.0, dtype))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale

    def logits(self, x_standardized: torch.Tensor) -> torch.Tensor:
        return self.linear(x_standardized)  # (n, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return probabilities(self.logits(self.standardize(x)))


def _or_fill(value: torch.Tensor | None, n: int, fill: float, dtype: torch.dtype) -> torch.Tensor:
    if value is None:
        return torch.full((n,), fill, dtype=dtype)
    return torch.as_tensor(value, dtype=dtype).reshape(n)
