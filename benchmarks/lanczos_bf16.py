"""How far bf16 Hessian-vector products take Lanczos, and what the float32 Rayleigh-Ritz step recovers.

    OMP_NUM_THREADS=2 python benchmarks/lanczos_bf16.py --checkpoint CK --n-images 200 [--marks 100,110,120,130,140]

On one checkpoint's clean cross-entropy Hessian (``--n-images`` held-out images, batches of
``--batch-size``, graphs cached as ``HessianOperator`` caches them):

1. **One product.** float32, bf16 autocast (``HessianOperator(autocast="bfloat16")``, what
   ``lanczos_topk(precision="bfloat16")`` uses) and bf16 with the model's ``nn.Linear`` layers kept in
   float32: the relative error of each against the float64 product of the same vector, and the median
   time of ``--repeats`` interleaved products.
2. **Lanczos on bf16 products** (the same unrestarted, fully reorthogonalised iteration
   ``lanczos_topk`` runs, from the same start vector). At each of ``--marks`` steps: the bf16 Ritz
   values' largest relative error against a float64 Lanczos reference (tol 1e-9), the bf16 Ritz pairs'
   own residual bound, and after the float32 Rayleigh-Ritz on the top ``--topk`` Ritz vectors (``k``
   float32 products) the largest error and relative float32 residual; then a second Rayleigh-Ritz over
   those vectors and their residuals (``k`` more float32 products).
"""

from __future__ import annotations

import json
import statistics
import time
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def linear_in_float32(model):
    """Run every ``nn.Linear`` of ``model`` outside autocast (float32), the rest as autocast says."""
    saved = []
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            orig = m.forward

            def forward(x, _orig=orig):
                with torch.autocast(x.device.type, enabled=False):
                    return _orig(x.float())
            m.forward = forward
            saved.append((m, orig))
    try:
        yield
    finally:
        for m, orig in saved:
            m.forward = orig


def rayleigh_ritz(Y, HY):
    """Top pairs of the Rayleigh-Ritz problem on the orthonormal rows ``Y`` (``HY`` their products):
    values (descending), vectors and products of the vectors (rows), relative residuals."""
    A = Y @ HY.T
    w, U = torch.linalg.eigh((A + A.T) / 2)
    order = torch.argsort(w, descending=True)
    w, U = w[order], U[:, order]
    V, HV = U.T @ Y, U.T @ HY
    res = torch.linalg.vector_norm(HV - w[:, None] * V, dim=1) / w.abs()
    return w, V, HV, res


def main():
    from common import hessian_sample, options
    a = options(checkpoint=("", "a landscape checkpoint (required)"), n_images=200, batch_size=200, topk=20,
                marks=("100,110,120,130,140", "Lanczos steps at which to refine"), repeats=7, threads=2,
                sections=("products,steps,timed", "which parts to run"),
                timed_repeats=(0, "end-to-end float32 vs bfloat16 runs (0: none)"),
                reference_json=("", "a reference saved by lanczos_errors.py --json for this setting"))
    sections = set(a.sections.split(","))
    if not a.checkpoint:
        raise SystemExit("give --checkpoint")
    torch.set_num_threads(a.threads)
    from landscape.device import tune_cpu_allocator
    tune_cpu_allocator()
    from landscape.analysis.estimators import lanczos_topk
    from landscape.analysis.hessian import HessianOperator, make_batches

    model, x, y = hessian_sample(a.checkpoint, a.n_images)
    batches = make_batches(x, y, a.batch_size)
    op = HessianOperator(model, "clean", batches)
    low = op.with_autocast("bfloat16")
    op64 = HessianOperator(model, "clean", batches, dtype="float64")
    k = a.topk
    print(f"# {a.checkpoint}: {op.n_params:,} parameters, {a.n_images} images in batches of {a.batch_size}, "
          f"{torch.get_num_threads()} threads, top {k}")

    # the float64 reference the eigenvalues are judged against
    setting = {"checkpoint": a.checkpoint, "hessian_images": a.n_images, "hessian_batch": a.batch_size, "topk": k}
    if a.reference_json:
        saved = json.load(open(a.reference_json))
        if saved.get("setting") != setting:
            raise SystemExit(f"{a.reference_json} holds the reference of {saved.get('setting')}, not {setting}")
        ref, n_ref = np.asarray(saved["reference"]), saved["reference_hvp"]
    else:
        ref = np.sort(lanczos_topk(op64, k, tol=1e-9, progress=False, check=False).eigenvalues)[::-1]
        n_ref = op64.n_hvp
    print(f"\nreference (float64 Lanczos, tol 1e-9, {n_ref} products): {np.round(ref, 4).tolist()}")

    def err(vals):
        return float(np.max(np.abs(np.sort(np.asarray(vals))[::-1][:k] - ref) / np.abs(ref)))

    if "products" in sections:
        one_product(a, model, op, low, op64)
    del op64
    if "steps" in sections:
        steps(a, op, low, k, err)
    if "timed" in sections and a.timed_repeats > 0:
        timed(a, model, batches, k, err)


def one_product(a, model, op, low, op64):
    """Section 1: one product's error and time, float32 against bf16 (and bf16 with dense layers in float32)."""
    mixed = op.with_autocast("bfloat16")
    v = torch.randn(op.n_params, generator=torch.Generator().manual_seed(0))
    exact = op64.hvp(v.double())
    sides = {"float32": op.hvp, "bf16 autocast": low.hvp}

    def mixed_hvp(x):
        with linear_in_float32(model):
            return mixed.hvp(x)
    sides["bf16, nn.Linear in float32"] = mixed_hvp
    for f in sides.values():
        f(v)                                    # builds and keeps the graphs
    times = {name: [] for name in sides}
    for _ in range(a.repeats):
        for name, f in sides.items():
            t = time.perf_counter()
            f(v)
            times[name].append(time.perf_counter() - t)
    t32 = statistics.median(times["float32"])
    print("\n| product | rel. error vs float64 | median s | speed vs float32 |\n|---|---|---|---|")
    for name, f in sides.items():
        err = float((f(v).double() - exact).norm() / exact.norm())
        t = statistics.median(times[name])
        print(f"| {name} | {err:.1e} | {t:.3f} | {t32 / t:.2f}x |", flush=True)
    mixed.clear_cache()
    low.clear_cache()


def steps(a, op, low, k, err):
    """Section 2: Lanczos on bf16 products, refined in float32 at each mark."""
    from landscape.analysis.estimators import _lanczos_steps, _ritz
    marks = sorted(int(m) for m in a.marks.split(","))
    n = op.n_params
    v0 = np.random.RandomState(0).standard_normal(n)
    q = torch.from_numpy(v0 / np.linalg.norm(v0))

    def f32(x):
        return op.hvp(x).double()
    print("\n| bf16 steps | bf16 Ritz: error | bf16 Ritz: largest residual bound | float32 Rayleigh-Ritz (+k products): "
          "error | its largest rel. residual | second Rayleigh-Ritz with the residuals (+k more): error | its largest rel. residual |")
    print("|---|---|---|---|---|---|---|")
    for alpha, beta, b, basis, exhausted in _lanczos_steps(lambda x: low.hvp(x).double(), q, marks[-1],
                                                           torch.float64, "cpu"):
        m = len(alpha)
        if m not in marks:
            continue
        theta, S = _ritz(alpha, beta, k, "LA")
        bound = float(np.max(b * np.abs(S[-1]) / np.abs(theta)))
        Y = torch.from_numpy(np.ascontiguousarray(S.T)) @ basis
        HY = torch.stack([f32(y) for y in Y])
        w, V, HV, res = rayleigh_ritz(Y, HY)
        R = HV - w[:, None] * V
        R = R - (R @ V.T) @ V
        Qr = torch.linalg.qr(R.T).Q.T
        Qr = torch.linalg.qr((Qr - (Qr @ V.T) @ V).T).Q.T
        HQ = torch.stack([f32(x) for x in Qr])
        w2, _, _, res2 = rayleigh_ritz(torch.cat([V, Qr]), torch.cat([HV, HQ]))
        print(f"| {m} | {err(theta):.1e} | {bound:.1e} | {err(w[:k].numpy()):.1e} | {float(res[:k].max()):.1e} | "
              f"{err(w2[:k].numpy()):.1e} | {float(res2[:k].max()):.1e} |", flush=True)
        if exhausted:
            break
    low.clear_cache()
    op.clear_cache()


def timed(a, model, batches, k, err):
    """Section 3: lanczos_topk end to end, float32 against bfloat16 products, interleaved."""
    from landscape.analysis.estimators import lanczos_topk
    from landscape.analysis.hessian import HessianOperator
    runs = {"float32": [], "bfloat16": []}
    for r in range(a.timed_repeats):
        for prec in runs:
            op = HessianOperator(model, "clean", batches)
            t = time.perf_counter()
            res = lanczos_topk(op, k, seed=r, check=False, progress=False, precision=prec)
            sec = time.perf_counter() - t
            hvp = str(res.n_hvp) if prec == "float32" else \
                f"{res.meta['n_hvp_bfloat16']} bf16 + {res.meta['n_hvp_float32']} float32"
            runs[prec].append((sec, hvp, err(res.eigenvalues)))
            print(f"    repeat {r + 1}/{a.timed_repeats} {prec}: {sec:.1f} s, {hvp} HVPs, "
                  f"error {runs[prec][-1][2]:.1e}", flush=True)
            del op
    med = {p: statistics.median(s for s, _, _ in v) for p, v in runs.items()}
    print(f"\n| products | median s ({a.timed_repeats} repeats) | HVPs per repeat | largest rel. error per repeat | "
          "speed vs float32 |\n|---|---|---|---|---|")
    for p, v in runs.items():
        print(f"| {p} | {med[p]:.1f} | {', '.join(h for _, h, _ in v)} | {', '.join(f'{e:.1e}' for _, _, e in v)} | "
              f"{med['float32'] / med[p]:.2f}x |")


if __name__ == "__main__":
    main()
