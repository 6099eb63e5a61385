"""Could Sparse-RS decide in bf16? Its accept decisions on bf16 losses against float32 ones.

    OMP_NUM_THREADS=2 python benchmarks/rs_bf16_decisions.py --checkpoint CK [--checkpoint CK2 ...]
        [--n-images 300] [--queries 100] [--repeats 10] [--threads 2]

Sparse-RS keeps a candidate when its loss (cross-entropy, as in sparse-AutoAttack) is lower than the
current one's. This takes each checkpoint's correctly classified test images (a seeded subset), runs
float32 Sparse-RS for ``--queries`` queries, and on the images it leaves draws ``--repeats`` candidates
per image the way Sparse-RS does at a later query: ``a`` pixels of the perturbed set get their clean
values back and ``a`` pixels outside it are set to random colour-cube corners, for a = 1, 2, 4 and 8
(for k = 20 the schedule swaps 16, 8, 4, 3, 2 and then 1 pixel). For each ``a`` it prints, as
fractions of the largest |logit| of the image:

- the size of the float32 loss difference between candidate and current image (median, 10th centile);
- the error of that difference when both losses come from bf16 autocast forwards (median, largest);
- the share of decisions a bf16 search would take otherwise than the float32 search (the sign of the
  difference flips), and among the candidates float32 accepts, the share bf16 rejects;
- the share of candidates whose bf16 difference is within the largest error seen: what a search that
  decides in float32 wherever bf16 could be wrong would have to evaluate again in float32.
"""

from __future__ import annotations

import argparse
import datetime
import platform

import torch
import torch.nn.functional as F


def losses(model, x, y, bf16: bool):
    """``(-CE, largest |logit|)`` per image, from a float32 or a bf16 autocast forward."""
    with torch.no_grad():
        if bf16:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                logits = model(x)
        else:
            logits = model(x)
    logits = logits.float()
    return -F.cross_entropy(logits, y, reduction="none"), logits.abs().amax(1)


def candidates(x, best, a: int, gen):
    """One Sparse-RS candidate per image: ``a`` perturbed pixels back to clean, ``a`` others to corners."""
    n, c, h, w = x.shape
    xf, bf = x.reshape(n, c, h * w), best.reshape(n, c, h * w)
    inside = (xf != bf).any(1)                              # the perturbed set
    key_in = torch.rand(inside.shape, generator=gen) + inside.float()    # inside pixels rank first
    key_out = torch.rand(inside.shape, generator=gen) + (~inside).float()
    pin, pout = key_in.topk(a, dim=1).indices, key_out.topk(a, dim=1).indices
    cand = bf.clone()
    gi, go = pin[:, None, :].expand(n, c, a), pout[:, None, :].expand(n, c, a)
    cand.scatter_(2, gi, xf.gather(2, gi))
    cand.scatter_(2, go, torch.randint(0, 2, (n, c, a), generator=gen).to(x.dtype))
    return cand.view_as(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True)
    ap.add_argument("--n-images", type=int, default=300)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--eps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from landscape.attacks import SparseRS
    from landscape.checkpoint import load_checkpoint
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, {platform.machine()}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); Sparse-RS CE, k={a.eps}, candidates drawn "
          f"after {a.queries} float32 queries, {a.repeats} per image and swap size\n")
    print("| checkpoint | images | a | \\|Δ loss\\|: median, 10% | bf16 error of Δ: median, largest | decisions "
          "reversed | float32 accepts bf16 rejects | within the largest error |\n|---|---|---|---|---|---|---|---|")
    for path in a.checkpoint:
        ck = load_checkpoint(path)
        model = ck.model().eval()
        sub = ck.load_dataset("test").subset(a.n_images, seed=0)
        x, y = sub.images.float().div(255), sub.labels
        with torch.no_grad():
            keep = model(x).argmax(1) == y
        x, y = x[keep], y[keep]
        best = SparseRS(a.eps, a.queries, loss="ce", seed=0)(model, x, y)
        with torch.no_grad():
            alive = model(best).argmax(1) == y
        x, y, best = x[alive], y[alive], best[alive]
        l32, scale = losses(model, best, y, False)
        l16, _ = losses(model, best, y, True)
        gen = torch.Generator().manual_seed(0)
        for swap in (1, 2, 4, 8):
            d32, d16 = [], []
            for _ in range(a.repeats):
                cand = candidates(x, best, swap, gen)
                d32.append((losses(model, cand, y, False)[0] - l32) / scale)
                d16.append((losses(model, cand, y, True)[0] - l16) / scale)
            d32, d16 = torch.cat(d32), torch.cat(d16)
            err = (d16 - d32).abs()
            flip = (d16 < 0) != (d32 < 0)
            acc = d32 < 0
            lost = float(flip[acc].float().mean()) if acc.any() else float("nan")
            print(f"| {path} | {len(y)} | {swap} | {d32.abs().median():.1e}, {d32.abs().quantile(0.1):.1e} | "
                  f"{err.median():.1e}, {err.max():.1e} | {100 * flip.float().mean():.1f}% | {100 * lost:.1f}% | "
                  f"{100 * (d16.abs() <= err.max()).float().mean():.0f}% |")


if __name__ == "__main__":
    main()
