"""``lanczos_topk``'s solvers: Lanczos without restart (``full``, the default where its basis fits) and
ARPACK (``arpack``), against dense eigendecompositions, with the product counts that make ``full`` the
default, its fallback to ARPACK and the choice ``auto`` makes from the free memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import LinearOperator

from landscape.analysis import estimators
from landscape.analysis.estimators import lanczos_topk
from landscape.analysis.hessian import hessian_operator
from landscape.errors import LandscapeError
from landscape.models import build_model


def counted(A):
    """``A`` as a LinearOperator that counts its products in ``op.n_hvp`` (as the Hessian operator does)."""
    def mv(v):
        op.n_hvp += 1
        return A @ np.asarray(v).reshape(-1)
    op = LinearOperator(A.shape, matvec=mv, dtype=np.float64)
    op.n_hvp = 0
    return op


@pytest.fixture(scope="module")
def clustered():
    """A symmetric 400x400 matrix whose top 20 end in a cluster (as the full-width small-cnn's do),
    with negative eigenvalues larger in magnitude than some of the top 20 (LA and LM differ)."""
    rng = np.random.RandomState(0)
    n = 400
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    ev = np.concatenate([np.linspace(10, 4, 10), 2.4 + 0.3 * rng.rand(10), [-6.0, -3.5],
                         0.5 * rng.standard_normal(n - 22)])
    return (U * ev) @ U.T, ev


def top(ev, k, which):
    key = ev if which == "LA" else np.abs(ev)
    return np.sort(ev[np.argsort(key)[::-1][:k]])[::-1]


@pytest.mark.parametrize("which", ["LA", "LM"])
def test_full_equals_dense_and_needs_fewer_products_than_arpack(clustered, which):
    A, ev = clustered
    exact = top(ev, 20, which)
    runs = {}
    for solver in ("full", "arpack"):
        op = counted(A)
        res = lanczos_topk(op, 20, tol=1e-8, which=which, solver=solver, progress=False)
        assert res.meta["solver"] == solver
        assert np.max(np.abs(res.eigenvalues - exact) / np.abs(exact)) < 1e-10
        assert res.converged.all() and (res.residuals <= 1e-8 * np.abs(res.eigenvalues)).all()
        V = res.eigenvectors
        assert np.allclose(V.T @ V, np.eye(20), atol=1e-8)
        assert res.n_hvp_check == 20 and op.n_hvp == res.n_hvp + 20
        runs[solver] = res.n_hvp
    # no restart throws nothing away: fewer products on the same start vector
    assert runs["full"] < runs["arpack"], runs


def test_full_float32_hessian_operator_and_default(clustered):
    """The default on a small model's float32 Hessian is the unrestarted solver, and it agrees with the
    dense float64 spectrum to its tolerance."""
    torch.manual_seed(0)
    model = build_model("small-cnn", in_channels=1, num_classes=3, image_size=8, width=2, hidden=6).eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(9, 1, 8, 8, generator=g), torch.randint(0, 3, (9,), generator=g)
    op64 = hessian_operator(model, x, y, batch_size=4, dtype="float64")
    H = np.stack([op64.hvp(e).numpy() for e in torch.eye(op64.n_params, dtype=torch.float64)])
    exact = np.linalg.eigvalsh((H + H.T) / 2)[::-1][:8]
    op = hessian_operator(model, x, y, batch_size=4, dtype="float32")
    res = lanczos_topk(op, 8, progress=False)
    assert res.meta["solver"] == "full" and res.meta["ncv"] == 100
    assert np.max(np.abs(res.eigenvalues - exact) / np.abs(exact)) < 1e-4
    assert res.converged.all() and op.n_hvp == res.n_hvp + res.n_hvp_check


def test_full_basis_filled_then_arpack_goes_on(clustered):
    """A basis too small to converge in: ARPACK continues from the Ritz vectors, and the result is
    still right (and says how it was found)."""
    A, ev = clustered
    op = counted(A)
    res = lanczos_topk(op, 20, tol=1e-8, ncv=25, solver="full", progress=False)
    assert res.meta["solver"] == "full, then arpack" and res.meta["ncv"] == 41
    assert res.n_hvp > 25
    assert np.max(np.abs(res.eigenvalues - top(ev, 20, "LA")) / np.abs(top(ev, 20, "LA"))) < 1e-10


def test_auto_takes_arpack_where_the_basis_does_not_fit(clustered, monkeypatch):
    A, ev = clustered
    import landscape.device as device
    monkeypatch.setattr(device, "available_memory", lambda dev: 4 * 400 * 8 * 50)   # 50 vectors' worth
    res = lanczos_topk(counted(A), 5, tol=1e-8, progress=False)
    assert res.meta["solver"] == "arpack"
    assert np.allclose(res.eigenvalues, top(ev, 5, "LA"), rtol=1e-10)
    with pytest.raises(LandscapeError, match="does not fit"):
        lanczos_topk(counted(A), 5, solver="full", progress=False)
    monkeypatch.setattr(device, "available_memory", lambda dev: 4 * 400 * 8 * 100)
    assert lanczos_topk(counted(A), 5, tol=1e-8, progress=False).meta["solver"] == "full"


def test_bad_solver_and_which(clustered):
    A, _ = clustered
    with pytest.raises(LandscapeError, match="solver"):
        lanczos_topk(counted(A), 3, solver="lobpcg")
    with pytest.raises(LandscapeError, match="which"):
        lanczos_topk(counted(A), 3, which="SA")
    assert set(estimators.SOLVERS) == {"auto", "full", "arpack"}


def test_hessian_cli_and_api_solver(tmp_path, cli_run):
    import pandas as pd

    from landscape.analysis import api
    from tests.analysis.test_hessian_cli import make_ckpt
    ck = make_ckpt(tmp_path / "c.pt")
    common = ["--n-examples", 10, "--batch-size", 4, "--device", "cpu", "--topk", 3, "--loss", "clean"]
    vals = {}
    for solver in ("arpack", "full"):
        out = tmp_path / solver
        r = cli_run(["hessian", ck, "--solver", solver, "--out", out, *common])
        assert r.exit_code == 0, r.output
        m = json.loads(out.with_suffix(".json").read_text())["meta"]["checkpoints"][0]
        assert m["solver"] == solver
        vals[solver] = pd.read_csv(out.with_suffix(".csv"))["eigenvalue"].to_numpy()
    assert np.allclose(vals["full"], vals["arpack"], rtol=1e-3)
    r = cli_run(["hessian", ck, "--solver", "lobpcg", "--out", tmp_path / "bad", *common])
    assert r.exit_code != 0 and "Traceback" not in r.output and "--solver" in r.output
    df, meta = api.hessian_spectrum([ck], topk=3, loss="clean", n_examples=10, batch_size=4, device="cpu")
    assert meta["checkpoints"][0]["solver"] == "full"
    assert np.allclose(df["eigenvalue"].to_numpy(), vals["full"], rtol=1e-3)
    with pytest.raises(LandscapeError, match="solver"):
        api.hessian_spectrum([ck], topk=3, loss="clean", n_examples=10, solver="lobpcg")
