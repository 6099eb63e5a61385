"""Lanczos top-k with numpy's BLAS on one thread during the products (the default) against BLAS as
it is, interleaved in one process, medians of the repeats.

ARPACK's vector work runs in OpenBLAS, whose threads keep spinning after each call on the cores
torch needs for the next Hessian-vector product. ``landscape.analysis.estimators.quiet_blas`` limits
BLAS to one thread while a CPU operator's products run; this measures what that changes. The allocator
is tuned, as every ``landscape`` command does.

    OMP_NUM_THREADS=2 python benchmarks/bench_blas_threads.py --checkpoint CK --n-images 100 --repeats 3
"""

from __future__ import annotations

import contextlib
import statistics
import time

import numpy as np
import torch


def main():
    from common import hessian_sample, options
    a = options(checkpoint=("", "a landscape checkpoint (required)"), n_images=100, topk=20, tol=1e-4,
                threads=2, repeats=3)
    if not a.checkpoint:
        raise SystemExit("give --checkpoint")
    torch.set_num_threads(a.threads)
    from landscape.analysis import estimators
    from landscape.analysis.hessian import HessianOperator, make_batches
    from landscape.device import tune_cpu_allocator
    tune_cpu_allocator()
    model, x, y = hessian_sample(a.checkpoint, a.n_images)
    batches = make_batches(x, y, a.n_images)
    quiet = estimators.quiet_blas
    times = {"one BLAS thread": [], "BLAS as it is": []}
    hvp_s = {k: [] for k in times}
    vals = {}
    for r in range(a.repeats):
        for side in times:
            estimators.quiet_blas = quiet if side == "one BLAS thread" else (lambda op: contextlib.nullcontext())
            op = HessianOperator(model, "clean", batches, dtype="float32")
            t0 = time.perf_counter()
            res = estimators.lanczos_topk(op, a.topk, tol=a.tol, check=False, progress=False)
            times[side].append(time.perf_counter() - t0)
            hvp_s[side].append(op.hvp_time / op.n_hvp)
            vals[side] = res.eigenvalues
            print(f"  repeat {r + 1} {side}: {times[side][-1]:.1f} s, {op.n_hvp} HVPs, "
                  f"{hvp_s[side][-1]:.3f} s per HVP", flush=True)
    estimators.quiet_blas = quiet
    n_par = sum(p.numel() for p in model.parameters())
    print(f"\n{n_par:,} parameters, {a.n_images} images, top {a.topk}, tol {a.tol:g}, {a.threads} torch threads, "
          f"{a.repeats} interleaved repeats (medians)")
    print("\n| BLAS during the products | Lanczos top-k (s) | one HVP inside it (s) |\n|---|---|---|")
    for side in times:
        print(f"| {side} | {statistics.median(times[side]):.1f} | {statistics.median(hvp_s[side]):.3f} |")
    ratio = statistics.median(times["BLAS as it is"]) / statistics.median(times["one BLAS thread"])
    same = float(np.max(np.abs(vals["one BLAS thread"] - vals["BLAS as it is"])))
    print(f"\nratio: {ratio:.2f}x; largest eigenvalue difference between the two {same:.1e}")


if __name__ == "__main__":
    main()
