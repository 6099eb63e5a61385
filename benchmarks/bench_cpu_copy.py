"""The rewrites of the attacks' CPU copy (``landscape.attacks.cpu_copy``), alone and inside sparse-PGD.

    OMP_NUM_THREADS=1 python benchmarks/bench_cpu_copy.py [--checkpoint CK] [--threads 1] [--repeats 7]

``layers``: the input gradient of one convolution with few input channels (small-cnn's first layer
at widths 16 and 32 on 28x28 images, a 3-channel 16- and 64-filter layer on 32x32 images, 50 images),
as the attacks' channels_last copy computes it: ``torch.ops.aten.convolution_backward`` against
:func:`~landscape.attacks.cpu_copy.conv2d_input_grad`, medians of interleaved repeats, the largest
relative difference beside them.

``passes``, ``surface`` and ``spgd`` (with ``--checkpoint``): the model's forward and input-gradient
backward on ``--batch`` test images, one grid point's attack of ``landscape surface --loss recomputed``
(``--surface-steps``) on them, then sparse-PGD (unprojected and projected, k=20, ``--steps`` on
``--n-images`` test images), each with the copy rewritten three ways (``attacks.base.REWRITE_COPY``:
none, then the rewrites of ``attacks.cpu_copy.REWRITES`` added one by one), interleaved, seeded
alike; the largest difference of the results, or the robust accuracy, beside the times.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import options  # noqa: E402


def mean_ms(fn, inner: int = 20) -> float:
    """Milliseconds per call of ``fn``, over ``inner`` calls in a row."""
    t = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t) / inner * 1e3


def layers(a):
    from landscape.attacks.cpu_copy import conv2d_input_grad
    print("| layer (50 images) | oneDNN (ms) | GEMM + shifts (ms) | speed-up | max rel. difference |")
    print("|---|---|---|---|---|")
    for cin, cout, hw in ((1, 16, 28), (1, 32, 28), (3, 16, 32), (3, 64, 32)):
        torch.manual_seed(0)
        w = torch.randn(cout, cin, 3, 3).contiguous(memory_format=torch.channels_last)
        x = torch.rand(50, cin, hw, hw)
        g = torch.randn(50, cout, hw, hw).contiguous(memory_format=torch.channels_last)

        def native():
            return torch.ops.aten.convolution_backward(g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                       [True, False, False])[0]

        def ours():
            return conv2d_input_grad(g, w, (1, 1), (hw, hw))
        want, got = native(), ours()
        diff = float((want - got).abs().max() / want.abs().max())
        t = {"native": [], "ours": []}
        for _ in range(a.repeats):
            t["native"].append(mean_ms(native))
            t["ours"].append(mean_ms(ours))
        tn, to = statistics.median(t["native"]), statistics.median(t["ours"])
        print(f"| {cin} -> {cout}, {hw}x{hw} | {tn:.3f} | {to:.3f} | **{tn / to:.1f}x** | {diff:.1e} |")


SIDES = {"none": (), "input gradient": ("input_grad",), "+ pool before ReLU (both)": ("input_grad", "pool_before_relu")}


def _sides(a, base, run):
    """``run(repeat)`` for each side of :data:`SIDES` in turn, ``--repeats`` times: the median seconds
    per side and each side's results."""
    saved = base.REWRITE_COPY
    t = {nm: [] for nm in SIDES}
    res = {nm: [] for nm in SIDES}
    try:
        for r in range(a.repeats):
            for nm, rewrites in SIDES.items():
                base.REWRITE_COPY = rewrites
                t0 = time.perf_counter()
                out = run(r)
                t[nm].append(time.perf_counter() - t0)
                res[nm].append(out)
    finally:
        base.REWRITE_COPY = saved
    return {nm: statistics.median(v) for nm, v in t.items()}, res


def _row(label, t, extra):
    none = t["none"]
    cells = [f"{none:.3f}"] + [f"{t[nm]:.3f} ({none / t[nm]:.2f}x)" for nm in list(SIDES)[1:]]
    return f"| {label} | {' | '.join(cells)} | {extra} |"


def model_sections(a):
    from landscape.attacks import SparsePGD, base
    from landscape.checkpoint import load_checkpoint
    ck = load_checkpoint(a.checkpoint)
    model = ck.model(device="cpu").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    test = ck.load_dataset("test")
    batch = test.subset(a.batch, seed=0)
    xb, yb = batch.images.float().div(255), batch.labels
    print(f"\n{a.checkpoint} ({ck.arch}); sides interleaved, {a.repeats} repeats, medians (s) and speed-up over none\n")
    print("| measurement | " + " | ".join(SIDES) + " | agreement with none |")
    print("|---" * (len(SIDES) + 2) + "|")

    def passes(r):
        net = base.attack_model(model, xb)
        xi = xb.clone().requires_grad_()
        for _ in range(5):
            logits = net(xi)
            (g,) = torch.autograd.grad(logits.logsumexp(1).sum(), xi)
            out = (logits.detach(), g)
        return out
    t, res = _sides(a, base, passes)
    ref = res["none"][0]
    diff = max(float((res[nm][0][i] - ref[i]).abs().max() / ref[i].abs().max()) for nm in SIDES for i in (0, 1))
    print(_row(f"5 forwards + input-gradient backwards, {a.batch} images", t, f"max rel. difference {diff:.1e}"))

    from landscape.analysis.api import surface_attack
    surf = surface_attack(ck.threat, steps=a.surface_steps, seed=0)

    def point(r):
        return surf(model, xb, yb)
    t, res = _sides(a, base, point)
    ref = res["none"][0]
    diff = max(float((res[nm][0] - ref).abs().max()) for nm in SIDES)
    print(_row(f"surface point: the surface attack (sPGD, {a.surface_steps} steps, loss-keeping), {a.batch} images",
               t, f"max abs. difference of the examples {diff:.1e}"))

    sub = test.subset(a.n_images, seed=0)
    x, y = sub.images.float().div(255), sub.labels
    for projected in (False, True):
        def attack(r):
            xa = SparsePGD(20, a.steps, projected=projected, seed=r)(model, x, y)
            with torch.no_grad():
                return float((model(xa).argmax(1) == y).float().mean())
        t, res = _sides(a, base, attack)
        accs = ", ".join(f"{100 * statistics.mean(res[nm]):.1f}%" for nm in SIDES)
        print(_row(f"sPGD {'projected' if projected else 'unprojected'}, k=20, {a.steps} steps, {a.n_images} images",
                   t, f"robust accuracy {accs}"))


def main():
    a = options(checkpoint=("", "a landscape checkpoint for the model sections (none: layers only)"),
                threads=1, repeats=7, n_images=100, steps=50, batch=256, surface_steps=20, allocator=("tuned", "tuned or default"))
    torch.set_num_threads(a.threads)
    if a.allocator == "tuned":
        from landscape.device import tune_cpu_allocator
        tune_cpu_allocator()
    print(f"# bench_cpu_copy  torch {torch.__version__}  {torch.get_num_threads()} threads  allocator {a.allocator}")
    print("# " + " ".join(["python", "benchmarks/bench_cpu_copy.py", *sys.argv[1:]]) + "\n")
    layers(a)
    if a.checkpoint:
        model_sections(a)


if __name__ == "__main__":
    main()
