"""Seconds per grid point of a recomputed-attack surface, one point per forward pass against P points
stacked (``--points-per-batch``), and the extrapolated time of a 31x31 surface.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_surface_batched.py [--n 256] [--steps 5] [--width 32] [--p 8]

small-cnn (untrained) on fashion-mnist-mini training images, l0 eps=1, the surface attack of
``landscape surface`` (sPGD, ``--steps`` steps, one seeded start, loss-keeping) re-run at every point of
a 3x3 plane; checks that both ways give the same grid.
"""

from __future__ import annotations

import os
import platform
import time

import torch

os.environ.setdefault("LANDSCAPE_NO_PROGRESS", "1")


def main():
    from common import small_cnn, surface_args
    args = surface_args(steps=5, p=8, eps=1)
    from landscape.analysis import api
    from landscape.analysis.directions import random_directions
    from landscape.analysis.objective import LossObjective
    from landscape.analysis.surface import compute_surface
    from landscape.threat import ThreatModel

    model, x, y, _ = small_cnn("train", n=args.n, width=args.width)
    model.eval()
    atk = api.surface_attack(ThreatModel("l0", args.eps), steps=args.steps, seed=0)
    obj = LossObjective(model, x, y, "recomputed", atk, batch_size=args.n, seed=0)
    dirs = random_directions(model, 2, seed=0)
    coeffs = [-0.1, 0.0, 0.1]
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; n={args.n}, width={args.width}, sPGD steps={args.steps}, l0 eps={args.eps}")
    res = {}
    for p in (1, args.p):
        t0 = time.perf_counter()
        df, _ = compute_surface(obj, dirs, coeffs, coeffs, seed=0, progress=False, points_per_batch=p, chunk_size=9)
        res[p] = (time.perf_counter() - t0) / len(df), df["loss"].to_numpy()
        per = res[p][0]
        print(f"points per forward {p}: {per:.2f} s per point; a 31x31 surface: {per * 961 / 60:.1f} min "
              f"(x {20 / args.steps:.1f} for 20 steps: {per * 961 * 20 / args.steps / 60:.0f} min)")
    diff = abs(res[1][1] - res[args.p][1]).max()
    print(f"largest difference between the two grids: {diff:.2e}; speed-up {res[1][0] / res[args.p][0]:.2f}x")


if __name__ == "__main__":
    main()
