"""``edgelr.LogisticRegression``: the scikit-learn estimator the CLI is built on.

It speaks scikit-learn's estimator protocol without importing scikit-learn: parameters
from the ``__init__`` signature (``get_params`` / ``set_params``, so ``clone``,
``GridSearchCV`` and pickle work), ``score`` as accuracy, ``__sklearn_is_fitted__``, and
``__sklearn_tags__``, the one method only scikit-learn calls, which imports it to build
its ``Tags``. Inheriting ``BaseEstimator`` would import scikit-learn and scipy (1-2 s) in
every ``edgelr train`` and first ``fit``. The input checks are edgelr's, in the words
scikit-learn's checks look for; ``check_estimator`` holds us to the protocol
(tests/test_sklearn_api.py). Only the training side imports this module; the edge
runtime never does.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import os
import sys
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from edgelr.checkpoint import build_model, encoding_of, load_checkpoint, save_checkpoint
from edgelr.data import (
    DEFAULT_MAX_CATEGORIES,
    ReadOptions,
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
from edgelr.train import Objective, ProgressFn, SumFn, fit, resolve_device

# scikit-learn's checks this estimator is known to fail, with the reason: pass it as
# ``check_estimator(LogisticRegression(), expected_failed_checks=EXPECTED_FAILED_CHECKS)``
# (scikit-learn >= 1.6 takes expected failures there, not from the estimator's tags).
# None since the standardization is weighted by sample_weight (the sample-weight
# equivalence check failed before); kept so a new one is declared with its reason.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


class NotFittedError(ConfigError, AttributeError):
    """A fitted attribute or method was used before ``fit`` (an AttributeError, so ``hasattr`` is False).

    Raised as a subclass of scikit-learn's NotFittedError too when scikit-learn is loaded
    (``_not_fitted``): whoever catches that one has imported it.
    """


class DataConversionWarning(UserWarning):
    """y came as a column vector (n_rows, 1) and was flattened: scikit-learn's warning of that name."""


class LogisticRegression:
    """Binary (sigmoid) or multinomial (softmax) logistic regression, trained in PyTorch.

    Minimizes scikit-learn's objective, so ``LogisticRegression(C=0.5)`` here and
    ``make_pipeline(StandardScaler(), LogisticRegression(C=0.5))`` there reach the same
    optimum. Standardization is part of the model: ``predict`` takes raw features.

    Parameters
    ----------
    C : float, default 1.0
        Inverse regularization strength, as scikit-learn's; the intercept is not penalized.
    l1_ratio : float in [0, 1], default 0.0
        The L1 share of the penalty, as scikit-learn's: 0 is L2, 1 is L1 (exact zeros in
        ``coef_``), between is the elastic net; an L1 part needs ``optimizer="lbfgs"``
        (it becomes OWL-QN).
    penalty : {"l2", "none"}, default "l2"
    class_weight : dict, "balanced" or None, default None
        As scikit-learn's: a weight per class ({class name: weight}), or "balanced"
        (n_rows / (n_classes * rows of the class), counted with ``sample_weight``);
        multiplied with ``sample_weight``.
    standardize : bool, default True
        Scale numeric features by the training mean and population std (ddof=0), both
        weighted by ``sample_weight`` when it is given (a row of weight 2 counts twice),
        except with ``impute="median"``, whose encoding is of the rows unweighted.
    impute : {None, "mean", "median"}, default None
        Fill missing numeric values (NaN) with the training rows' mean (weighted by
        ``sample_weight``) or median (unweighted), as SimpleImputer; a missing text value
        becomes a category of its own. None: a missing value is an error.
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
    n_features_in_ : int
        Columns of X seen in fit.
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Only when fit on named columns: a DataFrame whose column names are all strings,
        ``feature_names=``, or a CSV (a checkpoint); not for a plain array, as scikit-learn.
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
        l1_ratio: float = 0.0,
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
        self.C, self.l1_ratio, self.penalty, self.class_weight = C, l1_ratio, penalty, class_weight
        self.standardize, self.optimizer, self.lr, self.epochs = standardize, optimizer, lr, epochs
        self.batch_size, self.tol, self.seed, self.device = batch_size, tol, seed, device
        self.impute, self.missing_indicator = impute, missing_indicator
        self.categorical, self.max_categories = categorical, max_categories
        # No other attribute here: scikit-learn's clone and checks expect __init__ to store parameters only.

    # -- fitting ---------------------------------------------------------------------

    def fit(
        self,
        X,
        y,
        sample_weight=None,
        *,
        feature_names: Sequence[str] | None = None,
        progress: ProgressFn | None = None,
    ) -> LogisticRegression:
        """Fit on X of shape (n_rows, n_features) and labels y of shape (n_rows,).

        X: a numeric array-like (NaN where missing, with ``impute``), or a pandas
        DataFrame whose text columns are encoded as categories. ``sample_weight`` of
        shape (n_rows,): non-negative row weights, as scikit-learn's (a weight of 2 is
        the row twice, in the loss and the standardization). ``progress(epoch, loss)``
        is called after every epoch, e.g. for a progress bar.
        """
        self.settings()  # bad settings fail before any work on the data
        callers_array = not is_dataframe(X)  # trained on where it lies (a DataFrame becomes a table of ours)
        X, layout, named = self._table(X, feature_names)
        y = _check_labels(y)
        classes, y_idx = encode_labels(y, where="y")
        if y_idx.size != X.shape[0]:
            raise DataError(f"y has {y_idx.size} labels but X has {X.shape[0]} rows; expected one label per row")
        if sample_weight is not None:
            # shape, NaN, negative and all-zero weights are errors, in scikit-learn's words
            sample_weight = _check_sample_weight(sample_weight, X.shape[0])
        weights = self.sample_weight(y_idx, classes, sample_weight)
        device = resolve_device(self.device)
        rows, encoding = encode_in_memory(X, layout, self.encoding_spec(), y_idx, weights, device,
                                          in_place=callers_array, row_weight=sample_weight)
        return self.fit_rows(rows, classes=classes, encoding=encoding, device=device, progress=progress,
                             named_features=named)

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
        named_features: bool = True,
    ) -> LogisticRegression:
        """Fit on encoded rows (``edgelr.rows``): in memory, streamed, or one rank's share.

        ``n_total`` and ``sum_ranks`` describe the rows of all ranks under torchrun.
        ``validation`` (rows, ``n_validation`` over all ranks) adds its mean
        cross-entropy to every history entry as ``val_loss``. ``named_features``: the
        columns had names of the user's (a CSV header, string DataFrame columns), so
        ``feature_names_in_`` exists.
        """
        settings = self.settings()
        if sum_ranks is not None and settings.batch_size is not None:
            raise ConfigError("mini-batches with several ranks would not add up to one model; "
                              "expected full-batch training (batch_size=None) when data-parallel")
        model = LogisticModel(encoding.n_design, len(classes), n_numeric=encoding.n_numeric).to(device)
        objective = Objective(model, rows, C=self.C, penalty=self.penalty, l1_ratio=self.l1_ratio, n_total=n_total,
                              sum_ranks=sum_ranks)
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
            "config": {**self._plain_params(), "device": str(device)},
            "named_features": named_features,
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

    def _table(self, X, feature_names: Sequence[str] | None) -> tuple[np.ndarray, Layout, bool]:
        """(raw rows float64, their layout, whether the columns are named) from a DataFrame or a numeric array-like."""
        if is_dataframe(X):
            if feature_names is not None:
                raise DataError("feature_names with a DataFrame: its column names are the feature names; "
                                "expected one of the two")
            raw, names, kinds, vocab = table_from_frame(X, categorical=tuple(self.categorical),
                                                        impute=self.impute is not None,
                                                        max_categories=self.max_categories)
            if raw.shape[0] == 0:
                raise DataError(f"X: expected at least one row, got shape {raw.shape}")
            # scikit-learn keeps feature names only when every column name is a string
            named = all(isinstance(c, str) for c in X.columns)
            return raw, Layout(names, kinds, vocab), named
        if self.categorical:
            raise DataError("categorical= names DataFrame columns; expected X as a pandas DataFrame with them")
        raw = _numeric_matrix(X, allow_nan=self.impute is not None)
        return raw, Layout.numeric(self._feature_names(feature_names, raw.shape[1])), feature_names is not None

    def sample_weight(self, y_idx: np.ndarray, classes: Sequence,
                      row_weight: np.ndarray | None = None) -> np.ndarray | None:
        """Per-row weights of shape (n_rows,): ``class_weight`` times ``row_weight``, or None (all rows weigh 1).

        y_idx: class indices (n_rows,); classes: the class names (a dict ``class_weight``
        is keyed by them). The product is scikit-learn's: its
        LogisticRegression multiplies ``sample_weight`` by the class weights, and
        "balanced" counts the classes with the row weights.
        """
        names = np.asarray(classes)
        weights = row_weight
        if self.class_weight == "balanced":
            # compute_class_weight's "balanced" (weighted class counts), by counting: no sort of y
            counts = np.bincount(y_idx, weights=row_weight, minlength=names.size).astype(np.float64)
            # a class that weighs nothing stays at 0 (and is reported below), not 0 * inf
            per_class = np.divide(counts.sum(), names.size * counts, out=np.zeros_like(counts), where=counts > 0)
        elif self.class_weight is not None:  # a dict keyed by class names, read as scikit-learn reads it
            per_class = _class_weights(self.class_weight, names)
        if self.class_weight is not None:
            weights = per_class[y_idx] if row_weight is None else per_class[y_idx] * row_weight
        if weights is not None:
            _check_every_class_weighs(weights, y_idx, names)
        return weights

    def _plain_params(self) -> dict:
        """The parameters as plain values for the checkpoint (torch.load(weights_only=True) reads only those)."""
        params = {**self.get_params(deep=False), "categorical": list(self.categorical)}
        if isinstance(self.class_weight, dict):
            params["class_weight"] = {plain_value(k): float(v) for k, v in self.class_weight.items()}
        return params

    # -- prediction ------------------------------------------------------------------

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of shape (n_rows, n_classes), computed in float64.

        X: a DataFrame with the training columns (by name, any order, others ignored), or
        for a model without text columns a numeric array-like in the training column order.
        """
        state = self._fitted()
        numbers, text = self._inputs(X, state)
        with torch.no_grad():
            return build_model(state)(torch.from_numpy(np.array(numbers, dtype=np.float64)), text).numpy()

    @staticmethod
    def _inputs(X, state: dict) -> tuple[np.ndarray, np.ndarray | None]:
        """(numbers (n, n_numeric) float64 with NaN where missing, text (n, n_text) objects or None).

        A DataFrame's columns are taken by name when the model knows names (or has text
        columns); one fit on an array takes a DataFrame's columns in order, as scikit-learn.
        """
        encoding = encoding_of(state)
        if is_dataframe(X) and (state.get("named_features", True) or encoding.text):
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
            _check_finite(numbers, allow_nan=encoding.impute is not None, names=encoding.numeric)
            return numbers, text
        if encoding.text:
            raise DataError(f"X is an array, but the model has text columns ({', '.join(encoding.text)}); "
                            "expected a pandas DataFrame with the training columns")
        numbers = _as_2d(X)
        if numbers.shape[1] != len(encoding.numeric):
            # scikit-learn's wording, which its estimator checks look for
            raise DataError(f"X has {numbers.shape[1]} features, but LogisticRegression is expecting "
                            f"{len(encoding.numeric)} features as input: {', '.join(encoding.numeric)}")
        _check_finite(numbers, allow_nan=encoding.impute is not None)
        return numbers, None

    def decision_function(self, X) -> np.ndarray:
        """Logits, float64: shape (n_rows,) binary (the positive class's), else (n_rows, n_classes)."""
        state = self._fitted()
        numbers, text = self._inputs(X, state)
        model = build_model(state)
        design, slots = model.encoding.encode_values(np.array(numbers, dtype=np.float64), text)
        with torch.no_grad():
            z = model.model.logits(torch.from_numpy(design), None if slots is None else torch.from_numpy(slots))
        return z.numpy()[:, 0] if z.shape[1] == 1 else z.numpy()

    def predict_log_proba(self, X) -> np.ndarray:
        """Log-probabilities of shape (n_rows, n_classes)."""
        with np.errstate(divide="ignore"):  # a probability that rounds to 0 is -inf, as scikit-learn's
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """Class names of shape (n_rows,): positive when p > threshold (binary), else argmax."""
        proba = self.predict_proba(X)
        if proba.shape[1] == 2:
            idx = (proba[:, 1] > self._fitted()["threshold"]).astype(np.int64)
        else:
            idx = proba.argmax(axis=1)
        return self.classes_[idx]

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy of ``predict(X)`` against y of shape (n_rows,), weighted by ``sample_weight``, as scikit-learn's."""
        predicted = self.predict(X)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.shape != predicted.shape:
            raise DataError(f"y has shape {y.shape} for {predicted.shape[0]} rows of X; "
                            f"expected ({predicted.shape[0]},)")
        weights = None if sample_weight is None else _check_sample_weight(sample_weight, y.size)
        return float(np.average(y == predicted, weights=weights))

    def metrics(self, X, y) -> dict[str, float]:
        """Metrics (accuracy, log_loss, and binary precision/recall/f1/roc_auc) on X, y."""
        index = {c: i for i, c in enumerate(self._fitted()["classes"])}
        try:
            y_idx = np.array([index[plain_value(v)] for v in np.asarray(y).tolist()], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"y has label {exc.args[0]!r}, not one of the classes {list(index)}") from exc
        return classification_metrics(y_idx, self.predict_proba(X), self._fitted()["threshold"])

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
        # A checkpoint from before this flag came from a CSV or named columns: named.
        if not self._fitted().get("named_features", True):
            raise AttributeError("feature_names_in_: this model was fit on an array without column names")
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
        params = {k: v for k, v in state["config"].items() if k in cls._get_param_names()}  # older ones lack some
        est = cls(**params)
        est._state = state
        return est

    # -- helpers ---------------------------------------------------------------------

    def settings(self) -> TrainSettings:
        """The validated optimizer settings these parameters describe."""
        class_weight = self.class_weight
        if isinstance(class_weight, dict):  # train_settings knows the strings; a dict is checked here
            bad = {k: v for k, v in class_weight.items()
                   if not (isinstance(v, numbers.Real) and 0 <= v < np.inf)}  # a string compares to no number
            if bad:
                raise ConfigError(f"class_weight {bad} holds weights that are not finite numbers >= 0; "
                                  "expected {class: weight >= 0}")
            class_weight = None
        return train_settings(C=self.C, penalty=self.penalty, l1_ratio=self.l1_ratio, optimizer=self.optimizer,
                              lr=self.lr, epochs=self.epochs, batch_size=self.batch_size, tol=self.tol, seed=self.seed,
                              class_weight=class_weight)

    # -- scikit-learn's estimator protocol ---------------------------------------------

    _estimator_type = "classifier"  # scikit-learn < 1.6 reads this; later ones the tags

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The parameters: the arguments of ``__init__``, sorted, as scikit-learn's BaseEstimator finds them."""
        return sorted(p for p in inspect.signature(cls.__init__).parameters if p != "self")

    def get_params(self, deep: bool = True) -> dict:
        """Parameter names mapped to their values (``deep``: with those of parameters that are estimators)."""
        out = {}
        for key in self._get_param_names():
            value = getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params) -> LogisticRegression:
        """Set parameters by name (``name__sub`` for a parameter's own); checked when fit, as scikit-learn's."""
        valid = self._get_param_names()
        nested: dict[str, dict] = {}
        for key, value in params.items():
            key, delim, sub_key = key.partition("__")
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator {self}. Valid parameters are: {valid!r}.")
            if delim:
                nested.setdefault(key, {})[sub_key] = value
            else:
                setattr(self, key, value)
        for key, sub_params in nested.items():
            getattr(self, key).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        """``LogisticRegression(C=0.25)``: the parameters that differ from their defaults, in signature order."""
        signature = inspect.signature(type(self).__init__).parameters
        changed = [f"{name}={getattr(self, name)!r}" for name, p in signature.items()
                   if name != "self" and repr(getattr(self, name)) != repr(p.default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        """scikit-learn's tags (only scikit-learn calls this, so importing it here costs nobody else)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        # NaN is a missing value to fill when impute is set
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags(allow_nan=self.impute is not None))

    def __sklearn_is_fitted__(self) -> bool:
        return "_state" in vars(self)

    @staticmethod
    def _feature_names(names: Sequence[str] | None, n_features: int) -> list[str]:
        if names is None:
            return [f"x{i}" for i in range(n_features)]
        names = [str(n) for n in names]
        if len(names) != n_features:
            raise DataError(f"{len(names)} feature names for {n_features} columns; expected one name per column")
        return names

    def _fitted(self) -> dict:
        state = vars(self).get("_state")
        if state is None:
            raise _not_fitted("this LogisticRegression is not fitted yet; call fit(X, y) first")
        return state


def _numeric_matrix(X, *, allow_nan: bool) -> np.ndarray:
    """A numeric array-like as a 2-D float32 or float64 array of shape (n_rows, n_features), checked.

    float32 and float64 arrays are kept as they are (no copy), so training reads the
    caller's rows where they lie. Their values are not read here: the statistics pass
    (``edgelr.rows.encode_in_memory``) sees NaN and infinity in its sums and names the
    cell, so finite data costs no pass of its own. With ``impute``, NaN is a missing
    value and infinity is looked for here.
    """
    X = _as_2d(X, keep=(np.float32, np.float64))
    if allow_nan:
        _check_finite(X, allow_nan=True)
    return X


def _as_2d(X, *, keep: tuple = (np.float64,)) -> np.ndarray:
    """X as a 2-D numeric array of shape (n_rows >= 1, n_features >= 1): a ``keep`` dtype as it is, else float64.

    What is wrong is said in the words scikit-learn's estimator checks look for (sparse,
    complex, 1-D, empty).
    """
    if type(X).__module__.startswith("scipy.sparse") or hasattr(X, "tocsr"):
        raise DataError(f"X is a sparse matrix ({type(X).__name__}); sparse input is not supported, "
                        "expected a dense array (X.toarray())")
    arr = X if isinstance(X, np.ndarray) else np.asarray(X)
    if arr.dtype.kind == "c":
        raise DataError("X: Complex data not supported; expected real numbers")
    if arr.dtype not in keep:
        try:
            arr = arr.astype(np.float64)
        except TypeError as exc:  # objects that are no numbers: numpy's "argument must be a string or a number"
            raise TypeError(f"X: expected numbers; {exc}") from exc
        except ValueError as exc:
            raise DataError(f"X: expected numbers of shape (n_rows, n_features); {exc}") from exc
    if arr.ndim != 2:
        got = "scalar array" if arr.ndim == 0 else f"{arr.ndim}D array"
        raise DataError(f"X: Expected 2D array, got {got} instead (shape {arr.shape}). Reshape your data either "
                        "using array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
                        "if it contains a single sample.")
    for size, what in ((arr.shape[0], "sample"), (arr.shape[1], "feature")):
        if size == 0:
            raise DataError(f"X: Found array with 0 {what}(s) (shape={arr.shape}) while a minimum of 1 is "
                            "required by LogisticRegression.")
    return arr


def _check_finite(X: np.ndarray, *, allow_nan: bool, names: Sequence[str] | None = None) -> None:
    """Infinity, or NaN unless it is a missing value to impute, is an error naming the first such cell.

    ``names``: the columns' names (a DataFrame's), else the message gives their numbers.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        # One read, no temporary (1M x 100 float32: 34 ms): the common case. The sum in X's
        # own type may overflow on finite values; then the cells are looked at one by one.
        if np.isfinite(X.sum()):
            return
    bad = np.isinf(X) if allow_nan else ~np.isfinite(X)
    if not bad.any():
        return
    row, col = np.argwhere(bad)[0]
    value = X[row, col]
    hint = "" if not np.isnan(value) else ", or impute='mean'|'median' to fill missing values in"
    column = col if names is None else repr(names[col])
    raise DataError(f"X: row {row}, column {column} is {'NaN' if np.isnan(value) else value}; expected finite "
                    f"numbers (no NaN or inf){hint}")


def _check_every_class_weighs(weights: np.ndarray, y_idx: np.ndarray, classes: np.ndarray) -> None:
    """A class whose rows all weigh 0 is an error: it has no finite optimum (its intercept runs to -inf).

    A class with no rows at all (a cross-validation fold's, in ``edgelr.selection``) is the caller's to allow.
    """
    totals = np.bincount(y_idx, weights=weights, minlength=classes.size)
    weightless = (np.bincount(y_idx, minlength=classes.size) > 0) & ~(totals > 0)
    if weightless.any():
        empty = plain_value(classes[np.flatnonzero(weightless)[0]])
        raise DataError(f"sample_weight: every row of class {empty!r} weighs 0; expected a positive total weight "
                        "for each class, or y without that class")


def _check_labels(y) -> np.ndarray:
    """y of shape (n_rows,) (a column vector warns and is flattened), checked as scikit-learn checks a classifier's."""
    if y is None:
        raise DataError("LogisticRegression requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(_data_conversion_warning()(
            "A column-vector y was passed when a 1d array was expected. Please change the shape of y to "
            "(n_samples, ), for example using ravel()."), stacklevel=3)
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"y should be a 1d array, got an array of shape {y.shape} instead")
    if y.size == 0:
        raise DataError("y: Found array with 0 sample(s) (shape=(0,)) while a minimum of 1 is required.")
    if y.dtype.kind == "c":
        raise DataError("y: Complex data not supported; expected class labels")
    if y.dtype.kind == "f":
        if np.isnan(y).any():
            raise DataError("Input y contains NaN; expected class labels")
        if np.isinf(y).any():
            raise DataError("Input y contains infinity; expected class labels")
        if (y != np.round(y)).any():  # scikit-learn's type_of_target: "continuous"
            raise DataError("Unknown label type: continuous. A classifier needs discrete classes, and y holds "
                            "non-integer numbers (a regression target?)")
    return y


def _check_sample_weight(sample_weight, n_rows: int) -> np.ndarray:
    """Row weights as float64 of shape (n_rows,) (a number: that weight for every row), as scikit-learn checks them."""
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_rows, sample_weight, dtype=np.float64)
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"sample_weight: expected numbers of shape ({n_rows},); {exc}") from exc
    if w.ndim != 1:
        raise DataError(f"Sample weights must be 1D array or scalar, got {w.ndim}D array. Expected either a "
                        f"scalar value or a 1D array of length {n_rows}.")
    if w.shape != (n_rows,):
        raise DataError(f"sample_weight.shape == {w.shape}, expected {(n_rows,)}!")
    if not np.isfinite(w).all():
        raise DataError("Input sample_weight contains NaN or infinity; expected finite weights")
    if (w < 0).any():
        raise DataError("Negative values in data passed to `sample_weight`; expected weights >= 0")
    if not w.any():
        raise DataError("Sample weights must contain at least one non-zero number.")
    return w


def _class_weights(class_weight: dict, classes: np.ndarray) -> np.ndarray:
    """A weight per class (n_classes,) from a {class: weight} dict, 1 for classes it leaves out, as scikit-learn's."""
    weight = np.ones(classes.size)
    unweighted = []
    for i, c in enumerate(classes.tolist()):
        if c in class_weight:
            weight[i] = class_weight[c]
        else:
            unweighted.append(c)
    if unweighted and classes.size - len(unweighted) != len(class_weight):
        raise DataError(f"The classes, {unweighted}, are not in class_weight, and it names classes y lacks; "
                        f"expected keys among the classes {classes.tolist()}")
    return weight


def _not_fitted(message: str) -> NotFittedError:
    """A NotFittedError, also scikit-learn's when scikit-learn is loaded (its checks expect that class)."""
    if "sklearn.exceptions" not in sys.modules:
        return NotFittedError(message)
    return _sklearn_classes()[0](message)


def _data_conversion_warning() -> type[Warning]:
    return DataConversionWarning if "sklearn.exceptions" not in sys.modules else _sklearn_classes()[1]


@functools.cache
def _sklearn_classes() -> tuple[type, type]:
    """Our NotFittedError and DataConversionWarning, subclassing scikit-learn's too (imported only when it is)."""
    from sklearn import exceptions

    not_fitted = type("NotFittedError", (NotFittedError, exceptions.NotFittedError),
                      {"__module__": __name__, "__doc__": NotFittedError.__doc__})
    conversion = type("DataConversionWarning", (DataConversionWarning, exceptions.DataConversionWarning),
                      {"__module__": __name__, "__doc__": DataConversionWarning.__doc__})
    return not_fitted, conversion
