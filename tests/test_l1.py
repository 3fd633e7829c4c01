"""L1 and elastic-net penalties: OWL-QN against closed forms, a proximal-gradient run, and scikit-learn's saga."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.preprocessing import StandardScaler

from edgelr.errors import ConfigError
from edgelr.model import LogisticModel
from edgelr.optim import OWLQN
from edgelr.rows import InMemoryRows
from edgelr.settings import TrainSettings
from edgelr.train import Objective, fit


def run(opt, iterations: int = 500, tol: float = 1e-12):
    for _ in range(iterations):
        if float(opt.grad.abs().max()) <= tol or not opt.step():
            break
    return opt.x


def test_owlqn_soft_thresholds_a_separable_quadratic():
    # f(x) = sum a_i (x_i - c_i)^2 / 2 + lam |x_i|: the minimizer is c_i shrunk by lam / a_i towards 0, and
    # exactly 0 where |c_i| <= lam / a_i (the last coordinate is not penalized).
    a = torch.tensor([1.0, 4.0, 0.5, 2.0, 3.0], dtype=torch.float64)
    c = torch.tensor([2.0, -0.1, 0.3, -1.5, 0.7], dtype=torch.float64)
    lam = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.0], dtype=torch.float64)

    def evaluate(x):
        return float(0.5 * (a * (x - c) ** 2).sum() + (lam * x.abs()).sum()), a * (x - c)

    x = run(OWLQN(torch.zeros(5, dtype=torch.float64), evaluate, lam))
    exact = torch.sign(c) * torch.clamp(c.abs() - lam / a, min=0.0)
    assert torch.equal(x == 0, exact == 0)  # the zeros are exact, not merely small
    torch.testing.assert_close(x, exact, rtol=0, atol=1e-10)


def test_owlqn_agrees_with_proximal_gradient_on_a_coupled_quadratic():
    gen = torch.Generator().manual_seed(3)
    d = 12
    B = torch.randn(40, d, generator=gen, dtype=torch.float64)
    A, b = B.T @ B / 40, torch.randn(d, generator=gen, dtype=torch.float64)
    lam = torch.full((d,), 0.3, dtype=torch.float64)

    def evaluate(x):
        return float(0.5 * x @ A @ x - b @ x + (lam * x.abs()).sum()), A @ x - b

    x = run(OWLQN(torch.zeros(d, dtype=torch.float64), evaluate, lam), iterations=2000)
    # The independent reference: ISTA (gradient step, then soft threshold), many small steps.
    step = 1.0 / float(torch.linalg.eigvalsh(A).max())
    ref = torch.zeros(d, dtype=torch.float64)
    for _ in range(100_000):
        z = ref - step * (A @ ref - b)
        ref = torch.sign(z) * torch.clamp(z.abs() - step * lam, min=0.0)
    assert 0 < int((ref == 0).sum()) < d  # the case has both zeros and non-zeros
    assert torch.equal(x == 0, ref == 0)
    torch.testing.assert_close(x, ref, rtol=0, atol=1e-8)


def penalized(X, y, W, b, C, l1_ratio):
    """scikit-learn's objective divided by C n, computed here in numpy: mean cross-entropy + penalty / (C n)."""
    Z = X @ W.T + b
    if W.shape[0] == 1:
        losses = np.logaddexp(0.0, Z[:, 0]) - y * Z[:, 0]
    else:
        top = Z.max(axis=1, keepdims=True)
        losses = np.log(np.exp(Z - top).sum(axis=1)) + top[:, 0] - Z[np.arange(len(y)), y]
    penalty = l1_ratio * np.abs(W).sum() + (1 - l1_ratio) / 2 * (W * W).sum()
    return losses.mean() + penalty / (C * len(y))


def saga(X, y, C, l1_ratio):
    with warnings.catch_warnings():  # saga at tol 1e-12 may say it has not converged; its objective is the reference
        warnings.simplefilter("ignore")
        return SkLogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-12, max_iter=200_000).fit(X, y)


def edgelr_fit(X, y, C, l1_ratio):
    model = LogisticModel(X.shape[1], len(np.unique(y)), dtype=torch.float64)
    rows = InMemoryRows(torch.from_numpy(X), None, torch.from_numpy(y), None)
    objective = Objective(model, rows, C=C, penalty="l2", l1_ratio=l1_ratio)
    history = fit(objective, TrainSettings(C=C, l1_ratio=l1_ratio, epochs=2000))
    return model.linear.weight.detach().numpy(), model.linear.bias.detach().numpy(), history


@pytest.mark.parametrize(("load", "C", "l1_ratio"), [
    (load_breast_cancer, 0.1, 1.0), (load_breast_cancer, 0.1, 0.5), (load_wine, 0.1, 1.0), (load_wine, 0.5, 0.5)])
def test_l1_and_elastic_net_reach_sagas_optimum_with_its_zeros(load, C, l1_ratio):
    X, y = load(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    sk = saga(X, y, C, l1_ratio)
    W, b, history = edgelr_fit(X, y, C, l1_ratio)
    ours, theirs = penalized(X, y, W, b, C, l1_ratio), penalized(X, y, sk.coef_, sk.intercept_, C, l1_ratio)
    assert (ours - theirs) / theirs <= 1e-6
    assert history[-1]["loss"] == pytest.approx(ours, rel=1e-9)  # the history reports the penalized objective
    assert 0 < int((W == 0).sum()) < W.size
    np.testing.assert_array_equal(W == 0, sk.coef_ == 0)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(l1_ratio=1.5), "l1_ratio must be between 0 and 1"),
    (dict(l1_ratio=0.5, penalty="none"), "penalty is 'none'"),
    (dict(l1_ratio=1.0, optimizer="sgd"), "needs the lbfgs optimizer"),
])
def test_bad_l1_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainSettings(**kwargs).validate()


def estimator_fit(X, y, **kwargs):
    import edgelr

    return edgelr.LogisticRegression(device="cpu", **kwargs).fit(X, y)


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_estimator_l1_ratio_reaches_sagas_optimum_on_scaled_data(l1_ratio):
    """LogisticRegression(l1_ratio=) without its own standardization: saga's objective and its zeros."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    sk = saga(X, y, 0.1, l1_ratio)
    model = estimator_fit(X, y, C=0.1, l1_ratio=l1_ratio, standardize=False)
    ours, theirs = (penalized(X, y, model.coef_, model.intercept_, 0.1, l1_ratio),
                    penalized(X, y, sk.coef_, sk.intercept_, 0.1, l1_ratio))
    assert (ours - theirs) / theirs <= 1e-6
    assert 0 < int((model.coef_ == 0).sum()) < model.coef_.size
    np.testing.assert_array_equal(model.coef_ == 0, sk.coef_ == 0)
    assert model.get_params()["l1_ratio"] == l1_ratio and model.config_["l1_ratio"] == l1_ratio


def test_estimator_l1_with_standardization_equals_a_scaler_pipeline():
    """standardize=True is make_pipeline(StandardScaler(), saga): coef_ are in the scaler's coordinates."""
    from sklearn.pipeline import make_pipeline

    X, y = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), SkLogisticRegression(C=0.1, l1_ratio=1.0, solver="saga", tol=1e-12,
                                                                    max_iter=200_000)).fit(X, y)
    scaler, sk = pipe
    model = estimator_fit(X, y, C=0.1, l1_ratio=1.0)
    np.testing.assert_allclose(model.mean_, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(model.scale_, scaler.scale_, rtol=1e-12)
    Z = scaler.transform(X)
    ours, theirs = penalized(Z, y, model.coef_, model.intercept_, 0.1, 1.0), penalized(Z, y, sk.coef_, sk.intercept_,
                                                                                     0.1, 1.0)
    assert (ours - theirs) / theirs <= 1e-6
    assert 0 < int((model.coef_ == 0).sum()) < model.coef_.size
    np.testing.assert_array_equal(model.coef_ == 0, sk.coef_ == 0)
    np.testing.assert_allclose(model.predict_proba(X), pipe.predict_proba(X), atol=1e-4)


def test_estimator_l1_ratio_is_validated():
    X, y = load_breast_cancer(return_X_y=True)
    with pytest.raises(ConfigError, match="l1_ratio must be between 0 and 1"):
        estimator_fit(X, y, l1_ratio=2.0)
    with pytest.raises(ConfigError, match="needs the lbfgs optimizer"):
        estimator_fit(X, y, l1_ratio=0.5, optimizer="adam")


def test_the_cli_trains_the_api_model_and_names_the_columns_it_ignores(tmp_path):
    from click.testing import CliRunner

    from edgelr import LogisticRegression
    from edgelr.cli import main
    from edgelr.runtime import Predictor

    X, y = load_breast_cancer(return_X_y=True)
    names = [f"f{i}" for i in range(X.shape[1])]
    path = tmp_path / "cancer.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header=",".join([*names, "label"]), comments="",
               fmt="%.17g")
    runner = CliRunner()
    result = runner.invoke(main, ["train", str(path), "--C", "0.1", "--l1-ratio", "0.5", "--val-fraction", "0",
                                  "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "m.onnx")]).exit_code == 0
    api = LogisticRegression(C=0.1, l1_ratio=0.5).fit(X, y)
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    np.testing.assert_array_equal(state["weight"].numpy() == 0, api.coef_ == 0)
    np.testing.assert_allclose(state["weight"].double().numpy(), api.coef_, atol=1e-6)
    proba = Predictor(tmp_path / "m.onnx").predict_proba(X.astype(np.float32))
    np.testing.assert_allclose(proba, api.predict_proba(X), atol=1e-5)
    ignored = [n for n, w in zip(names, api.coef_[0]) if w == 0]
    for model in ("m.pt", "m.onnx"):  # the checkpoint, and the ONNX file torch-free
        info = runner.invoke(main, ["info", str(tmp_path / model)]).output
        assert f"zero weight {len(ignored)} columns the model ignores (a device need not measure them): " \
               f"{', '.join(ignored)}" in info
