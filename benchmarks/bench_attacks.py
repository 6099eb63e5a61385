"""Attack speed on the CPU: sparse-PGD iterations per second and sparse-AutoAttack wall time.

Model: small-cnn (default width 32) on Fashion-MNIST 28x28, trained for ``--train-epochs`` quick
clean epochs on the embedded fashion-mnist-mini training split (5,000 images), so it is accurate
but NOT robust: sAA fools most images within a few sPGD iterations, and the sAA time measured here
is a lower bound on the time for a robust model (which survives longer and runs all iterations).

Measurements (each repeated ``--repeats`` times; medians reported):

* sPGD throughput: ``--spgd-steps`` iterations on a batch of ``--batch`` test images with early stop
  OFF (every example runs every iteration), in iterations/s and image-iterations/s.
* sAA: the full cascade at ``--steps`` sPGD iterations per white-box stage and ``--queries``
  Sparse-RS queries on ``--n-images`` test images, scaled linearly to 1,000 images.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_attacks.py --data-dir /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time

import torch


def quick_model(epochs: int, seed: int = 0):
    from common import fit, small_cnn
    model, x, y, _ = small_cnn("train", seed=seed)
    return fit(model, x, y, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), epochs)


def main():
    from common import options
    args = options(data_dir="/usr/share/datasets/fashion-mnist", train_epochs=2, eps=20, batch=100, spgd_steps=20,
                   n_images=200, steps=10000, queries=10000, repeats=3,
                   device=("cpu", "cpu, cuda or auto (the model is trained on the CPU, then moved)"))

    from landscape.attacks import SparseAutoAttack, SparsePGD
    from landscape.data import load_dataset
    from landscape.evaluation import evaluate

    t0 = time.perf_counter()
    from landscape.device import resolve_device
    dev = resolve_device(args.device)
    model = quick_model(args.train_epochs).to(dev)
    train_s = time.perf_counter() - t0
    test = load_dataset("fashion-mnist", "test", data_dir=args.data_dir, download=False)
    sub = test.subset(max(args.batch, args.n_images), seed=0)
    x_all, y_all = (sub.images.float() / 255).to(dev), sub.labels.to(dev)
    with torch.no_grad():
        clean = float((model(x_all).argmax(1) == y_all).float().mean())

    xb, yb = x_all[:args.batch], y_all[:args.batch]
    spgd = SparsePGD(args.eps, args.spgd_steps, early_stop=False, seed=0)
    spgd(model, xb[:8], yb[:8])  # warm-up
    its = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        spgd(model, xb, yb)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        its.append(args.spgd_steps / (time.perf_counter() - t))
    it_s = statistics.median(its)
    print(f"model clean acc {clean:.3f} (trained in {train_s:.0f}s); sPGD it/s {its}", file=sys.stderr, flush=True)

    saa = SparseAutoAttack(args.eps, steps=args.steps, n_queries=args.queries, seed=0)
    walls, dfs = [], []
    for _ in range(args.repeats):
        df, meta = evaluate(model, x_all[:args.n_images], y_all[:args.n_images], saa, batch_size=args.n_images,
                            device=dev, progress=False)
        walls.append(meta["wall_seconds"])
        dfs.append(df)
        print(f"sAA run: {meta['wall_seconds']:.1f}s; " + ", ".join(
            f"{r.stage}={r.accuracy:.3f} ({r.seconds:.1f}s)" for r in df.itertuples()), file=sys.stderr, flush=True)
    wall = statistics.median(walls)
    res = {
        "date": "2026-11-22", "machine": f"{platform.processor() or platform.machine()}, "
        f"torch threads {torch.get_num_threads()}, shared 2-core CPU",
        "torch": torch.__version__, "model": f"small-cnn (width 32), {args.train_epochs} clean epochs on "
        f"fashion-mnist-mini train ({train_s:.0f}s); clean acc on the {len(y_all)} test images {clean:.3f}",
        "eps": args.eps,
        "spgd": {"batch": args.batch, "steps": args.spgd_steps, "early_stop": False,
                 "iterations_per_s_median": it_s, "image_iterations_per_s_median": it_s * args.batch,
                 "all_iterations_per_s": its},
        "saa": {"n_images": args.n_images, "steps": args.steps, "queries": args.queries,
                "wall_s_median": wall, "wall_s_all": walls, "per_1000_images_s": wall * 1000 / args.n_images,
                "table": dfs[0].to_dict(orient="records")},
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
