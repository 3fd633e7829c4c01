"""The edge predictor: an edgelr ONNX model scored with numpy and onnxruntime alone.

This file imports only the standard library, numpy and onnxruntime, never another
edgelr module, so it can be copied by itself onto a device next to the model.

Example::

    from runtime import Predictor          # or: from edgelr.runtime import Predictor
    model = Predictor("model.onnx")
    model.predict_proba([[3.0, 2.0]])      # float32 array of shape (1, n_classes)
    model.predict([{"lab_hours": 2, "lecture_hours": 3}])

A model with text columns takes them by name too (mappings or a DataFrame), as strings;
a missing value is None, NaN or "" (the graph's own input for it is "").
"""

from __future__ import annotations

import _thread
import json
import math
import os
import re
from collections.abc import Mapping

import numpy as np
import onnxruntime as ort

__all__ = ["Drift", "Explanation", "Predictor", "PredictorError"]

METADATA_FORMAT = "1"
# Set by exports whose graph makes a row's probabilities NaN when its logits are not finite (a NaN
# or an infinity among its inputs, NaN where the model does not impute, or logits past float32).
NAN_ROWS_KEY, NAN_ROWS = "edgelr.non_finite", "nan"
# onnxruntime's CPU Gemm computes the rows of a batch past its last whole 16-row panel with another
# kernel, which can round the last bit differently: every call here is whole panels (a short one
# padded), so a row scores the same whatever else is in the batch.
_ALIGN = 16
# Rows per onnxruntime call on a big batch (a multiple of _ALIGN): its intermediate tensors are
# allocated once per thread and reused call after call, where one call on the whole batch faults
# ~50 MB of fresh memory in, and they stay in the core's cache between the graph's nodes.
_CHUNK_ROWS = 65_536
# Rows per scoring thread a batch needs before it is shared between threads. The session itself
# is single-threaded; the Predictor's threads take the chunks in turn, so one thread's memory-bound
# Gemm overlaps another's elementwise nodes, no node waits on onnxruntime's intra-op threads (a
# hand-off per node per chunk), and a thread that another process holds off a core delays the
# call by one chunk at most, not by half the batch.
_SPLIT_ROWS = 16_384
# Cells that mean "no value", as edgelr's CSV reader has them (edgelr.data.MISSING_TOKENS;
# repeated here because this file stands alone).
_MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL"})
# A number written as text, as edgelr's CSV reader takes one (edgelr.data._NUMBER, for the same reason).
_NUMBER = re.compile(r"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*")


class PredictorError(ValueError):
    """A model file or an input the predictor cannot use; the message says why."""


class Predictor:
    """Scores rows with an ONNX model written by ``edgelr export``.

    Parameters
    ----------
    path : str or PathLike
        The ``.onnx`` (or ``.ort``) file. It must be self-contained (no external data)
        and carry edgelr's metadata.
    threads : int or None
        Threads that score a big batch, each running its share of the rows through a
        single-threaded onnxruntime session; None: one per core this process may use
        (the count onnxruntime's own default takes). Batches under ~32,000 rows run on
        the calling thread alone.

    Safe to share between threads: onnxruntime sessions allow concurrent ``run`` calls,
    and the one thing the predictor keeps between calls, the padded panel of small
    batches, is each thread's own.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        self.path = os.fspath(path)
        self._session = _open_session(self.path, threads)
        # Each thread's padded panel for small batches, bound to the session (_small_batch).
        # threading.local is this class; importing threading would add ~1 ms to every cold
        # start of the edge runtime.
        self._panels = _thread._local()
        self._threads = threads or _cores()
        meta = self._session.get_modelmeta().custom_metadata_map
        if meta.get("edgelr.format") != METADATA_FORMAT:
            raise PredictorError(f"{self.path}: an ONNX model but not an edgelr model "
                                 f"(no edgelr.format '{METADATA_FORMAT}' in its metadata)")
        self.metadata: dict[str, str] = dict(meta)
        try:
            self.feature_names: list[str] = json.loads(meta["edgelr.feature_names"])
            self.classes: list = json.loads(meta["edgelr.classes"])
            self.threshold: float | None = (json.loads(meta["edgelr.threshold"])
                                            if "edgelr.threshold" in meta else None)
            # Models without text columns (and every file before them) have none of these.
            self.categorical_names: list[str] = json.loads(meta.get("edgelr.categorical_names", "[]"))
            self.categories: dict[str, list[str]] = json.loads(meta.get("edgelr.categories", "{}"))
            self.impute: str | None = meta.get("edgelr.impute") or None
        except (KeyError, ValueError) as exc:
            raise PredictorError(f"{self.path}: damaged edgelr metadata ({type(exc).__name__}: {exc}); "
                                 "expected the file as 'edgelr export' wrote it") from exc
        self._class_array = np.asarray(self.classes)
        self.columns: list[str] = self.feature_names + self.categorical_names  # every input, by name
        # Files exported before the graph propagated NaN: a non-finite input shows as NaN or an exact 0.
        self._nan_rows = meta.get(NAN_ROWS_KEY) == NAN_ROWS
        try:
            # Training ranges (for drift counts) and coefficients (for explanations): absent from older files.
            ranges = json.loads(meta.get("edgelr.ranges", "{}"))
            self.ranges: dict[str, tuple[float, float]] = {c: (float(lo), float(hi)) for c, (lo, hi) in ranges.items()}
            self._coefficients: dict | None = json.loads(meta["edgelr.coefficients"]) \
                if "edgelr.coefficients" in meta else None
        except (TypeError, ValueError) as exc:
            raise PredictorError(f"{self.path}: damaged edgelr metadata ({type(exc).__name__}: {exc}); "
                                 "expected the file as 'edgelr export' wrote it") from exc
        self._bounds = None
        if self.ranges and all(c in self.ranges for c in self.feature_names):
            low = np.array([self.ranges[c][0] for c in self.feature_names])
            high = np.array([self.ranges[c][1] for c in self.feature_names])
            # The inputs are float32: a training value v <= high is float32(v) <= float32(high) (rounding is
            # monotonic), so the training rows themselves are never out of range.
            self._bounds = (low, high, low.astype(np.float32), high.astype(np.float32))
        self._known = [frozenset(self.categories.get(c, ())) | {""} for c in self.categorical_names]

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities, float32 of shape (n_rows, n_classes); columns follow ``classes``."""
        return self._run(X, label=False)[1]

    def predict(self, X) -> np.ndarray:
        """Class names of shape (n_rows,), decided in the graph (binary threshold, else argmax)."""
        return self._class_array[self._run(X, proba=False)[0]]

    def predict_with_proba(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(class names of shape (n_rows,), probabilities of shape (n_rows, n_classes)) in one run."""
        label, proba = self._run(X)
        return self._class_array[label], proba

    def score(self, features, categories=None, *, as_index: bool = False, start: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
        """(class names (n_rows,), probabilities (n_rows, n_classes)) from the graph's own inputs.

        features : (n_rows, n_features) numbers in ``feature_names`` order, NaN where missing
        categories : (n_rows, len(categorical_names)) strings, "" where missing (text models)
        as_index : give each row's class as its index into ``classes`` (int64) instead of its name
        start : the first row's number in an error's message (a block of a longer input)
        """
        features = self._as_array(features)
        label, proba = self._run_inputs(features, self._text_input(categories, features.shape[0]), start=start)
        return (label if as_index else self._class_array[label]), proba

    @property
    def can_explain(self) -> bool:
        """Whether the file carries its coefficients (``edgelr.coefficients``; files since explanations)."""
        return self._coefficients is not None

    def explain(self, X) -> Explanation:
        """Each input column's contribution to the logit each row is explained by; see ``Explanation``.

        X : any input ``predict`` takes. Binary models explain the logit of the positive class
        (``classes[1]``); multiclass models the logit of each row's predicted class.
        """
        features, categories = self._by_name(X) if self.categorical_names or _by_name(X) else (self._as_array(X), None)
        labels = None
        if len(self.classes) > 2:
            labels = self._run_inputs(features, categories, proba=False)[0]
        else:
            self._check_finite(features, None)
        return self.explain_inputs(features, categories, labels)

    def explain_inputs(self, features: np.ndarray, categories: np.ndarray | None = None,
                       labels: np.ndarray | None = None) -> Explanation:
        """``explain`` of the graph's own inputs (as ``score`` takes them), validated by the caller.

        features : (n_rows, n_features) float32 in ``feature_names`` order, NaN where missing
        categories : (n_rows, n_text) strings, "" where missing (text models)
        labels : (n_rows,) predicted class indices; multiclass models need them, binary ones ignore them
        """
        c = self._coefficients
        if c is None:
            raise PredictorError(f"{self.path}: has no coefficients in its metadata (exported by an edgelr before "
                                 "explanations); expected a model exported again with 'edgelr export' to explain it")
        weight, intercept = np.asarray(c["weight"]), np.asarray(c["intercept"])  # (n_out, n_design), (n_out,)
        n = features.shape[0]
        binary = weight.shape[0] == 1
        if binary:
            outputs = np.zeros(n, dtype=np.int64)
        elif labels is None:
            raise PredictorError("a multiclass explanation needs each row's predicted class; expected labels")
        else:
            outputs = np.asarray(labels, dtype=np.int64)
        w = weight[outputs]  # (n, n_design): each row's explained output
        d = len(self.feature_names)
        x = np.asarray(features, dtype=np.float32).astype(np.float64)
        mean, scale = np.asarray(c["mean"]), np.asarray(c["scale"])
        indicators = list(c["indicators"])
        contributions = np.empty((n, len(self.columns)))
        if self.impute is not None:
            missing = np.isnan(x)
            fill = np.array([math.nan if v is None else v for v in c["fill"]])
            x = np.where(missing, fill, x)
        contributions[:, :d] = w[:, :d] * (x - mean[:d]) / scale[:d]
        for k, j in enumerate(indicators):  # an indicator's part belongs to its column
            contributions[:, j] += w[:, d + k] * (missing[:, j] - mean[d + k]) / scale[d + k]
        offset = len(mean)
        for t, name in enumerate(self.categorical_names):
            cats = self.categories[name]
            slot = {v: offset + i for i, v in enumerate(cats)}
            offset += len(cats)
            slots = np.array([slot.get(v, -1) for v in categories[:, t].tolist()], dtype=np.int64)
            coef = np.where(slots >= 0, w[np.arange(n), slots], 0.0)  # an unseen category has no coefficient
            contributions[:, d + t] = coef
        bias = intercept[outputs]
        explained = self._class_array[np.ones(n, dtype=np.int64) if binary else outputs]
        return Explanation(self.columns, contributions, bias, bias + contributions.sum(axis=1), explained)

    def drift(self, X) -> Drift:
        """Values of X outside their column's training range and categories never seen in training,
        counted (``Drift``); nothing is printed. A file without training ranges counts none."""
        features, categories = self._by_name(X) if self.categorical_names or _by_name(X) else (self._as_array(X), None)
        return self.drift_inputs(features, categories)

    def drift_inputs(self, features: np.ndarray, categories: np.ndarray | None = None, *, start: int = 0) -> Drift:
        """``drift`` of the graph's own inputs (as ``score`` takes them); ``start``: the first row's number."""
        drift = Drift(rows=features.shape[0])
        if self._bounds is not None and features.shape[0]:
            low, high, low32, high32 = self._bounds
            with np.errstate(over="ignore"):  # a value past float32 is infinitely far out
                x = features if features.dtype == np.float32 else np.asarray(features, dtype=np.float32)
            # Two comparisons per value (NaN, a missing value, compares False: never out of range); the
            # counting below only for a batch with values out.
            out = x < low32
            out |= x > high32
            if out.any():
                drift._add_range(x, out, self._bounds, self.feature_names, start)
        if categories is not None and categories.shape[0]:
            for t, name in enumerate(self.categorical_names):
                known = self._known[t]
                unseen = [i for i, v in enumerate(categories[:, t].tolist()) if v not in known]
                if unseen:
                    drift._add_unseen(name, [categories[i, t] for i in unseen], unseen[0] + start)
        return drift

    def _run(self, X, *, label: bool = True, proba: bool = True) -> tuple[np.ndarray, np.ndarray]:
        if self.categorical_names or _by_name(X):
            return self._run_inputs(*self._by_name(X), label=label, proba=proba)
        return self._run_inputs(self._as_array(X), None, label=label, proba=proba)

    def _run_inputs(self, features: np.ndarray, categories: np.ndarray | None, *, label: bool = True,
                    proba: bool = True, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(label indices, probabilities) of validated inputs; an output not asked for may be None.
        An error names a row by its index plus ``start``.

        Non-finite inputs are found from the output, not by a second pass over X. The graph
        makes a row's probabilities NaN when its logits are not finite, so only rows with a
        NaN are scanned, and the error names the first bad row and feature; finite inputs
        whose logits overflow float32 are an error of their own. Files exported before that
        (no ``edgelr.non_finite`` in the metadata) show a non-finite input as a NaN or an
        exact 0, so rows with an exact 0, saturated ones too, are scanned.

        A big batch is scored chunk by chunk (whole panels) on up to ``threads`` threads, each
        taking the next chunk when it is free (onnxruntime runs outside the GIL); the error of
        the earliest bad chunk is raised, so the first bad row is named whatever the threads.
        """
        n = features.shape[0]
        threads = min(self._threads, n // _SPLIT_ROWS) or 1
        if n <= _CHUNK_ROWS and threads == 1:
            labels, probabilities = self._run_block(features, categories)
            self._check_rows(features, probabilities, start)
            return labels, probabilities
        labels = np.empty(n, dtype=np.int64) if label else None
        probabilities = np.empty((n, len(self.classes)), dtype=np.float32) if proba else None
        whole = n - n % _ALIGN
        rows = min(_CHUNK_ROWS, -(-whole // threads // _ALIGN) * _ALIGN)  # whole panels, a chunk per thread at least
        chunks = [(a, min(a + rows, whole)) for a in range(0, whole, rows)] + ([(whole, n)] if whole < n else [])
        jobs = iter(range(len(chunks)))  # shared: each thread takes the next chunk when it is free
        failed: dict[int, BaseException] = {}

        def score(done=None) -> None:
            i = -1
            try:
                scorer = self._chunk_scorer(features, categories, labels, probabilities, rows, start)
                for i in jobs:
                    if failed and min(failed) < i:  # an earlier chunk has the first bad row
                        return
                    scorer(*chunks[i])
            except Exception as exc:  # raised by the caller: the earliest chunk's (Ctrl-C and SIGTERM go at once)
                failed[i] = exc
            finally:
                if done is not None:
                    done.release()

        # Helpers started without waiting for them (threading.Thread.start waits until the new thread
        # runs: milliseconds when other processes hold the cores): the calling thread scores at once,
        # and a helper takes the next chunk whenever it gets a core.
        helpers = [_thread.allocate_lock() for _ in range(threads - 1)]
        for done in helpers:
            done.acquire()
            _thread.start_new_thread(score, (done,))
        score()
        for done in helpers:
            done.acquire()  # released when that helper has no chunk left
        if failed:
            raise failed[min(failed)]
        return labels, probabilities

    def _chunk_scorer(self, features: np.ndarray, categories: np.ndarray | None, labels: np.ndarray | None,
                      probabilities: np.ndarray | None, rows: int, start: int):
        """A function scoring rows a:b into ``labels`` and ``probabilities`` (either may be None: not asked for)
        and checking them; b - a at most ``rows``, whole panels but for the batch's last rows. One per thread.
        ``start``: as ``_run_inputs``'."""
        width = len(self.classes)

        def copied(a: int, b: int) -> None:  # string inputs, or the rows past the last whole panel
            part_labels, part = self._run_block(features[a:b], None if categories is None else categories[a:b])
            self._check_rows(features[a:b], part, start + a)
            if labels is not None:
                labels[a:b] = part_labels
            if probabilities is not None:
                probabilities[a:b] = part

        if categories is not None:  # onnxruntime binds no string inputs: run, then copy
            return copied
        # Outputs written in place by onnxruntime: no copies. Labels not asked for are not bound: onnxruntime
        # keeps them in its own arena, reused run after run. Probabilities not asked for go to one chunk of
        # scratch, reused: the check reads them.
        binding = self._session.io_binding()
        scratch = None if probabilities is not None else np.empty((rows, width), dtype=np.float32)

        def bound(a: int, b: int) -> None:
            if (b - a) % _ALIGN:
                return copied(a, b)
            out = scratch[:b - a] if probabilities is None else probabilities[a:b]
            binding.bind_cpu_input("features", features[a:b])
            if labels is not None:
                binding.bind_output("label", "cpu", 0, np.int64, [b - a], labels[a:].ctypes.data)
            binding.bind_output("probabilities", "cpu", 0, np.float32, [b - a, width], out.ctypes.data)
            self._session.run_with_iobinding(binding)
            self._check_rows(features[a:b], out, start + a)

        return bound

    def _run_block(self, features: np.ndarray, categories: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """onnxruntime on whole 16-row panels: the rows past the last whole panel run on their own, padded
        (zeros, missing text); a copy of those few rows, not of the batch."""
        n = features.shape[0]
        tail = n % _ALIGN
        if not tail:
            return self._run_feeds(features, categories)
        if tail == n:
            if categories is None:
                return self._small_batch(features)
            labels, probabilities = self._run_feeds(_padded(features, 0.0), _padded(categories, ""))
            return labels[:n], probabilities[:n]
        whole = n - tail
        head_labels, head = self._run_feeds(features[:whole], None if categories is None else categories[:whole])
        tail_labels, rest = self._run_feeds(_padded(features[whole:], 0.0),
                                            None if categories is None else _padded(categories[whole:], ""))
        return np.concatenate((head_labels, tail_labels[:tail])), np.concatenate((head, rest[:tail]))

    def _small_batch(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels, probabilities) of fewer than _ALIGN numeric rows: the hot path of one row.

        Each thread has one panel of _ALIGN rows bound to onnxruntime once, input and both
        outputs (IOBinding): a call copies its rows in, runs, and copies its rows' outputs
        out, with no feeds to convert and no outputs to allocate (one row: ~3-5 us of a
        ~20 us call). The panel's other rows keep an earlier call's values; rows score
        independently and their outputs are dropped.
        """
        bound = getattr(self._panels, "bound", None)
        if bound is None:
            panel = np.zeros((_ALIGN, features.shape[1]), dtype=np.float32)
            labels, probabilities = np.empty(_ALIGN, dtype=np.int64), np.empty((_ALIGN, len(self.classes)), np.float32)
            binding = self._session.io_binding()
            binding.bind_cpu_input("features", panel)
            binding.bind_output("label", "cpu", 0, np.int64, list(labels.shape), labels.ctypes.data)
            binding.bind_output("probabilities", "cpu", 0, np.float32, list(probabilities.shape),
                                probabilities.ctypes.data)
            bound = self._panels.bound = (panel, labels, probabilities, binding)
        panel, labels, probabilities, binding = bound
        n = features.shape[0]
        panel[:n] = features
        self._session.run_with_iobinding(binding)
        return labels[:n].copy(), probabilities[:n].copy()

    def _run_feeds(self, features: np.ndarray, categories: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        feeds = {"features": features} if categories is None else {"features": features, "categories": categories}
        return self._session.run(["label", "probabilities"], feeds)

    def _check_rows(self, features: np.ndarray, probabilities: np.ndarray, start: int) -> None:
        """PredictorError naming the first bad value of the rows ``features`` that ``probabilities`` scored, a row
        by its index plus ``start``."""
        if self._nan_rows:
            # One pass: numpy's max is NaN when a value is (3x quicker than a sum, 7 against 22 us per
            # 65,536-row chunk). A few rows: Python's sum, ~5x quicker than numpy's call.
            top = sum(probabilities.ravel().tolist()) if probabilities.size <= 64 else probabilities.max()
            if top == top:
                return
            suspect = np.flatnonzero(np.isnan(probabilities).any(axis=1))
        else:  # NaN, or an exact 0 (exact zeros need a logit gap past ~88 otherwise)
            if probabilities.min(initial=1.0) > 0:  # a NaN makes min NaN
                return
            cells = np.flatnonzero(~(probabilities.reshape(-1) > 0))  # NaN compares False too
            suspect = np.unique(cells // probabilities.shape[1])
        self._check_finite(features, suspect, start)
        nan_rows = suspect[np.isnan(probabilities[suspect]).any(axis=1)]  # only the flagged rows: a hot path
        if nan_rows.size:  # finite inputs, yet the logits overflowed float32
            raise PredictorError(f"row {nan_rows[0] + start}: feature values too large to score in float32 "
                                 "(the logits overflow); expected values of the size the model was trained on")

    def as_features(self, X) -> np.ndarray:
        """The numeric input of X as float32 of shape (n_rows, n_features), validated (finite values,
        or NaN for a model that imputes).

        X : 2-D array-like, one 1-D row, a mapping or a list of mappings by feature name,
        or a pandas DataFrame (columns selected by name).
        """
        arr = self._by_name(X)[0] if _by_name(X) else self._as_array(X)
        self._check_finite(arr, None)
        return arr

    def _check_finite(self, arr: np.ndarray, rows: np.ndarray | None, start: int = 0) -> None:
        """PredictorError naming the first value of ``arr`` (of ``arr[rows]``, sorted rows) the model cannot take:
        infinity, or NaN when the model does not impute; a row by its index in ``arr`` plus ``start``."""
        part = arr if rows is None else arr[rows]
        finite = np.isfinite(part) | (np.isnan(part) if self.impute else False)
        if np.count_nonzero(finite) != finite.size:  # what .all() says, without its Python-level wrapper
            i, col = np.argwhere(~finite)[0]
            row = i if rows is None else rows[i]
            missing = (" (a missing value, which this model cannot fill in: it was trained without --impute)"
                       if np.isnan(arr[row, col]) else "")
            raise PredictorError(f"row {row + start}, feature '{self.feature_names[col]}' is {arr[row, col]}; "
                                 f"expected finite numbers{missing}")

    def _as_array(self, X) -> np.ndarray:
        """X (an array-like of numbers) as contiguous float32 (n_rows, n_features); shape and type checked.

        Strings are not numbers here, even when float() would read them ('1_000', non-ASCII
        digits): an array of them is an error naming the first column that holds one.
        """
        # The graph's input as it is (a plain array, not np.matrix or a masked one): nothing to
        # convert or check here, the hot path of one row.
        if (type(X) is np.ndarray and X.dtype == np.float32 and X.ndim == 2 and X.flags.c_contiguous
                and X.shape[1] == len(self.feature_names)):
            return X
        arr = X if isinstance(X, np.ndarray) else np.asarray(X)
        if arr.dtype.kind in "USO":
            arr = self._strict_numbers(arr)
        try:
            # No copy when X is float32 already. A value past float32 becomes inf, which the
            # finite check then names: no RuntimeWarning on top of that error.
            with np.errstate(over="ignore"):
                arr = np.asarray(arr, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise PredictorError(f"input is not numeric ({exc}); expected numbers for the features "
                                 f"{', '.join(self.feature_names)}") from exc
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != len(self.feature_names):
            raise PredictorError(f"input has shape {np.shape(X)}; expected (n_rows, {len(self.feature_names)}) "
                                 f"with the features {', '.join(self.feature_names)}")
        return np.ascontiguousarray(arr)

    def _strict_numbers(self, arr: np.ndarray) -> np.ndarray:
        """An object or string array of numbers as float64, each column checked by ``_numbers``."""
        rows = arr.reshape(1, -1) if arr.ndim == 1 else arr
        if rows.ndim != 2 or rows.shape[1] != len(self.feature_names):
            return arr  # the shape check names the problem
        return np.stack([_numbers(rows[:, j].tolist(), name) for j, name in enumerate(self.feature_names)], axis=1)

    def _by_name(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        """(features float32, categories or None) from mappings or a DataFrame, columns by name."""
        if isinstance(X, Mapping):
            X = [X]
        if _is_dataframe(X):
            self._check_names(set(map(str, X.columns)), where="the DataFrame", allow_extra=True)
            frame = X.rename(columns=str)
            numbers = [frame[name].to_numpy(dtype=np.float64, na_value=np.nan) if frame[name].dtype.kind in "biuf"
                       else frame[name].to_numpy(dtype=object) for name in self.feature_names]
            text = [frame[name].to_numpy(dtype=object) for name in self.categorical_names]
        elif isinstance(X, (list, tuple)) and all(isinstance(row, Mapping) for row in X):
            for i, row in enumerate(X):
                self._check_names(set(row), where=f"row {i}")
            numbers = [[row[name] for row in X] for name in self.feature_names]
            text = [[row[name] for row in X] for name in self.categorical_names]
        else:
            raise PredictorError(f"input is a {type(X).__name__}; this model has text columns "
                                 f"({', '.join(self.categorical_names)}), so it takes rows by column name: "
                                 f"mappings or a pandas DataFrame with {', '.join(self.columns)}")
        n = len(numbers[0]) if numbers else len(text[0]) if text else 0
        features = np.empty((n, len(self.feature_names)), dtype=np.float32)
        for j, (name, values) in enumerate(zip(self.feature_names, numbers)):
            features[:, j] = values if isinstance(values, np.ndarray) and values.dtype.kind == "f" \
                else _numbers(values, name)
        if not self.categorical_names:
            return features, None
        categories = np.empty((n, len(self.categorical_names)), dtype=object)
        for j, values in enumerate(text):
            categories[:, j] = [_text_value(v) for v in values]
        return features, categories

    def _text_input(self, categories, n: int) -> np.ndarray | None:
        """The graph's string input (n, n_text) as given (strings, "" where missing), shape checked."""
        if not self.categorical_names:
            return None
        arr = None if categories is None else np.asarray(categories, dtype=object)
        if arr is not None and arr.ndim == 1 and len(self.categorical_names) == 1:
            arr = arr.reshape(-1, 1)
        if arr is None or arr.shape != (n, len(self.categorical_names)):
            raise PredictorError(f"categories: expected {n} rows of {len(self.categorical_names)} strings, for "
                                 f"the text columns {', '.join(self.categorical_names)}; got "
                                 f"{'none' if arr is None else f'shape {arr.shape}'}")
        return arr

    def _check_names(self, names: set, *, where: str, allow_extra: bool = False) -> None:
        missing = [n for n in self.columns if n not in names]
        unknown = sorted(map(str, names - set(self.columns))) if not allow_extra else []
        if missing or unknown:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(unknown)}"] if unknown else [])
            raise PredictorError(f"{where}: {'; '.join(parts)}; expected the features "
                                 f"{', '.join(self.columns)}")

    @property
    def session(self) -> ort.InferenceSession:
        """The underlying onnxruntime session (shared; safe for concurrent run calls). It runs each call on
        one thread: the Predictor shares a big batch between threads of its own."""
        return self._session

    def signature(self) -> list[tuple[str, object]]:
        """[("input" | "output", onnxruntime NodeArg with .name, .type, .shape), ...]."""
        return ([("input", a) for a in self._session.get_inputs()]
                + [("output", a) for a in self._session.get_outputs()])

    def __repr__(self) -> str:
        return f"Predictor({self.path!r}, features={len(self.feature_names)}, classes={self.classes!r})"


class Explanation:
    """Per-column contributions to one logit per row (``Predictor.explain``).

    columns : list of n_columns names: ``Predictor.columns`` (numeric, then text columns)
    contributions : float64 (n_rows, n_columns). A numeric column j: w_j (x_j - mean_j) / scale_j,
        x_j after imputation, plus its missing indicator's term when it has one; a text column:
        its category's coefficient (0 for a category never seen in training)
    intercept : float64 (n_rows,), the intercept of each row's explained logit
    logit : float64 (n_rows,), intercept + contributions.sum(axis=1): binary models, the logit of
        ``classes[1]``, log(p1 / p0); multiclass models, z of the predicted class, whose
        softmax over all classes' z is the probabilities (so logit - z_k = log(p_pred / p_k))
    explained : (n_rows,) the class each row's logit belongs to
    """

    def __init__(self, columns, contributions, intercept, logit, explained):
        self.columns, self.contributions, self.intercept = list(columns), contributions, intercept
        self.logit, self.explained = logit, explained

    def __repr__(self) -> str:
        return f"Explanation(rows={self.contributions.shape[0]}, columns={self.columns!r})"


class Drift:
    """Inputs unlike the training data, counted over one or more batches (``Predictor.drift``; ``merge``).

    out_of_range : {column: values outside its training range}
    unseen : {text column: values that are not one of its training categories}
    rows : rows looked at
    furthest : (column, value, distance, low, high) of the value furthest out, distance in units
        of the column's training range (high - low; 1 where that is 0); None when none is out
    first_row : the first row with a value out of range or unseen (from ``start``), or None
    most_unseen : (column, value, count) of the unseen value met most often, or None
    """

    def __init__(self, rows: int = 0):
        self.rows = rows
        self.out_of_range: dict[str, int] = {}
        self.unseen: dict[str, int] = {}
        self.range_rows = 0  # rows with at least one value out of range
        self.furthest: tuple[str, float, float, float, float] | None = None
        self.first_row: int | None = None
        self._unseen_values: dict[tuple[str, str], int] = {}

    @property
    def any(self) -> bool:
        return bool(self.out_of_range or self.unseen)

    @property
    def most_unseen(self) -> tuple[str, str, int] | None:
        if not self._unseen_values:
            return None
        (column, value), count = max(self._unseen_values.items(), key=lambda kv: kv[1])
        return column, value, count

    def merge(self, other: Drift) -> Drift:
        """Add ``other``'s counts (a later batch) to these; returns self."""
        self.rows += other.rows
        self.range_rows += other.range_rows
        for mine, theirs in ((self.out_of_range, other.out_of_range), (self.unseen, other.unseen),
                             (self._unseen_values, other._unseen_values)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        if other.furthest is not None and (self.furthest is None or other.furthest[2] > self.furthest[2]):
            self.furthest = other.furthest
        if self.first_row is None:
            self.first_row = other.first_row
        return self

    def shifted(self, start: int) -> Drift:
        """These counts with ``first_row`` counted from ``start`` rows earlier (a batch's place in a stream)."""
        if self.first_row is not None:
            self.first_row += start
        return self

    def lines(self) -> list[str]:
        """One line per kind of drift found: counts, and the worst offender."""
        out = []
        if self.out_of_range:
            column, value, distance, low, high = self.furthest
            side = "below" if value < low else "above"
            out.append(f"{_n(sum(self.out_of_range.values()), 'value')} outside their column's training range "
                       f"({self.range_rows} of {_n(self.rows, 'row')}; {_counts(self.out_of_range)}); furthest out: "
                       f"{column} = {value:.7g}, {distance:.3g} ranges {side} its training range "
                       f"[{low:.7g}, {high:.7g}]")
        if self.unseen:
            column, value, count = self.most_unseen
            out.append(f"{_n(sum(self.unseen.values()), 'category', 'categories')} never seen in training "
                       f"({_counts(self.unseen)}); most often: {column} = {value!r} ({_n(count, 'row')})")
        return out

    def _add_range(self, x, out, bounds, names, start: int) -> None:
        """Count the values of x (float32 (n, d)) flagged in ``out`` (outside [low, high]). Whole-array
        operations: a stream whose every batch drifts pays a few per batch."""
        low, high, low32, high32 = bounds
        counts = np.count_nonzero(out, axis=0)
        bad_rows = out.any(axis=1)
        for j in np.flatnonzero(counts).tolist():
            self.out_of_range[names[j]] = self.out_of_range.get(names[j], 0) + int(counts[j])
        lows, highs = x.min(axis=0), x.max(axis=0)
        gaps = np.flatnonzero(np.isnan(lows))  # columns with missing values: their extremes past the NaNs
        if gaps.size:
            lows[gaps], highs[gaps] = np.fmin.reduce(x[:, gaps], axis=0), np.fmax.reduce(x[:, gaps], axis=0)
        unit = np.where(high > low, high - low, 1.0)
        below, above = (low - lows) / unit, (highs - high) / unit  # in units of each column's range
        for distances, values in ((below, lows), (above, highs)):
            j = int(np.nanargmax(np.where(counts > 0, distances, -np.inf)))
            if counts[j] and distances[j] > 0 and (self.furthest is None or distances[j] > self.furthest[2]):
                self.furthest = (names[j], float(values[j]), float(distances[j]), float(low[j]), float(high[j]))
        self.range_rows += int(np.count_nonzero(bad_rows))
        first = int(np.argmax(bad_rows)) + start
        self.first_row = first if self.first_row is None else min(self.first_row, first)

    def _add_unseen(self, name: str, values: list, first: int) -> None:
        self.unseen[name] = self.unseen.get(name, 0) + len(values)
        for v in values:
            self._unseen_values[(name, v)] = self._unseen_values.get((name, v), 0) + 1
        self.first_row = first if self.first_row is None else min(self.first_row, first)

    def __repr__(self) -> str:
        return f"Drift(rows={self.rows}, out_of_range={self.out_of_range}, unseen={self.unseen})"


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _counts(counts: dict[str, int], shown: int = 3) -> str:
    """'a 5, b 2' for the columns with the most, then how many more: the warning stays one short line."""
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{name} {n}" for name, n in ranked[:shown])
    return text + (f" and {len(ranked) - shown} more columns" if len(ranked) > shown else "")


def _open_session(path: str, threads: int | None) -> ort.InferenceSession:
    if os.path.isdir(path):
        raise PredictorError(f"{path}: is a directory; expected an .onnx or .ort file written by 'edgelr export'")
    if not os.path.isfile(path):
        raise PredictorError(f"{path}: no such model file; expected an .onnx or .ort file written by 'edgelr export'")
    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures surface as PredictorError, not as log lines
    if threads is not None and threads < 1:
        raise PredictorError(f"threads must be >= 1, got {threads}")
    # One thread per run: the Predictor runs a big batch's chunks on threads of its own (_run_inputs).
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # No memory pattern: the arena's blocks of one chunk are reused by the next. A pattern, planned
    # after a run of each new shape, is one more block of fresh memory, faulted in on the second chunk.
    options.enable_mem_pattern = False
    with open(path, "rb") as handle:
        model = handle.read()
    try:
        # From bytes, not the path: onnxruntime then cannot resolve external data files,
        # so a model that is not self-contained fails here instead of reading side files.
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail / InvalidProtobuf / InvalidGraph
        text = str(exc)
        if "model_path must not be empty" in text or "external" in text.lower():
            raise PredictorError(f"{path}: keeps its weights in external data files; expected one "
                                 "self-contained file as 'edgelr export' writes") from exc
        reason = (text.strip().splitlines() or [type(exc).__name__])[0][:200]
        raise PredictorError(f"{path}: onnxruntime cannot load it, truncated or not an ONNX/ORT model "
                             f"({reason})") from exc


def _cores() -> int:
    """The cores this process may run on (onnxruntime's default thread count counts them too)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _padded(block: np.ndarray, fill) -> np.ndarray:
    """``block``'s rows, then rows of ``fill`` (0 or "") up to a multiple of _ALIGN rows."""
    shape = (block.shape[0] + (-block.shape[0]) % _ALIGN, *block.shape[1:])
    out = np.zeros(shape, dtype=block.dtype) if fill == 0 else np.full(shape, fill, dtype=block.dtype)
    out[: block.shape[0]] = block
    return out


def _by_name(X) -> bool:
    """Whether X gives its columns by name (mappings or a DataFrame) rather than by position."""
    if isinstance(X, np.ndarray):  # arrays skip the by-name forms: one row costs microseconds
        return False
    return (isinstance(X, Mapping) or _is_dataframe(X)
            or (isinstance(X, (list, tuple)) and bool(X) and isinstance(X[0], Mapping)))


def _numbers(values, name: str) -> np.ndarray:
    """One numeric column's values as float64, None and pandas' NA as NaN; a word is an error naming the column."""
    out = np.empty(len(values))
    for i, v in enumerate(values):
        if v is None or type(v).__name__ == "NAType":
            out[i] = math.nan
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[i] = v
        elif isinstance(v, str) and _NUMBER.fullmatch(v):  # '3.5' from a text source; not '1_000' or '١'
            out[i] = float(v)
        elif isinstance(v, str) and v.strip() in _MISSING_TOKENS:
            out[i] = math.nan
        else:
            raise PredictorError(f"row {i}, feature '{name}' is {v!r}; expected a number")
    return out


def _text_value(v) -> str:
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)) or type(v).__name__ == "NAType":
        return ""
    if isinstance(v, str):
        return "" if v.strip() in _MISSING_TOKENS else v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer()):
        return str(int(v))
    return str(v)


def _is_dataframe(X) -> bool:
    # Duck-typed so pandas is never imported here: it is not a runtime dependency.
    return hasattr(X, "columns") and hasattr(X, "to_numpy") and hasattr(X, "__getitem__")
