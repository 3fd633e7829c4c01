"""The logistic-regression module: one linear layer over the encoded features.

Binary models have one output unit and a sigmoid, as scikit-learn does, so the L2
penalty lands on the same single weight vector; 3+ classes have one unit per class
and a softmax (multinomial). The layer's inputs are the encoding's design columns
(edgelr.encoding): the standardized numeric ones, then one per category. Rows arrive
as the numeric part and, for text columns, the slot of each row's category, so a
category's coefficients are looked up, never multiplied by a one-hot matrix.
``forward`` returns the probabilities only.
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


def category_table(W: torch.Tensor, n_numeric: int) -> torch.Tensor:
    """(n_categories + 1, n_outputs): each category slot's coefficients, then a zero row for unknown ones."""
    return torch.cat([W[:, n_numeric:].T, W.new_zeros(1, W.shape[0])])


def logits(X: torch.Tensor, slots: torch.Tensor | None, W: torch.Tensor, b: torch.Tensor,
           table: torch.Tensor | None = None) -> torch.Tensor:
    """(m, n_outputs) logits of encoded rows: X (m, n_numeric) @ W_numeric^T + b + the rows' category coefficients.

    ``table``: ``category_table(W, n_numeric)`` when the caller already built it.
    """
    z = torch.addmm(b, X, W[:, : X.shape[1]].T)
    if slots is None or slots.shape[1] == 0:
        return z
    if table is None:
        table = category_table(W, X.shape[1])
    return z + table[slots].sum(dim=1)


class LogisticModel(nn.Module):
    """Encoded rows -> probabilities (n, n_classes); ``n_numeric`` of the ``n_features`` inputs are numeric."""

    def __init__(self, n_features: int, n_classes: int, *, n_numeric: int | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.n_numeric = n_features if n_numeric is None else n_numeric
        self.linear = nn.Linear(n_features, n_outputs(n_classes), dtype=dtype)
        # Parameters start at zero (spec section 3): every run from the same data agrees.
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def logits(self, x: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        return logits(x, slots, self.linear.weight, self.linear.bias)  # (n, n_outputs)

    def forward(self, x: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        return probabilities(self.logits(x, slots))
