"""How to fit, validated without torch: the CLI checks its options before torch loads.

``edgelr train`` imports torch (~1 s) on a thread while it reads the rows; bad settings
must still fail before any of that work, so they live here, free of torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgelr.errors import ConfigError

OPTIMIZERS = ("lbfgs", "sgd", "adam")
PENALTIES = ("l2", "none")
CLASS_WEIGHTS = (None, "balanced")

# Optimizer-specific defaults, used when the user gives no --lr / --epochs.
DEFAULT_LR = {"lbfgs": 1.0, "sgd": 0.1, "adam": 0.01}
DEFAULT_EPOCHS = {"lbfgs": 100, "sgd": 100, "adam": 100}
_L1_EPOCHS = 1000  # lbfgs's default most iterations with an L1 part (OWL-QN)


@dataclass(frozen=True)
class TrainSettings:
    """How to minimize; what to minimize comes from C, penalty and l1_ratio."""

    C: float = 1.0  # inverse regularization strength, as scikit-learn's C
    penalty: str = "l2"  # "l2" (with l1_ratio: elastic net) or "none"
    l1_ratio: float = 0.0  # the L1 share of the penalty: 0 = L2, 1 = L1, between = elastic net
    optimizer: str = "lbfgs"  # full-batch L-BFGS with a strong-Wolfe line search
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    epochs: int | None = None  # L-BFGS: most iterations; sgd/adam: passes over the data
    batch_size: int | None = None  # None: full batch
    tol: float = 1e-6  # L-BFGS stops when max |gradient| falls below this
    seed: int = 0  # mini-batch shuffling

    @property
    def resolved_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        # OWL-QN's steps stay in one orthant: on correlated columns it took 100-500 iterations
        # where L-BFGS on the L2 objective takes 30 (breast cancer, C 0.1-10).
        return _L1_EPOCHS if self.l1_ratio and self.optimizer == "lbfgs" else DEFAULT_EPOCHS[self.optimizer]

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer '{self.optimizer}' is unknown; expected one of {', '.join(OPTIMIZERS)}")
        if self.penalty not in PENALTIES:
            raise ConfigError(f"penalty '{self.penalty}' is unknown; expected one of {', '.join(PENALTIES)}")
        if not 0 < self.C < math.inf:
            raise ConfigError(f"C must be a finite number > 0, got {self.C}")
        if not 0.0 <= self.l1_ratio <= 1.0:
            raise ConfigError(f"l1_ratio must be between 0 and 1, got {self.l1_ratio}")
        if self.l1_ratio and self.penalty == "none":
            raise ConfigError(f"l1_ratio {self.l1_ratio} weighs a penalty, and penalty is 'none'; "
                              "expected l1_ratio 0 or penalty 'l2'")
        if self.l1_ratio and self.optimizer != "lbfgs":
            # A (sub)gradient step never lands on exactly zero: the zeros an L1 penalty promises need OWL-QN.
            raise ConfigError(f"l1_ratio {self.l1_ratio} needs the lbfgs optimizer (OWL-QN leaves exact zeros); "
                              f"got optimizer '{self.optimizer}'")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.epochs is not None and self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.optimizer == "lbfgs" and self.batch_size is not None:
            raise ConfigError("lbfgs is a full-batch method; --batch-size needs --optimizer sgd or adam")


def train_settings(*, C: float, penalty: str, optimizer: str, lr: float | None, epochs: int | None,
                   batch_size: int | None, seed: int, class_weight: str | None, l1_ratio: float = 0.0,
                   tol: float = TrainSettings.tol) -> TrainSettings:
    """The validated settings of an estimator's parameters (``LogisticRegression.settings``)."""
    settings = TrainSettings(C=C, penalty=penalty, l1_ratio=l1_ratio, optimizer=optimizer, lr=lr, epochs=epochs,
                             batch_size=batch_size, tol=tol, seed=seed)
    settings.validate()
    if class_weight not in CLASS_WEIGHTS:
        raise ConfigError(f"class_weight '{class_weight}' is unknown; expected None or 'balanced'")
    return settings
