r"""Estimators of Hessian spectra, free functions on a :class:`~landscape.analysis.hessian.HessianOperator`.

================================  =================================================================
function                          what
================================  =================================================================
:func:`lanczos_topk`              top-k eigenpairs by Lanczos: without restart, fully
                                  reorthogonalised, where its basis fits in memory (the fewest
                                  products), else implicitly restarted (ARPACK through
                                  ``scipy.sparse.linalg.eigsh``); the default.
                                  ``precision="bfloat16"``: the Krylov space from bf16
                                  products, the pairs from a float32 Rayleigh-Ritz
:func:`power_iteration_pyhessian` top-k by PyHessian's power iteration with deflation (reference)
:func:`hutchinson_trace`          :math:`\operatorname{tr} H \approx \frac1s\sum_i z_i^\top H z_i`,
                                  Rademacher :math:`z_i`, with its standard error
:func:`slq_density`               spectral density by stochastic Lanczos quadrature (Ubaru et al.
                                  2017; Ghorbani et al. 2019) with Gaussian broadening
================================  =================================================================

Every eigenvalue carries its residual :math:`\|Hv-\lambda v\|` (for unit :math:`v`) and a flag
``converged = residual <= tol * |lambda|``. Every result reports the Hessian-vector products the
estimator spent (``n_hvp``, counted inside the operator), those spent checking residuals
(``n_hvp_check``) and the wall time. Distributed runs work unchanged: every rank runs the same
deterministic sequence (seeded start vectors) on the same all-reduced products.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.linalg import eigh_tridiagonal
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from .. import validate as _validate
from ..errors import LandscapeError
from ..progress import bar

#: the trapezoidal rule: ``np.trapezoid`` (numpy >= 2), ``np.trapz`` before it (pyproject allows numpy >= 1.24)
trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")


# ------------------------------------------------------------------------------------- results
@dataclass
class EigenResult:
    """Top eigenvalues (descending), unit eigenvectors (columns) and their quality."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray | None
    residuals: np.ndarray
    converged: np.ndarray
    tol: float
    method: str
    n_hvp: int
    n_hvp_check: int
    wall_time: float
    meta: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        lam = np.asarray(self.eigenvalues, dtype=float)
        return pd.DataFrame({"rank": np.arange(1, len(lam) + 1), "eigenvalue": lam,
                             "residual": np.asarray(self.residuals, dtype=float),
                             "rel_residual": np.asarray(self.residuals, dtype=float) / np.maximum(np.abs(lam), 1e-300),
                             "converged": np.asarray(self.converged, dtype=bool)})

    def summary(self) -> dict:
        return {"method": self.method, "k": int(len(self.eigenvalues)), "tol": self.tol,
                "n_hvp": self.n_hvp, "n_hvp_check": self.n_hvp_check, "wall_time_s": round(self.wall_time, 4),
                "all_converged": bool(np.all(self.converged)), **self.meta}


@dataclass
class TraceResult:
    trace: float
    stderr: float
    n_samples: int
    samples: np.ndarray
    n_hvp: int
    wall_time: float

    def summary(self) -> dict:
        return {"trace": self.trace, "trace_stderr": self.stderr, "trace_samples": self.n_samples,
                "trace_n_hvp": self.n_hvp, "trace_wall_time_s": round(self.wall_time, 4)}


@dataclass
class DensityResult:
    """Spectral density on ``grid`` plus the raw quadrature (``nodes[r]``, ``weights[r]`` per run)."""

    grid: np.ndarray
    density: np.ndarray
    nodes: list
    weights: list
    sigma: float
    n_hvp: int
    wall_time: float
    n_params: int

    @property
    def run_means(self) -> np.ndarray:
        """``v_r^T H v_r`` of each unit start vector (the first moment of each run's quadrature)."""
        return np.array([float(np.dot(w, t)) for t, w in zip(self.nodes, self.weights)])

    @property
    def trace_estimate(self) -> float:
        return float(self.n_params * self.run_means.mean())

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"eigenvalue": self.grid, "density": self.density})

    def summary(self) -> dict:
        return {"n_v": len(self.nodes), "n_steps": int(max(len(t) for t in self.nodes)), "sigma": self.sigma,
                "n_hvp": self.n_hvp, "wall_time_s": round(self.wall_time, 4),
                "trace_estimate": self.trace_estimate,
                "integral": float(trapezoid(self.density, self.grid))}


# ------------------------------------------------------------------------------------- helpers
def _n_hvp(op) -> int:
    return int(getattr(op, "n_hvp", 0))


def _matvec_t(op, v: np.ndarray) -> np.ndarray:
    """``op @ v`` in float64 numpy."""
    return np.asarray(op.matvec(v.astype(op.dtype, copy=False)), dtype=np.float64).reshape(-1)


def _torch_matvec(op, device):
    """``v -> op @ v`` for torch vectors: the operator's own ``hvp`` where it has one (no numpy round
    trip; the result stays on the operator's device), else its matvec in float64 numpy, on ``device``."""
    if hasattr(op, "hvp"):
        return op.hvp

    def mv(v):
        return torch.from_numpy(_matvec_t(op, v.double().cpu().numpy())).to(device)
    return mv


@contextmanager
def quiet_blas(op):
    """While ``op``'s products run on the CPU, numpy's and scipy's BLAS (ARPACK's and the
    reorthogonalisation's vector work) use one thread. OpenBLAS keeps its threads spinning for a while
    after each call, on the cores torch's threads need for the next Hessian-vector product. On the
    2-core machine this made each product of a Lanczos run about 1.3x slower than the same product
    alone (benchmarks/RESULTS.md). An operator on a GPU leaves the BLAS threads as they are."""
    dev = getattr(op, "device", None)
    if dev is not None and torch.device(dev).type != "cpu":
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _check_k(op, k: int) -> None:
    n = op.shape[0]
    if int(k) != k or k <= 0:
        raise LandscapeError(f"`k` must be a positive integer, got {k}")
    if k >= n:
        raise LandscapeError(f"`k` {k} is too large: the Hessian has {n} parameters, so at most {n - 1} "
                             "eigenvalues can be computed this way")


def residuals(op, eigenvalues, vectors: np.ndarray, progress=None) -> np.ndarray:
    """``||H v_i - lambda_i v_i||`` for unit columns ``v_i`` of ``vectors`` (one HVP each)."""
    out = []
    for i in bar(range(len(eigenvalues)), desc="residuals", progress=progress):
        v = vectors[:, i] / np.linalg.norm(vectors[:, i])
        out.append(float(np.linalg.norm(_matvec_t(op, v) - eigenvalues[i] * v)))
    return np.array(out)


def _default_tol(op) -> float:
    return 1e-8 if op.dtype == np.float64 else 1e-4


# --------------------------------------------------------------------------------- Lanczos top-k
def _sort_and_check(op, lam, vec, tol: float, check: bool, progress, t0: float):
    """Order eigenpairs by decreasing eigenvalue, time the solve, then (optionally) compute the
    residuals ``||Hv - λv||`` with their own HVP count and the converged flags (residual <= tol·|λ|)."""
    order = np.argsort(lam)[::-1]
    lam, vec = np.asarray(lam, dtype=np.float64)[order], np.asarray(vec)[:, order]
    t_solve = time.perf_counter() - t0
    if check:
        n1 = _n_hvp(op)
        res = residuals(op, lam, vec, progress)
        n_check = _n_hvp(op) - n1
    else:
        res, n_check = np.full(len(lam), np.nan), 0
    conv = res <= tol * np.abs(lam) if check else np.ones(len(lam), dtype=bool)
    return lam, vec, res, conv, n_check, t_solve


SOLVERS = ("auto", "full", "arpack")


def _full_basis(op, k: int, ncv: int | None):
    """The unrestarted solver's basis: ``(steps, device)``, or None where it does not fit
    a quarter of the memory free on the operator's device (``landscape.device.available_memory``).
    Always float64: a float32 basis left errors of up to 5.5e-5 in the full-width small-cnn's top 20
    (float32 products), against 7e-8 for ARPACK, which works in float64."""
    from ..device import available_memory
    n = op.shape[0]
    steps = int(min(n, ncv if ncv is not None else max(10 * k, 100)))
    device = torch.device(getattr(op, "device", "cpu"))
    if steps * n * 8 > available_memory(device) // 4:
        return None
    return steps, device


def _ritz(alpha, beta, k: int, which: str):
    """Top-``k`` Ritz values of the tridiagonal (``which``: LA or LM), their vectors in the Lanczos
    basis (columns) and the last components of those vectors."""
    theta, S = eigh_tridiagonal(np.asarray(alpha), np.asarray(beta)) if len(alpha) > 1 else \
        (np.asarray(alpha, dtype=np.float64), np.ones((1, 1)))
    key = theta if which == "LA" else np.abs(theta)
    idx = np.argsort(key)[::-1][:k]
    return theta[idx], S[:, idx]


def _lanczos_steps(mv, q: torch.Tensor, steps: int, dtype, device):
    """Lanczos from the unit vector ``q``, every new vector reorthogonalised against the whole basis
    (classical Gram-Schmidt, a second pass where the first removed much: "twice is enough").

    Yields ``(alpha, beta, b, basis, exhausted)`` after each step: the tridiagonal so far (``beta`` one
    shorter than ``alpha``), the norm ``b`` of the next Lanczos vector before it is normalised, the
    basis (rows, on ``device`` in ``dtype``) and whether the Krylov space is exhausted (``b``
    negligible). Stops after ``steps`` steps or at exhaustion; ``mv(v)`` is the operator's product."""
    Q = torch.empty(steps, q.numel(), dtype=dtype, device=device)
    alpha: list[float] = []
    beta: list[float] = []
    scale = 0.0
    for j in range(steps):
        Q[j] = q
        w = mv(Q[j]).to(device=device, dtype=dtype)
        a = float(torch.dot(Q[j], w))
        w -= a * Q[j]
        if j:
            w -= beta[-1] * Q[j - 1]
        basis = Q[: j + 1]
        for _ in range(2):
            before = float(torch.linalg.vector_norm(w))
            w -= (basis @ w) @ basis
            b = float(torch.linalg.vector_norm(w))
            if b > 0.7071 * before:         # little was removed: orthogonal to the basis's rounding
                break
        alpha.append(a)
        scale = max(scale, abs(a))
        exhausted = b <= 1e-10 * max(scale, 1e-300)
        yield alpha, beta, b, basis, exhausted
        if exhausted or j == steps - 1:
            return
        beta.append(b)
        q = w / b


def _lanczos_full(v0: np.ndarray, k: int, tol: float, which: str, steps: int, device, mv):
    """Lanczos without restart from ``v0``, in float64 on ``device``, until the top-``k`` Ritz pairs'
    residuals ``b |s_mi|`` are all ``<= tol |theta_i|`` or the basis holds ``steps`` vectors.

    Returns ``(theta, Y, converged)``: Ritz values, Ritz vectors (numpy, columns) and whether they
    converged. The residual bound is the residual ``||H y - theta y||`` itself where the basis is
    orthogonal, which the reorthogonalisation keeps it to the basis's rounding."""
    dtype = torch.float64
    q = torch.from_numpy(v0 / np.linalg.norm(v0)).to(device=device, dtype=dtype)
    for alpha, beta, b, basis, exhausted in _lanczos_steps(mv, q, steps, dtype, device):
        if len(alpha) < k and not exhausted:
            continue
        theta, S = _ritz(alpha, beta, k, which)
        conv = np.ones(len(theta), dtype=bool) if exhausted else b * np.abs(S[-1]) <= tol * np.abs(theta)
        if conv.all() or len(alpha) == steps:
            Y = torch.from_numpy(np.ascontiguousarray(S.T)).to(device=device, dtype=dtype) @ basis
            return theta, Y.double().cpu().numpy().T, conv
    raise AssertionError("unreachable: the last step returns")


def lanczos_topk(op, k: int = 20, tol: float | None = None, maxiter: int | None = None, *, ncv: int | None = None,
                 which: str = "LA", seed: int = 0, check: bool = True, progress=None,
                 solver: str = "auto", precision: str = "float32") -> EigenResult:
    r"""Top-``k`` eigenpairs of a symmetric operator by Lanczos.

    ``solver``:

    - ``"full"``: Lanczos without restart, every new vector reorthogonalised against the whole basis,
      stopping as soon as the top-``k`` Ritz pairs' residuals are within ``tol``. Among single-start
      Krylov methods this needs the fewest products (ARPACK's restarts throw information away: about
      13% more products on the full-width small-cnn, benchmarks/RESULTS.md), at the price of a basis
      of up to ``ncv`` vectors (default ``max(10k, 100)``) kept on the operator's device. Should the
      basis fill up first, ARPACK goes on from its Ritz vectors (``meta["solver"]`` says so).
    - ``"arpack"``: implicitly restarted Lanczos (ARPACK through ``scipy.sparse.linalg.eigsh``), a
      basis of ``ncv`` vectors (default ``2k+1``), ``maxiter`` restarts.
    - ``"auto"`` (default): ``full`` where its basis fits a quarter of the free memory of the
      operator's device, else ``arpack``.

    Both start from the same seeded Gaussian vector, so every rank of a distributed run issues the same
    products, and work in float64 whatever the operator's dtype. ``which="LA"`` (default) gives the
    largest algebraic eigenvalues, ``"LM"`` the largest in magnitude (what power iteration finds).
    ``tol`` (default 1e-8 for float64 operators, 1e-4 for float32) bounds the relative residual
    ``||Hv - λv|| / |λ|`` of every returned pair.

    ``precision="bfloat16"`` (a float32 :class:`~landscape.analysis.hessian.HessianOperator` only)
    builds the Krylov space with bf16 products (``op.with_autocast``: about half a float32
    product's cost on a CPU with avx512_bf16), resolved to ``BF16_KRYLOV_TOL``, then settles the
    top ``k`` by Rayleigh-Ritz with ``k`` float32 products of its Ritz vectors. The returned
    residuals are the float32 operator's, computed exactly from those products (no check products).
    bf16's rounding leaves them near 2e-2 relative on small-cnn and the eigenvalues within about
    1e-3 (Rayleigh quotients are second order in the vectors' error), so ``tol`` defaults to
    ``BF16_TOL`` (5e-2) there. ``n_hvp`` counts both kinds of product; ``meta`` splits them.
    """
    _validate.solver_options(tol=tol, maxiter=maxiter)
    _check_k(op, k)
    if solver not in SOLVERS:
        raise LandscapeError(f"`solver` must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if which not in ("LA", "LM"):
        raise LandscapeError(f"`which` must be LA or LM, got {which!r}")
    if precision not in PRECISIONS:
        raise LandscapeError(f"`precision` must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bfloat16":
        return _lanczos_bf16(op, k, tol, maxiter, ncv=ncv, which=which, seed=seed, progress=progress,
                             solver=solver)
    tol = _default_tol(op) if tol is None else float(tol)
    n = op.shape[0]
    n0, t0 = _n_hvp(op), time.perf_counter()
    pbar = bar(desc=f"lanczos top-{k}", unit="hvp", progress=progress)

    def mv(v):
        pbar.update(1)
        return _matvec_t(op, np.asarray(v).reshape(-1))

    v0 = np.random.RandomState(seed).standard_normal(n)
    basis = None
    if solver != "arpack" and tol > 0:
        basis = _full_basis(op, k, ncv)
    if solver == "full" and basis is None:
        raise LandscapeError("the unrestarted Lanczos basis does not fit a quarter of the free memory "
                             "(or `tol` is 0); use `solver` arpack or a smaller `ncv`")
    note, used = None, "arpack"
    try:
        with quiet_blas(op):
            if basis is not None:
                steps, device = basis
                product = _torch_matvec(op, device)

                def mv_t(v):
                    pbar.update(1)
                    return product(v)
                lam, vec, conv = _lanczos_full(v0, k, tol, which, steps, device, mv_t)
                used, basis_size = "full", steps
                if not conv.all():      # the basis is full: ARPACK goes on from the Ritz vectors
                    used, ncv, v0, basis = "full, then arpack", None, vec.sum(axis=1), None
            if basis is None:
                ncv = min(n, max(2 * k + 1, 20)) if ncv is None else ncv
                basis_size = ncv
                A = LinearOperator((n, n), matvec=mv, rmatvec=mv, dtype=np.float64)
                lam, vec = eigsh(A, k=k, which=which, tol=tol, maxiter=maxiter, ncv=ncv, v0=v0)
    except ArpackNoConvergence as e:  # keep what converged; the flags say the rest did not
        lam, vec = e.eigenvalues, e.eigenvectors
        note = f"ARPACK stopped after maxiter with {len(lam)} of {k} eigenvalues"
    finally:
        pbar.close()
    n_solve = _n_hvp(op) - n0
    lam, vec, res, conv, n_check, t_solve = _sort_and_check(op, lam, vec, tol, check, progress, t0)
    meta = {"which": which, "solver": used, "ncv": basis_size, "seed": seed, "solve_time_s": round(t_solve, 4)}
    if note:
        meta["note"] = note
    return EigenResult(lam, vec, res, conv, tol, "lanczos", n_solve, n_check, time.perf_counter() - t0, meta)


PRECISIONS = ("float32", "bfloat16")
#: the bf16 Krylov phase's own tolerance: on the full-width small-cnn the float32 eigenvalues
#: stopped improving once the bf16 Ritz pairs were resolved this far (benchmarks/RESULTS.md)
BF16_KRYLOV_TOL = 1e-3
#: the default ``tol`` of the float32 pairs ``precision="bfloat16"`` returns: bf16's rounding leaves
#: their relative residuals near 2e-2
BF16_TOL = 5e-2


def _lanczos_bf16(op, k: int, tol, maxiter, *, ncv, which: str, seed: int, progress, solver: str) -> EigenResult:
    """``lanczos_topk(..., precision="bfloat16")``: the Krylov space from bf16 products, the pairs
    from a float32 Rayleigh-Ritz on its top-``k`` Ritz vectors."""
    if not hasattr(op, "with_autocast"):
        raise LandscapeError("`precision` bfloat16 needs a HessianOperator (it builds bf16 products)")
    if op.torch_dtype != torch.float32:
        raise LandscapeError("`precision` bfloat16 needs a float32 operator (`dtype` float32)")
    tol = BF16_TOL if tol is None else float(tol)
    t0 = time.perf_counter()
    low = op.with_autocast("bfloat16")
    first = lanczos_topk(low, k, tol=min(tol, BF16_KRYLOV_TOL), maxiter=maxiter, ncv=ncv, which=which,
                         seed=seed, check=False, progress=progress, solver=solver)
    low.clear_cache()
    n0 = _n_hvp(op)
    device = op.device
    Y = torch.from_numpy(np.ascontiguousarray(first.eigenvectors.T)).to(device=device, dtype=torch.float64)
    Y = torch.linalg.qr(Y.T).Q.T           # orthonormal to float64 rounding (they are to the basis's)
    pbar = bar(desc=f"rayleigh-ritz top-{k} (float32)", unit="hvp", total=len(Y), progress=progress)
    HY = torch.empty_like(Y)
    try:
        with quiet_blas(op):
            for i in range(len(Y)):
                HY[i] = op.hvp(Y[i]).to(torch.float64)
                pbar.update(1)
    finally:
        pbar.close()
    A = Y @ HY.T
    theta, S = torch.linalg.eigh((A + A.T) / 2)     # all k pairs are kept (`which` chose the space)
    V, HV = S.T @ Y, S.T @ HY
    res = torch.linalg.vector_norm(HV - theta[:, None] * V, dim=1)
    lam, vec, res = theta.cpu().numpy(), V.T.cpu().numpy(), res.cpu().numpy()
    desc = np.argsort(lam)[::-1]
    lam, vec, res = lam[desc], vec[:, desc], res[desc]
    meta = {**first.meta, "precision": "bfloat16", "n_hvp_bfloat16": first.n_hvp, "n_hvp_float32": _n_hvp(op) - n0,
            "krylov_tol": min(tol, BF16_KRYLOV_TOL)}
    return EigenResult(lam, vec, res, res <= tol * np.abs(lam), tol, "lanczos", first.n_hvp + _n_hvp(op) - n0, 0,
                       time.perf_counter() - t0, meta)


def top_eigenvectors(op, k: int = 2, **kwargs) -> list[list[torch.Tensor]]:
    """The top-``k`` Hessian eigenvectors, each as a list of tensors shaped like the selected
    parameters (``op.names``), e.g. the two directions of a ``--directions hessian`` surface."""
    res = lanczos_topk(op, k, **kwargs)
    return [op.to_list(res.eigenvectors[:, i]) for i in range(res.eigenvectors.shape[1])]


# ---------------------------------------------------------------------- PyHessian power iteration
def power_iteration_pyhessian(op, k: int = 20, tol: float = 1e-3, maxiter: int = 100, *, seed: int = 0,
                              check: bool = True, progress=None) -> EigenResult:
    """Top-``k`` eigenvalues by PyHessian's ``hessian(...).eigenvalues(top_n=k)`` on the operator's
    exact loss, batches, parameters and model mode (the reference the field knows).

    PyHessian finds eigenvalues of largest magnitude, one at a time, each stopping when two
    successive Rayleigh quotients differ by less than ``tol`` (relative), so its accuracy is about
    ``tol``, not a residual bound. Its HVPs are counted here; the residuals are checked with ``op``.
    """
    try:
        from pyhessian import hessian as PyHessian
    except ImportError:
        raise LandscapeError("`method` power needs the pyhessian package") from None
    _validate.solver_options(tol=tol, maxiter=maxiter)
    _check_k(op, k)
    if getattr(op, "distributed", False):
        raise LandscapeError("`method` power (pyhessian) does not run distributed; use `method` lanczos")

    class _BatchLoss(torch.nn.Module):
        # "inputs" of batch i are n_i copies of i, so that pyhessian weights batches by their size
        def __init__(self):
            super().__init__()
            self.inner = op.model

        def forward(self, idx):
            return op.loss(self.inner, op.batches[int(idx[0])])

    class _Counting(PyHessian):
        count = 0

        def dataloader_hv_product(self, v):
            type(self).count += 1
            pbar.update(1)
            return super().dataloader_hv_product(v)

    wrapper = _BatchLoss()
    data = [(torch.full((b.n,), i, dtype=torch.long, device=op.device), torch.zeros(1, device=op.device))
            for i, b in enumerate(op.batches)]
    selected = {id(p) for p in op.params}
    frozen = [p for p in op.model.parameters() if p.requires_grad and id(p) not in selected]
    old_dtype = torch.get_default_dtype()
    t0 = time.perf_counter()
    pbar = bar(desc=f"pyhessian top-{k}", unit="hvp", progress=progress)
    try:
        for p in frozen:
            p.requires_grad_(False)
        torch.set_default_dtype(op.torch_dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            h = _Counting(wrapper, lambda out, target: out, dataloader=data, cuda=op.device.type == "cuda")
            with op._context(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # pyhessian's backward(create_graph=True)
                lam, vecs = h.eigenvalues(maxIter=maxiter, tol=tol, top_n=k)
    finally:
        for p in op.model.parameters():
            p.grad = None  # pyhessian leaves graph-carrying .grad behind
        torch.set_default_dtype(old_dtype)
        for p in frozen:
            p.requires_grad_(True)
        pbar.close()
    n_solve = _Counting.count
    op.n_hvp += n_solve
    lam = np.asarray(lam, dtype=np.float64)
    vec = np.stack([op.to_flat(v).detach().cpu().double().numpy() for v in vecs], axis=1)
    lam, vec, res, conv, n_check, t_solve = _sort_and_check(op, lam, vec, tol, check, progress, t0)
    return EigenResult(lam, vec, res, conv, tol, "power", n_solve, n_check, time.perf_counter() - t0,
                       {"maxiter": maxiter, "seed": seed, "solve_time_s": round(t_solve, 4)})


# ------------------------------------------------------------------------------------ Hutchinson
def hutchinson_trace(op, n_samples: int = 100, seed: int = 0, progress=None) -> TraceResult:
    r"""Hutchinson's estimate :math:`\frac1s\sum_i z_i^\top H z_i` with Rademacher :math:`z_i`.

    All ``n_samples`` products are taken (no early stop); the standard error is the sample standard
    deviation over :math:`\sqrt{s}`.
    """
    _validate.solver_options(trace_samples=n_samples)
    n0, t0 = _n_hvp(op), time.perf_counter()
    rng = np.random.RandomState(seed)
    vals = []
    for _ in bar(range(n_samples), desc="hutchinson", unit="hvp", progress=progress):
        z = rng.randint(0, 2, size=op.shape[0]).astype(np.float64) * 2 - 1
        vals.append(float(np.dot(z, _matvec_t(op, z))))
    vals = np.array(vals)
    return TraceResult(float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(len(vals))), len(vals), vals,
                       _n_hvp(op) - n0, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------- SLQ
def lanczos_tridiagonal(op, v0: np.ndarray, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_steps`` Lanczos steps from ``v0`` with full reorthogonalisation (the unrestarted top-k
    solver's steps, float64 on the CPU); returns the tridiagonal's diagonal ``alpha`` and
    off-diagonal ``beta``. Stops early when the Krylov space is exhausted (``beta`` negligible)."""
    with quiet_blas(op):
        return _lanczos_tridiagonal(op, v0, n_steps)


def _lanczos_tridiagonal(op, v0: np.ndarray, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    q = torch.from_numpy(np.asarray(v0, dtype=np.float64) / np.linalg.norm(v0))
    cpu = torch.device("cpu")
    mv = _torch_matvec(op, cpu)
    for alpha, beta, *_ in _lanczos_steps(mv, q, int(min(n_steps, op.shape[0])), torch.float64, cpu):
        pass
    return np.array(alpha), np.array(beta)


def slq_density(op, n_v: int = 10, n_steps: int = 80, grid: int | np.ndarray = 1000, sigma: float | None = None,
                seed: int = 0, progress=None) -> DensityResult:
    r"""Spectral density of ``op`` by stochastic Lanczos quadrature with Gaussian broadening.

    For each of ``n_v`` Gaussian start vectors :math:`v` (unit), ``n_steps`` Lanczos steps give the
    tridiagonal :math:`T = U \operatorname{diag}(\theta) U^\top`; the nodes :math:`\theta_i` with
    weights :math:`w_i = U_{1i}^2` are a Gauss quadrature of the spectral measure seen from
    :math:`v`, and

    .. math:: \phi(t) = \frac{1}{n_v} \sum_{r} \sum_i w^{(r)}_i \, \mathcal N(t;\ \theta^{(r)}_i, \sigma^2)

    integrates to one and has mean :math:`\frac{1}{n_v}\sum_r v_r^\top H v_r \approx \operatorname{tr}H/n`.
    ``sigma`` defaults to 1% of the spectral range seen; ``grid`` is a number of points spanning
    that range (plus 5 sigma each side) or an explicit array.
    """
    if n_v < 1 or n_steps < 1:
        raise LandscapeError("the density needs n_v >= 1 and n_steps >= 1")
    _validate.number("sigma", sigma, positive=True, allow_none=True)   # before any product
    n0, t0 = _n_hvp(op), time.perf_counter()
    rng = np.random.RandomState(seed)
    nodes, weights = [], []
    for _ in bar(range(n_v), desc="slq", unit="run", progress=progress):
        a, b = lanczos_tridiagonal(op, rng.standard_normal(op.shape[0]), n_steps)
        theta, U = eigh_tridiagonal(a, b) if len(a) > 1 else (a.copy(), np.ones((1, 1)))
        nodes.append(theta)
        weights.append(U[0] ** 2)
    lo = min(float(t.min()) for t in nodes)
    hi = max(float(t.max()) for t in nodes)
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 1e-3
    if np.isscalar(grid):
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, int(grid))
    grid = np.asarray(grid, dtype=np.float64)
    dens = np.zeros_like(grid)
    for t, w in zip(nodes, weights):
        z = (grid[:, None] - t[None, :]) / sigma
        dens += (np.exp(-0.5 * z ** 2) / (sigma * np.sqrt(2 * np.pi))) @ w
    dens /= len(nodes)
    return DensityResult(grid, dens, nodes, weights, float(sigma), _n_hvp(op) - n0, time.perf_counter() - t0,
                         op.shape[0])


__all__ = ["DensityResult", "EigenResult", "TraceResult", "hutchinson_trace", "lanczos_topk",
           "lanczos_tridiagonal", "power_iteration_pyhessian", "residuals", "slq_density", "top_eigenvectors"]
