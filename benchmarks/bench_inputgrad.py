"""The first layer's input gradient: oneDNN's against one GEMM and shifted additions
(``landscape.attacks.inputgrad``), alone and inside sparse-PGD.

    OMP_NUM_THREADS=1 python benchmarks/bench_inputgrad.py [--checkpoint CK] [--threads 1] [--repeats 7]

``layers``: the input gradient of one convolution with few input channels (small-cnn's first layer
at widths 16 and 32 on 28x28 images, a 3-channel 16- and 64-filter layer on 32x32 images, 50 images),
as the attacks' channels_last copy computes it: ``torch.ops.aten.convolution_backward`` against
:func:`~landscape.attacks.inputgrad.conv2d_input_grad`, medians of interleaved repeats, the largest
relative difference beside them.

``spgd`` (with ``--checkpoint``): sparse-PGD (unprojected and projected, k=20, ``--steps`` on
``--n-images`` test images) with ``attacks.base.FAST_INPUT_GRAD`` on and off, interleaved, seeded
alike; robust accuracy of each side beside the times.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import options  # noqa: E402


def median_ms(fn, reps: int, inner: int = 20) -> float:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t) / inner * 1e3)
    return statistics.median(out)


def layers(a):
    from landscape.attacks.inputgrad import conv2d_input_grad
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
            t["native"].append(median_ms(native, 1))
            t["ours"].append(median_ms(ours, 1))
        tn, to = statistics.median(t["native"]), statistics.median(t["ours"])
        print(f"| {cin} -> {cout}, {hw}x{hw} | {tn:.3f} | {to:.3f} | **{tn / to:.1f}x** | {diff:.1e} |")


def spgd(a):
    from landscape.attacks import SparsePGD, base
    from landscape.checkpoint import load_checkpoint
    ck = load_checkpoint(a.checkpoint)
    model = ck.model(device="cpu").eval()
    sub = ck.load_dataset("test").subset(a.n_images, seed=0)
    x, y = sub.images.float().div(255), sub.labels
    print(f"\nsPGD on {a.checkpoint} ({ck.arch}), k=20, {a.steps} steps, {a.n_images} images, "
          f"{a.repeats} interleaved repeats (medians)\n")
    print("| gradient | oneDNN (s) | GEMM + shifts (s) | speed-up | robust accuracy (oneDNN, ours; mean) |")
    print("|---|---|---|---|---|")
    saved = base.FAST_INPUT_GRAD
    try:
        for projected in (False, True):
            t = {True: [], False: []}
            acc = {True: [], False: []}
            for r in range(a.repeats):
                for flag in (False, True):
                    base.FAST_INPUT_GRAD = flag
                    t0 = time.perf_counter()
                    xa = SparsePGD(20, a.steps, projected=projected, seed=r)(model, x, y)
                    t[flag].append(time.perf_counter() - t0)
                    with torch.no_grad():
                        acc[flag].append(float((model(xa).argmax(1) == y).float().mean()))
            tn, to = statistics.median(t[False]), statistics.median(t[True])
            print(f"| {'projected' if projected else 'unprojected'} | {tn:.3f} | {to:.3f} | **{tn / to:.3f}x** | "
                  f"{100 * statistics.mean(acc[False]):.1f}%, {100 * statistics.mean(acc[True]):.1f}% |")
    finally:
        base.FAST_INPUT_GRAD = saved


def main():
    a = options(checkpoint=("", "a landscape checkpoint for the sPGD section (none: layers only)"),
                threads=1, repeats=7, n_images=100, steps=50, allocator=("tuned", "tuned or default"))
    torch.set_num_threads(a.threads)
    if a.allocator == "tuned":
        from landscape.device import tune_cpu_allocator
        tune_cpu_allocator()
    print(f"# bench_inputgrad  torch {torch.__version__}  {torch.get_num_threads()} threads  allocator {a.allocator}")
    print("# " + " ".join(["python", "benchmarks/bench_inputgrad.py", *sys.argv[1:]]) + "\n")
    layers(a)
    if a.checkpoint:
        spgd(a)


if __name__ == "__main__":
    main()
