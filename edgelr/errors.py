"""Exceptions raised by the library.

Library code raises these with a message that says what was received, where, and what
was expected; only ``cli.py`` turns them into ``Error: ...`` lines and exit codes.
"""


class EdgelrError(Exception):
    """Base class of every error edgelr reports to a user."""


class DataError(EdgelrError, ValueError):
    """The input data cannot be used: bad cell, ragged row, missing column, one class."""


class CheckpointError(EdgelrError):
    """A file is not a readable edgelr checkpoint."""


class OutputError(EdgelrError):
    """An output path cannot be written (not a folder, read-only, ...)."""


class ModelFileError(EdgelrError):
    """A file is not a usable edgelr ONNX model."""


class ConfigError(EdgelrError, ValueError):
    """Inconsistent or out-of-range settings (C <= 0, unknown optimizer, no CUDA, ...)."""


class MissingExtraError(EdgelrError):
    """A training-side feature was used on an install without ``edgelr[train]``."""


class ParityError(EdgelrError):
    """onnxruntime and torch disagree beyond the tolerances.

    Carries the numbers so callers and tests can inspect them, not only the message.
    """

    def __init__(self, message: str, *, max_abs_diff: float, worst: list | None = None):
        super().__init__(message)
        self.max_abs_diff = max_abs_diff
        self.worst = worst or []
