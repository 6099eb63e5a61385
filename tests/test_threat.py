"""Threat models: norms, exact projections (against scipy references), pixel-counting l0, validity."""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from landscape.errors import LandscapeError
from landscape.threat import ThreatModel, parse_eps


def test_norm_of_all_norms():
    d = torch.zeros(2, 3, 2, 2)
    d[0, :, 0, 0] = torch.tensor([0.1, -0.2, 0.3])   # one pixel, three channels
    d[0, 1, 1, 1] = -0.5                               # a second pixel
    d[1, 0, 0, 1] = 0.25
    assert ThreatModel("l0", 1).norm_of(d).tolist() == [2.0, 1.0]      # pixels, not entries
    assert torch.allclose(ThreatModel("l1", 1).norm_of(d), torch.tensor([1.1, 0.25]))
    assert torch.allclose(ThreatModel("l2", 1).norm_of(d), torch.tensor([(0.01 + 0.04 + 0.09 + 0.25) ** 0.5, 0.25]))
    assert torch.allclose(ThreatModel("linf", 0.5).norm_of(d), torch.tensor([0.5, 0.25]))


def test_l0_counts_pixels_once_across_channels():
    x = torch.full((1, 3, 4, 4), 0.5)
    xa = x.clone()
    xa[0, :, 1, 2] = torch.tensor([0.0, 1.0, 0.2])
    tm = ThreatModel("l0", 1)
    assert tm.norm_of(xa - x).item() == 1
    assert bool(tm.is_valid(x, xa))
    xa[0, 0, 3, 3] = 0.9
    assert not bool(tm.is_valid(x, xa))


def _reference_projection(v, lo, hi, norm, eps):
    """min ||z - v||^2 s.t. ||z||_p <= eps, lo <= z <= hi, by SLSQP on tiny vectors (float64)."""
    n = len(v)
    if norm == "l2":
        cons = [{"type": "ineq", "fun": lambda z: eps ** 2 - z @ z, "jac": lambda z: -2 * z}]
        res = minimize(lambda z: ((z - v) ** 2).sum(), np.clip(v, lo, hi) * 0, jac=lambda z: 2 * (z - v),
                       bounds=list(zip(lo, hi)), constraints=cons, method="SLSQP",
                       options={"ftol": 1e-14, "maxiter": 500})
        return res.x
    # l1: variables (z, t) with |z_i| <= t_i, sum t <= eps
    def f(w):
        return ((w[:n] - v) ** 2).sum()

    def jac(w):
        return np.concatenate([2 * (w[:n] - v), np.zeros(n)])
    A = np.zeros((2 * n + 1, 2 * n))
    A[:n, :n], A[:n, n:] = -np.eye(n), np.eye(n)      # t - z >= 0
    A[n:2 * n, :n], A[n:2 * n, n:] = np.eye(n), np.eye(n)   # t + z >= 0
    A[2 * n, n:] = -1                                  # eps - sum t >= 0
    b = np.zeros(2 * n + 1)
    b[2 * n] = eps
    cons = [{"type": "ineq", "fun": lambda w: A @ w + b, "jac": lambda w: A}]
    bounds = list(zip(lo, hi)) + [(0, None)] * n
    res = minimize(f, np.zeros(2 * n), jac=jac, bounds=bounds, constraints=cons, method="SLSQP",
                   options={"ftol": 1e-15, "maxiter": 1000})
    return res.x[:n]


@pytest.mark.parametrize("norm,eps", [("l1", 0.7), ("l1", 2.0), ("l2", 0.5), ("l2", 1.5)])
def test_l1_l2_projection_matches_scipy_reference(norm, eps):
    g = torch.Generator().manual_seed(3)
    tm = ThreatModel(norm, eps)
    for _ in range(6):
        x = torch.rand(1, 1, 2, 3, generator=g, dtype=torch.float64)
        xa = x + (torch.rand(x.shape, generator=g, dtype=torch.float64) * 2 - 1) * 1.5
        p = tm.project(x, xa)
        v = (xa - x).flatten().numpy()
        lo, hi = (-x).flatten().numpy(), (1 - x).flatten().numpy()
        ref = _reference_projection(v, lo, hi, norm, eps)
        assert np.abs((p - x).flatten().numpy() - ref).max() < 1e-4
        assert bool(tm.is_valid(x, p))
        # projecting a feasible point leaves it where it is
        assert torch.allclose(tm.project(x, p), p, atol=1e-9)


def test_l0_projection_is_exact_by_brute_force():
    g = torch.Generator().manual_seed(0)
    tm = ThreatModel("l0", 2)
    for _ in range(5):
        x = torch.rand(1, 2, 2, 3, generator=g, dtype=torch.float64)
        xa = x + torch.randn(x.shape, generator=g, dtype=torch.float64)
        p = tm.project(x, xa)
        c = (xa.clamp(0, 1) - x)                      # best in-box change per pixel
        best = float("inf")
        for keep in itertools.combinations(range(6), 2):
            m = torch.zeros(6, dtype=torch.float64)
            m[list(keep)] = 1
            z = x + c * m.view(1, 1, 2, 3)
            best = min(best, float(((z - xa) ** 2).sum()))
        assert abs(float(((p - xa) ** 2).sum()) - best) < 1e-12
        assert tm.norm_of(p - x).item() <= 2


def test_linf_projection_and_box():
    x = torch.tensor([[[[0.0, 0.5, 0.98]]]])
    xa = torch.tensor([[[[-0.3, 0.9, 1.5]]]])
    p = ThreatModel("linf", 0.1).project(x, xa)
    assert torch.allclose(p, torch.tensor([[[[0.0, 0.6, 1.0]]]]))


def test_is_valid_rejects_box_budget_and_nan():
    tm = ThreatModel("l2", 0.5)
    x = torch.full((3, 1, 2, 2), 0.5)
    xa = x.clone()
    xa[0, 0, 0, 0] = 1.2                 # out of the box
    xa[1, 0, 0, 0] = 0.5 + 0.6           # over budget (and out of box) -> use 0.4s below instead
    xa[1] = x[1] + 0.3                   # l2 norm 0.6 > 0.5
    xa[2, 0, 0, 0] = float("nan")
    assert tm.is_valid(x, xa).tolist() == [False, False, False]
    assert tm.is_valid(x, x).all()
    with pytest.raises(LandscapeError):
        tm.assert_valid(x, xa)


def test_budget_parsing_and_errors():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    for bad in ("0", "-1", "abc", "1/0"):
        with pytest.raises(LandscapeError):
            parse_eps(bad)
    with pytest.raises(LandscapeError):
        ThreatModel("l0", 2.5)
    with pytest.raises(LandscapeError):
        ThreatModel("l0", 50).check_shape((1, 5, 5))
