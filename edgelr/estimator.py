"""``edgelr.LogisticRegression``: the scikit-learn-style estimator the CLI is built on."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from edgelr.checkpoint import build_model, encoding_of, load_checkpoint, save_checkpoint
from edgelr.data import (
    DEFAULT_MAX_CATEGORIES,
    ReadOptions,
    as_matrix,
    check_finite_matrix,
    encode_labels,
    is_dataframe,
    plain_value,
    table_from_frame,
)
from edgelr.encoding import Encoding, EncodingSpec, Layout
from edgelr.errors import ConfigError, DataError
from edgelr.metrics import classification_metrics
from edgelr.model import LogisticModel
from edgelr.rows import encode_in_memory
from edgelr.settings import TrainSettings, train_settings
from edgelr.train import Objective, ProgressFn, SumFn, balanced_weights, fit, resolve_device


class LogisticRegression:
    """Binary (sigmoid) or multinomial (softmax) logistic regression, trained in PyTorch.

    Minimizes scikit-learn's objective, so ``LogisticRegression(C=0.5)`` here and
    ``make_pipeline(StandardScaler(), LogisticRegression(C=0.5))`` there reach the same
    optimum. Standardization is part of the model: ``predict`` takes raw features.

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 strength, as scikit-learn's; the intercept is not penalized.
    penalty : {"l2", "none"}, default "l2"
    class_weight : {None, "balanced"}, default None
    standardize : bool, default True
        Scale numeric features by the training mean and population std (ddof=0).
    impute : {None, "mean", "median"}, default None
        Fill missing numeric values (NaN) with the training rows' mean or median, as
        SimpleImputer; a missing text value becomes a category of its own. None: a
        missing value is an error.
    missing_indicator : bool, default False
        Add a 0/1 input per numeric column that had missing values in training.
    categorical : sequence of str, default ()
        DataFrame columns of numbers to read as categories (codes such as zip codes).
    max_categories : int, default 1000
        More distinct values than this in a text column is an error (an id column).
    optimizer : {"lbfgs", "sgd", "adam"}, default "lbfgs"
    lr, epochs, batch_size, tol, seed : see ``edgelr.settings.TrainSettings``
    device : str, default "auto"
        "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_design) binary or (n_classes, n_design)
        The LogisticRegression step of scikit-learn's ColumnTransformer pipeline (spec
        section 2): standardized numeric columns, their missing indicators, then one
        column per category; ``design_names_`` names them, ``mean_`` and ``scale_`` hold
        the scaler of the numeric ones.
    intercept_ : ndarray of shape (1,) or (n_classes,)
    history_ : list of {"epoch": int, "loss": float}
    """

    def __init__(
        self,
        C: float = 1.0,
        *,
        penalty: str = "l2",
        class_weight: str | None = None,
        standardize: bool = True,
        optimizer: str = "lbfgs",
        lr: float | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        tol: float = 1e-6,
        seed: int = 0,
        device: str = "auto",
        impute: str | None = None,
        missing_indicator: bool = False,
        categorical: Sequence[str] = (),
        max_categories: int = DEFAULT_MAX_CATEGORIES,
    ):
        self.C, self.penalty, self.class_weight = C, penalty, class_weight
        self.standardize, self.optimizer, self.lr, self.epochs = standardize, optimizer, lr, epochs
        self.batch_size, self.tol, self.seed, self.device = batch_size, tol, seed, device
        self.impute, self.missing_indicator = impute, missing_indicator
        self.categorical, self.max_categories = categorical, max_categories
        self._state: dict | None = None

    # -- fitting ---------------------------------------------------------------------

    def fit(
        self,
        X,
        y,
        *,
        feature_names: Sequence[str] | None = None,
        progress: ProgressFn | None = None,
    ) -> LogisticRegression:
        """Fit on X of shape (n_rows, n_features) and labels y of shape (n_rows,).

        X: a numeric array-like (NaN where missing, with ``impute``), or a pandas
        DataFrame whose text columns are encoded as categories. ``progress(epoch, loss)``
        is called after every epoch, e.g. for a progress bar.
        """
        self.settings()  # bad settings fail before any work on the data
        callers_array = not is_dataframe(X)  # trained on where it lies (a DataFrame becomes a table of ours)
        X, layout = self._table(X, feature_names)
        classes, y_idx = encode_labels(y, where="y")
        if y_idx.size != X.shape[0]:
            raise DataError(f"y has {y_idx.size} labels but X has {X.shape[0]} rows; expected one label per row")
        device = resolve_device(self.device)
        rows, encoding = encode_in_memory(X, layout, self.encoding_spec(), y_idx,
                                          self.sample_weight(y_idx, len(classes)), device, in_place=callers_array)
        return self.fit_rows(rows, classes=classes, encoding=encoding, device=device, progress=progress)

    def fit_rows(
        self,
        rows,
        *,
        classes: list,
        encoding: Encoding,
        device: torch.device,
        n_total: int | None = None,
        sum_ranks: SumFn | None = None,
        progress: ProgressFn | None = None,
        validation=None,
        n_validation: int | None = None,
    ) -> LogisticRegression:
        """Fit on encoded rows (``edgelr.rows``): in memory, streamed, or one rank's share.

        ``n_total`` and ``sum_ranks`` describe the rows of all ranks under torchrun.
        ``validation`` (rows, ``n_validation`` over all ranks) adds its mean
        cross-entropy to every history entry as ``val_loss``.
        """
        settings = self.settings()
        if sum_ranks is not None and settings.batch_size is not None:
            raise ConfigError("mini-batches with several ranks would not add up to one model; "
                              "expected full-batch training (batch_size=None) when data-parallel")
        model = LogisticModel(encoding.n_design, len(classes), n_numeric=encoding.n_numeric).to(device)
        objective = Objective(model, rows, C=self.C, penalty=self.penalty, n_total=n_total, sum_ranks=sum_ranks)
        held_out = None if validation is None else Objective(
            model, validation, C=self.C, penalty="none", n_total=n_validation, sum_ranks=sum_ranks)
        history = fit(objective, settings, progress, validation=held_out)
        self._state = {
            "feature_names": encoding.numeric,
            "categorical_names": encoding.text,
            "encoding": encoding.to_state(),
            "classes": list(classes),
            "mean": torch.as_tensor(encoding.mean, dtype=torch.float64),
            "scale": torch.as_tensor(encoding.scale, dtype=torch.float64),
            "weight": model.linear.weight.detach().cpu().clone(),
            "bias": model.linear.bias.detach().cpu().clone(),
            "threshold": 0.5,
            "config": {**self.get_params(), "categorical": list(self.categorical), "device": str(device)},
            "metrics": {},
            "history": history,
        }
        return self

    def read_options(self) -> ReadOptions:
        """How the CSV reader reads the feature cells for this estimator."""
        return ReadOptions(categorical=tuple(self.categorical), impute=self.impute is not None,
                           max_categories=self.max_categories)

    def encoding_spec(self) -> EncodingSpec:
        """What the encoding is asked to do (validated)."""
        spec = EncodingSpec(impute=self.impute, missing_indicator=self.missing_indicator, standardize=self.standardize)
        spec.validate()
        return spec

    def _table(self, X, feature_names: Sequence[str] | None) -> tuple[np.ndarray, Layout]:
        """(raw rows float64, their layout) from a DataFrame or a numeric array-like."""
        if is_dataframe(X):
            if feature_names is not None:
                raise DataError("feature_names with a DataFrame: its column names are the feature names; "
                                "expected one of the two")
            raw, names, kinds, vocab = table_from_frame(X, categorical=tuple(self.categorical),
                                                        impute=self.impute is not None,
                                                        max_categories=self.max_categories)
            if raw.shape[0] == 0:
                raise DataError(f"X: expected at least one row, got shape {raw.shape}")
            return raw, Layout(names, kinds, vocab)
        if self.categorical:
            raise DataError("categorical= names DataFrame columns; expected X as a pandas DataFrame with them")
        raw = as_matrix(X, keep_float=True)  # finite values: checked by the pass that computes the moments
        return raw, Layout.numeric(self._feature_names(feature_names, raw.shape[1]))

    def sample_weight(self, y_idx: np.ndarray, n_classes: int) -> np.ndarray | None:
        """Per-row weights of shape (n_rows,) for ``class_weight``, or None (all rows weigh 1)."""
        return balanced_weights(y_idx, n_classes) if self.class_weight == "balanced" else None

    def get_params(self) -> dict:
        """Constructor arguments, as scikit-learn's get_params (plain values)."""
        names = ("C", "penalty", "class_weight", "standardize", "optimizer", "lr", "epochs",
                 "batch_size", "tol", "seed", "device", "impute", "missing_indicator", "categorical",
                 "max_categories")
        return {n: getattr(self, n) for n in names}

    # -- prediction ------------------------------------------------------------------

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of shape (n_rows, n_classes), computed in float64.

        X: a DataFrame with the training columns (by name, any order, others ignored), or
        for a model without text columns a numeric array-like in the training column order.
        """
        state = self._fitted()
        encoding = encoding_of(state)
        numbers, text = self._inputs(X, encoding)
        with torch.no_grad():
            return build_model(state)(torch.from_numpy(np.array(numbers, dtype=np.float64)), text).numpy()

    @staticmethod
    def _inputs(X, encoding: Encoding) -> tuple[np.ndarray, np.ndarray | None]:
        """(numbers (n, n_numeric) float64 with NaN where missing, text (n, n_text) objects or None)."""
        if is_dataframe(X):
            absent = [c for c in encoding.columns if c not in set(map(str, X.columns))]
            if absent:
                raise DataError(f"X lacks the column(s) {', '.join(absent)}; expected the training columns "
                                f"{', '.join(encoding.columns)}")
            frame = X.rename(columns=str)
            try:
                numbers = frame[encoding.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise DataError(f"X: the numeric columns {', '.join(encoding.numeric)} hold values that are not "
                                f"numbers ({exc}); expected numbers") from exc
            text = frame[encoding.text].to_numpy(dtype=object) if encoding.text else None
        else:
            if encoding.text:
                raise DataError(f"X is an array, but the model has text columns ({', '.join(encoding.text)}); "
                                "expected a pandas DataFrame with the training columns")
            numbers = as_matrix(X)
            text = None
            if numbers.shape[1] != len(encoding.numeric):
                raise DataError(f"X has {numbers.shape[1]} columns; expected {len(encoding.numeric)}: "
                                f"{', '.join(encoding.numeric)}")
        # Infinity is never a value; NaN is one only for a model that imputes. The error names the cell.
        check_finite_matrix(numbers if encoding.impute is None else np.where(np.isnan(numbers), 0.0, numbers))
        return numbers, text

    def predict(self, X) -> np.ndarray:
        """Class names of shape (n_rows,): positive when p > threshold (binary), else argmax."""
        proba = self.predict_proba(X)
        if proba.shape[1] == 2:
            idx = (proba[:, 1] > self._fitted()["threshold"]).astype(np.int64)
        else:
            idx = proba.argmax(axis=1)
        return self.classes_[idx]

    def score(self, X, y) -> dict[str, float]:
        """Metrics (accuracy, log_loss, and binary precision/recall/f1/roc_auc) on X, y."""
        index = {c: i for i, c in enumerate(self._fitted()["classes"])}
        try:
            y_idx = np.array([index[plain_value(v)] for v in np.asarray(y).tolist()], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"y has label {exc.args[0]!r}, not one of the classes {list(index)}") from exc
        return classification_metrics(y_idx, self.predict_proba(X))

    # -- attributes ------------------------------------------------------------------

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self._fitted()["classes"])

    @property
    def coef_(self) -> np.ndarray:
        return self._fitted()["weight"].double().numpy().copy()

    @property
    def intercept_(self) -> np.ndarray:
        return self._fitted()["bias"].double().numpy().copy()

    @property
    def mean_(self) -> np.ndarray:
        return self._fitted()["mean"].numpy().copy()

    @property
    def scale_(self) -> np.ndarray:
        return self._fitted()["scale"].numpy().copy()

    @property
    def feature_names_in_(self) -> np.ndarray:
        return np.asarray(self.encoding_.columns, dtype=object)

    @property
    def n_features_in_(self) -> int:
        return len(self.encoding_.columns)

    @property
    def encoding_(self) -> Encoding:
        """The fitted encoding of the columns (edgelr.encoding.Encoding)."""
        return encoding_of(self._fitted())

    @property
    def categories_(self) -> dict[str, list[str]]:
        """Each text column's categories (the order of their coefficients); "" is the missing category."""
        return dict(zip(self.encoding_.text, self.encoding_.categories))

    @property
    def design_names_(self) -> list[str]:
        """A name per column of ``coef_``: numeric columns, '<col>_missing' indicators, '<col>=<category>'."""
        return self.encoding_.design_names()

    @property
    def history_(self) -> list[dict]:
        return list(self._fitted()["history"])

    @property
    def config_(self) -> dict:
        """The settings the model was trained with, including the device used."""
        return dict(self._fitted()["config"])

    @property
    def metrics_(self) -> dict:
        return dict(self._fitted()["metrics"])

    # -- persistence -----------------------------------------------------------------

    def save(self, path: str | os.PathLike, *, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Write the checkpoint; ``metrics`` and ``extra`` (plain values) ride along."""
        state = dict(self._fitted())
        if metrics is not None:
            state["metrics"] = metrics
        state.update(extra or {})
        save_checkpoint(state, path)
        self._state = state

    @classmethod
    def load(cls, path: str | os.PathLike) -> LogisticRegression:
        state = load_checkpoint(path)
        params = {k: v for k, v in state["config"].items() if k in cls().get_params()}
        est = cls(**params)
        est._state = state
        return est

    # -- helpers ---------------------------------------------------------------------

    def settings(self) -> TrainSettings:
        """The validated optimizer settings these parameters describe."""
        return train_settings(C=self.C, penalty=self.penalty, optimizer=self.optimizer, lr=self.lr,
                              epochs=self.epochs, batch_size=self.batch_size, tol=self.tol, seed=self.seed,
                              class_weight=self.class_weight)

    @staticmethod
    def _feature_names(names: Sequence[str] | None, n_features: int) -> list[str]:
        if names is None:
            return [f"x{i}" for i in range(n_features)]
        names = [str(n) for n in names]
        if len(names) != n_features:
            raise DataError(f"{len(names)} feature names for {n_features} columns; expected one name per column")
        return names

    def _fitted(self) -> dict:
        if self._state is None:
            raise ConfigError("this LogisticRegression is not fitted yet; call fit(X, y) first")
        return self._state

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if v != _DEFAULTS.get(k)}
        return f"LogisticRegression({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


_DEFAULTS = LogisticRegression().get_params()
