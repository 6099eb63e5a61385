"""The Hessian operator and its estimators against a dense float64 Hessian on tiny models."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.func import hessian as dense_hessian

from landscape.analysis.estimators import (hutchinson_trace, lanczos_topk, power_iteration_pyhessian,
                                           slq_density, top_eigenvectors, trapezoid)
from landscape.analysis.hessian import HessianOperator, LossSpec, hessian_operator, make_batches, select_parameters
from landscape.errors import LandscapeError
from landscape.models import build_model

N, BS = 7, 3  # an uneven last batch (3, 3, 1)


def micro_cnn():
    """A small-cnn with BatchNorm and 471 parameters (dense Hessians in about a second)."""
    torch.manual_seed(0)
    m = build_model("small-cnn", in_channels=1, num_classes=3, image_size=8, width=2, hidden=6, batchnorm=True)
    # non-trivial running statistics, so eval mode differs from train mode
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (N,), generator=g)
    delta = (torch.rand(x.shape, generator=g) - 0.5) * 0.2
    return x, y, (x + delta).clamp(0, 1)


def dense(model, x, y, names=None, mode="eval"):
    """Dense float64 Hessian of the example-weighted mean loss over batches of BS (reference)."""
    m = copy.deepcopy(model).double().train(mode == "train")
    if mode == "train":  # batch statistics, no running-buffer updates inside the transform
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.track_running_stats = False
                mod.running_mean = mod.running_var = None
    named = dict(m.named_parameters())
    names = names or list(named)
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    flat0 = torch.cat([named[n].detach().reshape(-1) for n in names])

    def f(flat):
        ps = {n: c.view(s) for n, c, s in zip(names, torch.split(flat, sizes), shapes)}
        total = 0.0
        for s in range(0, len(y), BS):
            out = functional_call(m, ps, (x[s:s + BS].double(),))
            total = total + F.cross_entropy(out, y[s:s + BS]) * len(y[s:s + BS])
        return total / len(y)

    # torch.func's vmap-based Hessians get training-mode BatchNorm (batch statistics) wrong here
    # (they disagree with finite differences of the gradient, torch 2.13 CPU), so train mode builds
    # the dense Hessian row by row without vmap (torch.autograd.functional, vectorize=False).
    if mode == "eval":
        H = dense_hessian(f)(flat0)
    else:
        H = torch.autograd.functional.hessian(f, flat0, vectorize=False)
    return H.detach().numpy(), torch.func.grad(f)(flat0).detach().numpy()


@pytest.fixture(scope="module")
def ref(data):
    x, y, _ = data
    model = micro_cnn()
    H, g = dense(model, x, y)
    return model, H, g


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_hvp_equals_dense_eval_mode_uneven_batches(data, ref):
    x, y, _ = data
    model, H, g = ref
    op = hessian_operator(model, x, y, batch_size=BS, dtype="float64")
    assert [b.n for b in op.batches] == [3, 3, 1]
    assert op.shape == H.shape and op.dtype == np.float64
    rng = np.random.RandomState(0)
    for _ in range(3):
        v = rng.standard_normal(op.shape[0])
        assert rel(op @ v, H @ v) < 1e-8
    assert op.n_hvp == 3 and op.hvp_time > 0
    assert rel(op.gradient().numpy(), g) < 1e-8
    # the symmetric operator's adjoint is itself, and matmat works column by column
    V = rng.standard_normal((op.shape[0], 2))
    assert rel(op.matmat(V), H @ V) < 1e-8 and rel(op.H @ V[:, 0], H @ V[:, 0]) < 1e-8
    assert not model.training


def test_hvp_equals_dense_train_mode_and_restores_model(data):
    x, y, _ = data
    model = micro_cnn().double()
    # the first conv and its BatchNorm (upstream of every batch statistic) and the last layer
    names = ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
             "classifier.5.weight", "classifier.5.bias"]
    H, _ = dense(model, x, y, names=names, mode="train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    op = hessian_operator(model, x, y, batch_size=BS, dtype=torch.float64, mode="train",
                          params=r"^(features\.[01]|classifier\.5)\.")
    assert op.names == names
    v = np.random.RandomState(1).standard_normal(op.shape[0])
    assert rel(op @ v, H @ v) < 1e-8
    assert not model.training  # mode restored
    for k, val in model.state_dict().items():  # BatchNorm running statistics untouched
        assert torch.equal(val, before[k]), k
    H_eval, _ = dense(model, x, y, names=names, mode="eval")
    assert rel(H_eval, H) > 1e-3  # the two modes really differ


def test_fixed_adversarial_loss_and_parameter_selection(data):
    x, y, x_adv = data
    model = micro_cnn()
    names = [n for n, _ in model.named_parameters() if n.startswith("classifier.")]
    H, _ = dense(model, x_adv, y, names=names)
    op = hessian_operator(model, x, y, x_adv=x_adv, loss="adversarial", batch_size=BS, dtype="float64",
                          params="classifier.*")
    assert op.names == names and op.shape[0] == H.shape[0]
    v = np.random.RandomState(2).standard_normal(op.shape[0])
    assert rel(op @ v, H @ v) < 1e-8
    # a regex selects the same, several patterns combine, no match is a user error
    assert select_parameters(model, r"^classifier\.") == select_parameters(model, "classifier.*")
    assert len(select_parameters(model, "features.0.*,classifier.5.*")) == 4
    with pytest.raises(LandscapeError, match="matches no parameter"):
        select_parameters(model, "nothing_like_this")
    # a custom loss function
    op2 = HessianOperator(model, LossSpec("adversarial", fn=lambda m, b: F.cross_entropy(m(b.x_adv), b.y)),
                          make_batches(x, y, BS, x_adv=x_adv), params="classifier.*", dtype="float64")
    assert rel(op2 @ v, H @ v) < 1e-8


def test_flat_round_trip(data, ref):
    x, y, _ = data
    op = hessian_operator(ref[0], x, y, batch_size=BS)
    flat = torch.randn(op.shape[0])
    parts = op.to_list(flat)
    assert [tuple(p.shape) for p in parts] == op.shapes
    assert torch.equal(op.to_flat(parts), flat)
    with pytest.raises(LandscapeError):
        op.to_list(torch.zeros(3))


def test_lanczos_top20_equals_eigvalsh_float64(data, ref):
    x, y, _ = data
    model, H, _ = ref
    exact = np.linalg.eigvalsh(H)[::-1]
    op = hessian_operator(model, x, y, batch_size=BS, dtype="float64")
    res = lanczos_topk(op, 20)
    assert np.max(np.abs(res.eigenvalues - exact[:20]) / np.abs(exact[:20])) < 1e-6
    assert res.converged.all() and (res.residuals <= 1e-8 * np.abs(res.eigenvalues)).all()
    assert res.n_hvp > 20 and res.n_hvp_check == 20 and op.n_hvp == res.n_hvp + res.n_hvp_check
    # eigenvectors: unit, and H v = lambda v
    v = res.eigenvectors[:, 0]
    assert abs(np.linalg.norm(v) - 1) < 1e-10 and rel(H @ v, exact[0] * v) < 1e-6
    df = res.to_frame()
    assert list(df["rank"]) == list(range(1, 21)) and df["converged"].all()
    vecs = top_eigenvectors(op, 2)
    assert len(vecs) == 2 and [tuple(t.shape) for t in vecs[0]] == op.shapes


def test_lanczos_float32_operator(data, ref):
    x, y, _ = data
    model, H, _ = ref
    exact = np.linalg.eigvalsh(H)[::-1]
    op = hessian_operator(model, x, y, batch_size=BS, dtype="float32")
    assert op.dtype == np.float32
    v = np.random.RandomState(3).standard_normal(op.shape[0])
    assert rel(op @ v, H @ v) < 1e-5
    res = lanczos_topk(op, 5)
    assert np.max(np.abs(res.eigenvalues - exact[:5]) / np.abs(exact[:5])) < 1e-4


def test_pyhessian_power_iteration_agrees(data, ref):
    x, y, _ = data
    model, H, _ = ref
    ev = np.linalg.eigvalsh(H)
    by_mag = ev[np.argsort(-np.abs(ev))]
    op = hessian_operator(model, x, y, batch_size=BS, dtype="float64")
    tol = 1e-4
    ph = power_iteration_pyhessian(op, 2, tol=tol, maxiter=200)
    lz = lanczos_topk(op, 2, which="LM")
    # both find the two eigenvalues of largest magnitude; power iteration to about its tolerance
    assert np.allclose(np.sort(ph.eigenvalues), np.sort(by_mag[:2]), rtol=100 * tol)
    assert np.allclose(np.sort(lz.eigenvalues), np.sort(by_mag[:2]), rtol=1e-8)
    assert ph.n_hvp > lz.n_hvp and ph.method == "power"
    assert all(p.grad is None for p in model.parameters())


def test_hutchinson_trace_within_standard_errors(data, ref):
    x, y, _ = data
    model, H, _ = ref
    op = hessian_operator(model, x, y, batch_size=BS, dtype="float64")
    tr = hutchinson_trace(op, n_samples=60, seed=0)
    assert tr.n_hvp == 60 and len(tr.samples) == 60 and tr.stderr > 0
    assert abs(tr.trace - np.trace(H)) < 4 * tr.stderr
    with pytest.raises(LandscapeError):
        hutchinson_trace(op, n_samples=1)


def test_slq_density_integrates_to_one_and_its_mean_is_trace_over_n(data, ref):
    x, y, _ = data
    model, H, _ = ref
    ev = np.linalg.eigvalsh(H)
    n = H.shape[0]
    op = hessian_operator(model, x, y, batch_size=BS, dtype="float64")
    d = slq_density(op, n_v=6, n_steps=25, grid=4000, seed=0)
    assert abs(trapezoid(d.density, d.grid) - 1) < 1e-3
    mean = trapezoid(d.grid * d.density, d.grid)
    assert abs(mean - d.run_means.mean()) < 1e-3 * np.abs(ev).max()  # quadrature keeps the first moment
    se = d.run_means.std(ddof=1) / np.sqrt(len(d.run_means))
    assert abs(d.run_means.mean() - np.trace(H) / n) < 4 * se
    for t, w in zip(d.nodes, d.weights):  # Ritz values lie inside the spectrum; weights sum to one
        assert t.min() >= ev.min() - 1e-8 and t.max() <= ev.max() + 1e-8
        assert abs(w.sum() - 1) < 1e-10
    assert abs(d.nodes[0].max() - ev.max()) < 1e-6 * ev.max()  # 25 steps find the top eigenvalue
    assert d.n_hvp <= 6 * 25
    n0 = op.n_hvp
    for bad in (-1.0, 0.0, float("nan")):   # refused before any product
        with pytest.raises(LandscapeError, match="`sigma`"):
            slq_density(op, n_v=2, n_steps=5, sigma=bad)
    assert op.n_hvp == n0


def test_bad_k(data, ref):
    x, y, _ = data
    op = hessian_operator(ref[0], x, y, batch_size=BS)
    for k in (0, -1, op.shape[0], op.shape[0] + 5):
        with pytest.raises(LandscapeError, match="`k`"):   # the library names its argument
            lanczos_topk(op, k)
    with pytest.raises(LandscapeError):
        hessian_operator(ref[0], x, y, batch_size=0)
    with pytest.raises(LandscapeError):
        hessian_operator(ref[0], x, y, batch_size=BS, mode="inference")
    with pytest.raises(LandscapeError):
        LossSpec("robust")


def test_recipe_loss_tradeoff_with_soft_labels(data):
    x, y, x_adv = data
    model = micro_cnn()
    soft = torch.softmax(torch.randn(N, 3, generator=torch.Generator().manual_seed(5)), dim=1)
    recipe = {"name": "t", "norm": "linf", "eps": 0.1, "loss": "tradeoff", "tradeoff_alpha": 0.25,
              "soft_labels": True}
    op = hessian_operator(model, x, y, x_adv=x_adv, targets=soft, loss=LossSpec("recipe", recipe=recipe),
                          batch_size=BS, dtype="float64", params="classifier.*")
    names = op.names

    # reference: (1-a) CE(f(x), t) + a CE(f(x_adv), t), soft targets, dense float64
    m = copy.deepcopy(model).double().eval()
    named = dict(m.named_parameters())
    sizes, shapes = [named[n].numel() for n in names], [named[n].shape for n in names]
    flat0 = torch.cat([named[n].detach().reshape(-1) for n in names])

    def f(flat):
        ps = {n: c.view(s) for n, c, s in zip(names, torch.split(flat, sizes), shapes)}
        total = 0.0
        for s in range(0, N, BS):
            t = soft[s:s + BS].double()
            ce = lambda z: -(t * F.log_softmax(z, 1)).sum(1).mean()  # noqa: E731
            lc = ce(functional_call(m, ps, (x[s:s + BS].double(),)))
            la = ce(functional_call(m, ps, (x_adv[s:s + BS].double(),)))
            total = total + (0.75 * lc + 0.25 * la) * len(t)
        return total / N

    H = dense_hessian(f)(flat0).detach().numpy()
    v = np.random.RandomState(4).standard_normal(op.shape[0])
    assert rel(op @ v, H @ v) < 1e-8


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_cached_gradient_graphs_equal_dense_and_follow_weight_changes(data, mode):
    """Products after the first reuse each batch's gradient graph; they stay exact, and an in-place
    change of the weights (or a cache that does not fit its budget) falls back to recomputing."""
    x, y, _ = data
    model = micro_cnn().double()
    H, _ = dense(model, x, y, mode=mode)
    op = hessian_operator(model, x, y, batch_size=BS, dtype="float64", mode=mode)
    plain = hessian_operator(model, x, y, batch_size=BS, dtype="float64", mode=mode, cache=False)
    rng = np.random.RandomState(4)
    for _ in range(3):
        v = rng.standard_normal(op.shape[0])
        assert rel(op @ v, H @ v) < 1e-8 and rel(plain @ v, H @ v) < 1e-8
        assert op.cached and not plain.cached and op.cache_bytes > 0
    if mode == "eval":
        assert rel(op.gradient().numpy(), dense(model, x, y)[1]) < 1e-8   # from the cached graphs
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.2)
    H2, _ = dense(model, x, y, mode=mode)
    assert rel(H2, H) > 1e-3
    assert rel(op @ v, H2 @ v) < 1e-8          # rebuilt for the new weights, not the stale graph
    for k, val in model.state_dict().items():
        if "running" in k or "num_batches" in k:
            assert torch.equal(val, before[k]), k   # train mode: BatchNorm statistics untouched
    tiny = hessian_operator(model, x, y, batch_size=BS, dtype="float64", mode=mode, cache_budget=10)
    assert rel(tiny @ v, H2 @ v) < 1e-8 and not tiny.cached and tiny.cache_bytes > 10
    with pytest.raises(LandscapeError, match="cache"):
        hessian_operator(model, x, y, batch_size=BS, cache="sometimes")


def test_blas_uses_one_thread_while_a_cpu_operators_products_run():
    """ARPACK's and the reorthogonalisation's BLAS calls run on one thread during a CPU operator's
    Lanczos runs: OpenBLAS's threads, spinning after each call, took the cores torch needed for the
    next product (each product 1.3x slower on 2 cores). Seen from inside the products."""
    from scipy.sparse.linalg import LinearOperator
    from threadpoolctl import threadpool_info

    from landscape.analysis.estimators import lanczos_tridiagonal

    A = np.diag(np.arange(1.0, 41.0))
    seen = []

    def mv(v):
        seen.append(max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=1))
        return A @ np.asarray(v).reshape(-1)
    op = LinearOperator((40, 40), matvec=mv, dtype=np.float64)
    res = lanczos_topk(op, 3, tol=1e-10, check=False)
    assert np.allclose(res.eigenvalues, [40, 39, 38])
    lanczos_tridiagonal(op, np.ones(40), 10)
    assert seen and set(seen) == {1}, set(seen)
