"""Sparse-RS with bf16 queries against float32 queries, on the images both sPGD stages leave.

    OMP_NUM_THREADS=1 python benchmarks/bench_rs_precision.py --checkpoint CK [--n-images 1000]
        [--steps 300] [--queries 1000] [--seeds 0,1,2] [--threads 1]

First the survivors: the checkpoint's test images (a seeded subset) that are correctly classified
and survive float32 sPGD, unprojected then projected (``--steps`` each, seed 0), as in
sparse-AutoAttack before its Sparse-RS stage. Then Sparse-RS (cross-entropy, as in sAA; ``--queries``)
on them with float32 and with bf16 queries, the two interleaved for each seed. Prints, per seed and as
medians, the seconds and the number of survivors each breaks (counted by a float32 forward).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--n-images", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--eps", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from landscape.attacks import SparsePGD, SparseRS
    from landscape.checkpoint import load_checkpoint
    from landscape.threat import ThreatModel
    ck = load_checkpoint(a.checkpoint)
    model = ck.model().eval()
    sub = ck.load_dataset("test").subset(a.n_images, seed=0)
    x, y = sub.images.float().div(255), sub.labels
    with torch.no_grad():
        alive = model(x).argmax(1) == y
    for projected in (False, True):
        idx = alive.nonzero().squeeze(1)
        xa = SparsePGD(a.eps, a.steps, projected=projected, seed=0)(model, x[idx], y[idx])
        with torch.no_grad():
            alive[idx[model(xa).argmax(1) != y[idx]]] = False
    xs, ys = x[alive], y[alive]
    threat = ThreatModel("l0", a.eps)
    rows = {"float32": [], "bfloat16": []}
    for seed in [int(s) for s in a.seeds.split(",")]:
        for prec in rows:
            t0 = time.perf_counter()
            xa = SparseRS(a.eps, a.queries, loss="ce", seed=seed, precision=prec)(model, xs, ys)
            sec = time.perf_counter() - t0
            threat.assert_valid(xs, xa)
            with torch.no_grad():
                broken = int((model(xa).argmax(1) != ys).sum())
            rows[prec].append((sec, broken))
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, {platform.machine()}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s), {a.checkpoint}: {len(ys)} survivors of "
          f"{a.n_images} images after sPGD ({a.steps} steps, both gradients), Sparse-RS CE, {a.queries} queries\n")
    print("| queries | seconds per seed | median (s) | survivors broken per seed | mean broken |\n|---|---|---|---|---|")
    for prec, r in rows.items():
        print(f"| {prec} | {', '.join(f'{s:.1f}' for s, _ in r)} | {statistics.median(s for s, _ in r):.1f} | "
              f"{', '.join(str(b) for _, b in r)} | {statistics.mean(b for _, b in r):.1f} |")
    ratio = statistics.median(s for s, _ in rows["float32"]) / statistics.median(s for s, _ in rows["bfloat16"])
    print(f"\nfloat32 / bf16 time: {ratio:.2f}x")


if __name__ == "__main__":
    main()
