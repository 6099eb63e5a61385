"""``lanczos_topk(precision="bfloat16")``: a Krylov space from bf16 products (``HessianOperator``'s
``autocast``), the top k settled by a float32 Rayleigh-Ritz, against a dense float64 Hessian."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import LinearOperator

from landscape.analysis.estimators import BF16_TOL, lanczos_topk
from landscape.analysis.hessian import HessianOperator, hessian_operator
from landscape.errors import LandscapeError
from landscape.models import build_model


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    model = build_model("small-cnn", in_channels=1, num_classes=3, image_size=8, width=2, hidden=6).eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(12, 1, 8, 8, generator=g), torch.randint(0, 3, (12,), generator=g)
    op64 = hessian_operator(model, x, y, batch_size=5, dtype="float64")
    H = np.stack([op64.hvp(e).numpy() for e in torch.eye(op64.n_params, dtype=torch.float64)])
    return model, x, y, (H + H.T) / 2


def test_autocast_operator_is_a_cheaper_sibling(problem):
    model, x, y, H = problem
    op = hessian_operator(model, x, y, batch_size=5)
    low = op.with_autocast("bfloat16")
    assert low.autocast == torch.bfloat16 and op.autocast is None
    assert low.model is op.model and low.batches is op.batches      # shared, not copied
    v = torch.randn(op.n_params, generator=torch.Generator().manual_seed(2))
    exact = torch.from_numpy(H @ v.double().numpy())
    h32, h16 = op.hvp(v).double(), low.hvp(v).double()
    assert h16.dtype == torch.float64 and low.hvp(v).dtype == torch.float32
    e32 = float((h32 - exact).norm() / exact.norm())
    e16 = float((h16 - exact).norm() / exact.norm())
    assert e32 < 1e-5 and 1e-4 < e16 < 0.2, (e32, e16)          # bf16's rounding, and only that
    assert op.n_hvp == 1 and low.n_hvp == 2                      # counters of their own
    assert low.describe()["autocast"] == "bfloat16" and "autocast" not in op.describe()
    assert op.with_autocast(None).autocast is None


def test_bf16_lanczos_settles_the_pairs_in_float32(problem):
    model, x, y, H = problem
    k = 5
    exact = np.linalg.eigvalsh(H)[::-1][:k]
    op = hessian_operator(model, x, y, batch_size=5)
    res = lanczos_topk(op, k, precision="bfloat16", progress=False)
    m = res.meta
    assert m["precision"] == "bfloat16" and m["n_hvp_float32"] == k and op.n_hvp == k
    assert res.n_hvp == m["n_hvp_bfloat16"] + k and res.n_hvp_check == 0 and m["n_hvp_bfloat16"] > k
    assert res.tol == BF16_TOL
    V, lam = res.eigenvectors, res.eigenvalues
    assert np.allclose(V.T @ V, np.eye(k), atol=1e-10)
    assert (np.diff(lam) <= 0).all()
    # Rayleigh-Ritz: every value is its vector's Rayleigh quotient of the float32 Hessian, and the
    # residuals reported are the true ones
    rq = np.einsum("ij,ij->j", V, H @ V)
    assert np.max(np.abs(rq - lam) / np.abs(lam)) < 1e-5
    true_res = np.linalg.norm(H @ V - V * lam, axis=0)
    assert np.allclose(res.residuals, true_res, rtol=1e-3, atol=1e-6 * np.abs(lam).max())
    assert (res.converged == (res.residuals <= BF16_TOL * np.abs(lam))).all()
    err = np.max(np.abs(lam - exact) / np.abs(exact))
    # the bf16 Ritz values alone are worse: the float32 step is what makes them right
    low = lanczos_topk(op.with_autocast(), k, tol=1e-3, check=False, progress=False).eigenvalues
    err_low = np.max(np.abs(np.sort(low)[::-1] - exact) / np.abs(exact))
    assert err < 1e-3 and err < err_low / 3, (err, err_low)


def test_bf16_lanczos_on_the_arpack_solver(problem):
    model, x, y, H = problem
    exact = np.linalg.eigvalsh(H)[::-1][:3]
    op = hessian_operator(model, x, y, batch_size=5)
    res = lanczos_topk(op, 3, precision="bfloat16", solver="arpack", progress=False)
    assert res.meta["solver"] == "arpack" and res.meta["n_hvp_float32"] == 3
    assert np.max(np.abs(res.eigenvalues - exact) / np.abs(exact)) < 1e-3


def test_bf16_lanczos_bad_input(problem):
    model, x, y, H = problem
    op = hessian_operator(model, x, y, batch_size=5)
    with pytest.raises(LandscapeError, match="`precision` must be one of"):
        lanczos_topk(op, 3, precision="float16")
    with pytest.raises(LandscapeError, match="float32 operator"):
        lanczos_topk(hessian_operator(model, x, y, batch_size=5, dtype="float64"), 3, precision="bfloat16")
    dense = LinearOperator(H.shape, matvec=lambda v: H @ v, dtype=np.float64)
    with pytest.raises(LandscapeError, match="needs a HessianOperator"):
        lanczos_topk(dense, 3, precision="bfloat16")
    with pytest.raises(LandscapeError, match="autocast"):
        HessianOperator(model, "clean", op.batches, dtype="float64", autocast="bfloat16")
    with pytest.raises(LandscapeError, match="autocast"):
        op.with_autocast("float16")


def test_hessian_cli_bf16_precision(tmp_path, cli_run, monkeypatch):
    from tests.analysis.test_hessian_cli import COMMON, make_ckpt
    ck = make_ckpt(tmp_path / "c.pt")
    out = tmp_path / "spec"
    r = cli_run(["hessian", ck, "--topk", 3, "--loss", "clean", "--precision", "bfloat16", "--out", out, *COMMON])
    assert r.exit_code == 0, r.output
    m = json.loads(out.with_suffix(".json").read_text())["meta"]["checkpoints"][0]
    assert m["precision"] == "bfloat16" and m["n_hvp_float32"] == 3 and m["n_hvp"] == m["n_hvp_bfloat16"] + 3
    assert f"{m['n_hvp_bfloat16']} bf16 + 3 float32 HVPs" in r.stderr
    monkeypatch.setenv("LANDSCAPE_NO_PROGRESS", "0")     # the plan line on: the error must come before it
    for bad in (["--dtype", "float64"], ["--method", "power"]):
        r = cli_run(["hessian", ck, "--topk", 3, "--loss", "clean", "--precision", "bfloat16", *bad,
                     "--out", tmp_path / "x", *COMMON])
        assert r.exit_code == 2
        # one line, before the plan line and any work
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("landscape: error:") and "--precision" in lines[0], r.stderr
        assert not (tmp_path / "x.csv").exists()
