"""edgelr: logistic regression trained in PyTorch, shipped to the edge as ONNX.

``import edgelr`` stays light (no torch): the estimator is imported on first use, so
the torch-free predictor and CLI commands never pay for the training side.
"""

__version__ = "0.3.0"

__all__ = ["LogisticRegression", "__version__"]


def __getattr__(name: str):
    if name == "LogisticRegression":
        from edgelr.estimator import LogisticRegression

        return LogisticRegression
    raise AttributeError(f"module 'edgelr' has no attribute {name!r}")
