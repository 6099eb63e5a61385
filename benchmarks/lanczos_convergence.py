"""How many Hessian-vector products the top-k eigenvalues need: plain Lanczos against ARPACK.

Runs Lanczos with full reorthogonalisation and no restart for ``--steps`` steps on the clean
cross-entropy Hessian of a checkpoint (``--n-images`` held-out images in one batch, float32 operator,
as ``bench_reference.py --sections lanczos``). At each step it records the top-k Ritz values and
their residual bounds |β_m s_mi| (the norm of H·y − θ·y of each Ritz pair). Then it prints, per
step, the largest relative error of the top k against float64 ARPACK at tol 1e-9 (untimed) and the
largest relative residual. ARPACK (``landscape.analysis.estimators.lanczos_topk``, what
``landscape hessian`` runs) is run at each ``--tols`` on the same operator, with its HVP count and its
error.

This measures the HVP count alone: the time of one product is the same for every method. It answers
whether a better Krylov method could make top-20 ≥ 10x faster than PyHessian's defaults at full
small-cnn width (benchmarks/RESULTS.md, "Lanczos vs PyHessian").

    OMP_NUM_THREADS=2 python benchmarks/lanczos_convergence.py --checkpoint CK --n-images 100 --steps 200
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch


def plain_lanczos(op, k: int, steps: int, seed: int = 0):
    """Per step ``m >= k``: ``(m, top-k Ritz values, their residual bounds)``."""
    from landscape.analysis.estimators import _matvec_t
    n = op.shape[0]
    q = np.random.RandomState(seed).standard_normal(n)
    Q = np.zeros((steps + 1, n))
    Q[0] = q / np.linalg.norm(q)
    alpha, beta, out = [], [], []
    for j in range(steps):
        w = _matvec_t(op, Q[j])
        a = float(Q[j] @ w)
        w -= a * Q[j]
        if j:
            w -= beta[-1] * Q[j - 1]
        for _ in range(2):                              # full reorthogonalisation, twice
            w -= Q[:j + 1].T @ (Q[:j + 1] @ w)
        b = float(np.linalg.norm(w))
        alpha.append(a)
        beta.append(b)
        Q[j + 1] = w / b
        m = j + 1
        if m >= k:
            T = np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1)
            th, S = np.linalg.eigh(T)
            idx = np.argsort(th)[::-1][:k]
            out.append((m, th[idx], np.abs(b * S[-1, idx])))
        if m % 20 == 0:
            print(f"  plain Lanczos: {m}/{steps} steps", file=sys.stderr, flush=True)
    return out


def main():
    from common import hessian_sample, options
    a = options(checkpoint=("", "a landscape checkpoint (required)"), n_images=100, steps=200, topk=20,
                tols=("1e-2,1e-3,1e-4", "ARPACK tolerances to count"), threads=2, every=5,
                out=("", "write the numbers as JSON here"))
    if not a.checkpoint:
        raise SystemExit("give --checkpoint")
    torch.set_num_threads(a.threads)
    from landscape.analysis.estimators import lanczos_topk
    from landscape.analysis.hessian import HessianOperator, make_batches

    model, x, y = hessian_sample(a.checkpoint, a.n_images)      # the images bench_reference.py uses
    batches = make_batches(x, y, a.n_images)
    k = a.topk
    exact = np.sort(lanczos_topk(HessianOperator(model, "clean", batches, dtype="float64"), k, tol=1e-9,
                                 check=False, progress=False).eigenvalues)[::-1]

    def err(vals):
        return float(np.max(np.abs(np.sort(np.asarray(vals))[::-1] - exact) / np.abs(exact)))

    op = HessianOperator(model, "clean", batches, dtype="float32")
    t0 = time.perf_counter()
    rows = [{"hvp": m, "max_rel_err": err(th), "max_rel_residual": float(np.max(res / np.abs(th)))}
            for m, th, res in plain_lanczos(op, k, a.steps)]
    seconds = time.perf_counter() - t0
    arpack = []
    for tol in [float(t) for t in a.tols.split(",")]:
        op = HessianOperator(model, "clean", batches, dtype="float32")
        r = lanczos_topk(op, k, tol=tol, check=False, progress=False)
        arpack.append({"tol": tol, "hvp": int(r.n_hvp), "max_rel_err": err(r.eigenvalues)})

    n_par = sum(p.numel() for p in model.parameters())
    print(f"{n_par:,} parameters, {a.n_images} images, top {k}; reference λ1..λk: "
          f"{exact[0]:.4g} .. {exact[-1]:.4g}; plain Lanczos {a.steps} steps in {seconds:.0f} s")
    print("\n| HVPs | plain Lanczos: largest rel. error | largest rel. residual |\n|---|---|---|")
    for r in rows:
        if r["hvp"] % a.every == 0:
            print(f"| {r['hvp']} | {r['max_rel_err']:.1e} | {r['max_rel_residual']:.1e} |")
    print("\n| first step with every residual <= tol·|θ| | HVPs | error there | ARPACK at tol: HVPs | its error |")
    print("|---|---|---|---|---|")
    for ar in arpack:
        first = next((r for r in rows if r["max_rel_residual"] <= ar["tol"]), None)
        got = (f"{first['hvp']} | {first['max_rel_err']:.1e}" if first else f"> {a.steps} | -")
        print(f"| {ar['tol']:g} | {got} | {ar['hvp']} | {ar['max_rel_err']:.1e} |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"exact": exact.tolist(), "plain": rows, "arpack": arpack, "n_parameters": n_par,
                       "n_images": a.n_images}, f, indent=1)


if __name__ == "__main__":
    main()
