"""Wall time per surface grid point relative to one evaluation pass over the same examples.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_surface.py [--n 256] [--grid 3] [--width 32]

For small-cnn on fashion-mnist-mini (untrained weights, l0 eps=20): one clean evaluation pass (forward
over the examples), then a clean surface and a recomputed-adversarial surface (spgd1 at every point)
on a grid×grid plane; prints seconds per point and the ratio to the evaluation pass.
"""

from __future__ import annotations

import os
import platform
import time

import torch

os.environ.setdefault("LANDSCAPE_NO_PROGRESS", "1")


def main():
    from common import small_cnn, surface_args
    args = surface_args(grid=3, batch_size=256)
    from landscape.analysis.directions import random_directions
    from landscape.analysis.objective import LossObjective, predict_stats
    from landscape.analysis.surface import compute_surface
    from landscape.attacks import training_attack

    model, x, y, _ = small_cnn("test", n=args.n, width=args.width)
    model.eval()
    predict_stats(model, x, y, args.batch_size)  # warm-up
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        predict_stats(model, x, y, args.batch_size)
    t_eval = (time.perf_counter() - t0) / reps
    dirs = random_directions(model, 2, seed=0)
    coeffs = [-1 + 2 * i / (args.grid - 1) for i in range(args.grid)]
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}; n={args.n}, grid={args.grid}x{args.grid}, width={args.width}")
    print(f"one evaluation pass: {t_eval * 1e3:.1f} ms")
    for mode in ("clean", "recomputed"):
        obj = LossObjective(model, x, y, mode, training_attack("l0", 20) if mode != "clean" else None, args.batch_size)
        t0 = time.perf_counter()
        compute_surface(obj, dirs, coeffs, progress=False)
        per = (time.perf_counter() - t0) / args.grid ** 2
        print(f"{mode:>10}: {per * 1e3:.1f} ms per grid point = {per / t_eval:.2f}x one evaluation pass")


if __name__ == "__main__":
    main()
