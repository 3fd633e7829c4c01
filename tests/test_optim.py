"""edgelr.optim: the optimizers written without torch.optim, against references."""

import subprocess
import sys

import pytest
import torch

from edgelr.optim import LBFGS, Adam, _strong_wolfe, sgd_step


def quadratic(seed: int, d: int = 10):
    """f(x) = 0.5 x'Ax - b'x with A positive definite (condition ~100): (evaluate, exact minimizer)."""
    gen = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    A = Q @ torch.diag(torch.logspace(0, 2, d, dtype=torch.float64)) @ Q.T
    b = torch.randn(d, generator=gen, dtype=torch.float64)

    def evaluate(x):
        return float(0.5 * x @ A @ x - b @ x), A @ x - b

    return evaluate, torch.linalg.solve(A, b)


def rosenbrock(x):
    f = 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2
    g = torch.stack([-400.0 * x[0] * (x[1] - x[0] ** 2) - 2.0 * (1.0 - x[0]), 200.0 * (x[1] - x[0] ** 2)])
    return float(f), g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lbfgs_reaches_the_minimizer_of_a_quadratic(seed):
    evaluate, exact = quadratic(seed)
    opt = LBFGS(torch.zeros(10, dtype=torch.float64), evaluate)
    for _ in range(100):
        if float(opt.grad.abs().max()) < 1e-12 or not opt.step():
            break
    # The line search compares objective values: x is resolved to ~sqrt(eps / smallest eigenvalue).
    torch.testing.assert_close(opt.x, exact, rtol=0, atol=1e-7)


def test_lbfgs_solves_rosenbrock_and_never_goes_up():
    opt = LBFGS(torch.tensor([-1.2, 1.0], dtype=torch.float64), rosenbrock)
    losses = [opt.loss]
    for _ in range(200):
        if float(opt.grad.abs().max()) < 1e-10 or not opt.step():
            break
        losses.append(opt.loss)
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    torch.testing.assert_close(opt.x, torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-6)


@pytest.mark.parametrize("t0", [1e-3, 1.0, 50.0])
def test_strong_wolfe_step_meets_both_conditions(t0):
    """Along the steepest descent of Rosenbrock from the textbook start, from a short, a unit and a long first trial."""
    x0 = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    f0, g0 = rosenbrock(x0)
    d = -g0 / g0.norm()
    slope0 = float(g0 @ d)
    t, f, g = _strong_wolfe(lambda t: rosenbrock(x0 + t * d), t0, d, f0, slope0, max_evals=25)
    assert t > 0
    assert f <= f0 + 1e-4 * t * slope0  # sufficient decrease
    assert abs(float(g @ d)) <= 0.9 * abs(slope0)  # curvature, the strong form
    assert (f, g.tolist()) == (rosenbrock(x0 + t * d)[0], rosenbrock(x0 + t * d)[1].tolist())


def test_adam_matches_torch_optim_adam():
    gen = torch.Generator().manual_seed(3)
    ours = [torch.randn(3, 4, generator=gen), torch.randn(3, generator=gen)]
    theirs = [p.clone().requires_grad_() for p in ours]
    adam = Adam(ours, lr=0.05)
    reference = torch.optim.Adam(theirs, lr=0.05)
    for _ in range(50):
        grads = [torch.randn(p.shape, generator=gen) + p for p in ours]  # depends on where the parameters are
        for p, g in zip(theirs, grads):
            p.grad = g.clone()
        reference.step()
        adam.step(grads)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q.detach(), rtol=1e-6, atol=1e-7)


def test_sgd_step_is_p_minus_lr_g():
    p = torch.tensor([1.0, -2.0])
    sgd_step([p], [torch.tensor([0.5, 4.0])], 0.1)
    assert p.tolist() == pytest.approx([0.95, -2.4])


def test_fitting_never_imports_the_torch_compiler():
    """torch.optim's optimizers import torch._dynamo (1.2-1.5 s) on first use; edgelr's fit must not."""
    code = """
import sys
import numpy as np
import edgelr
rng = np.random.default_rng(0)
X = rng.standard_normal((2000, 4)).astype(np.float32)
y = (X[:, 0] + rng.logistic(size=2000) > 0).astype(int)
for settings in [{}, {"optimizer": "sgd"}, {"optimizer": "adam"}, {"optimizer": "adam", "batch_size": 100},
                 {"optimizer": "sgd", "batch_size": 100}]:
    edgelr.LogisticRegression(device="cpu", epochs=3, **settings).fit(X, y)
y3 = np.digitize(X[:, 1], [-0.5, 0.5])
edgelr.LogisticRegression(device="cpu").fit(X, y3)
print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
