"""What the Hessian operator's rewritten copy of a model buys (landscape.analysis.hvp_copy).

Two tables, on one checkpoint's clean cross-entropy Hessian over ``--n-images`` held-out images in
batches of ``--batch-size`` (graphs cached, as ``HessianOperator`` keeps them):

1. *The convolutions.* For every convolution shape of the model with at least 16 input channels, on
   ``--batch-size`` images, oneDNN's three kernels (forward, input gradient, weight gradient) in the
   NCHW and the channels_last layout, in GFLOP/s (medians of ``--repeats``): why the copy makes its
   convolutions channels_last.
2. *One product.* The plain model against the copy with the rewrites added one group at a time
   (``conv``; ``+ relu, maxpool``; ``+ pool_before_relu``: all, the default), medians of ``--repeats``
   interleaved products, each side's speed against the plain model's, and each side's largest
   relative difference (in the 2-norm) from the same product in float64.

    OMP_NUM_THREADS=2 python benchmarks/bench_hvp_copy.py --checkpoint CK --n-images 1000 --batch-size 200
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


def _median_time(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def conv_table(model: nn.Module, x: torch.Tensor, repeats: int) -> None:
    shapes = []

    def hook(mod, inp, out):
        shapes.append((mod, tuple(inp[0].shape), tuple(out.shape)))
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    aten = torch.ops.aten
    print("| convolution (input -> output) | layout | forward GFLOP/s | input gradient GFLOP/s | weight gradient GFLOP/s |")
    print("|---|---|---|---|---|")
    for conv, ishape, oshape in shapes:
        if conv.in_channels < 16:
            continue
        flops = 2 * oshape[0] * oshape[2] * oshape[3] * conv.out_channels * conv.weight[0].numel() / 1e9
        w = conv.weight.detach()
        args = (list(conv.stride), list(conv.padding), list(conv.dilation), False, [0, 0], conv.groups)
        for layout in (torch.contiguous_format, torch.channels_last):
            a = torch.randn(ishape).contiguous(memory_format=layout)
            g = torch.randn(oshape).contiguous(memory_format=layout)
            fwd = _median_time(lambda: F.conv2d(a, w, None, conv.stride, conv.padding, conv.dilation, conv.groups), repeats)
            dgrad = _median_time(lambda: aten.convolution_backward(g, a, w, None, *args, [True, False, False]), repeats)
            wgrad = _median_time(lambda: aten.convolution_backward(g, a, w, None, *args, [False, True, False]), repeats)
            name = "NCHW" if layout == torch.contiguous_format else "channels_last"
            print(f"| {ishape[1]}x{ishape[2]}x{ishape[3]} -> {oshape[1]}x{oshape[2]}x{oshape[3]} | {name} | "
                  f"{flops / fwd:.0f} | {flops / dgrad:.0f} | {flops / wgrad:.0f} |", flush=True)


def main():
    from common import hessian_setup, options
    a = options(checkpoint=("", "a landscape checkpoint (required)"), n_images=1000, batch_size=200, repeats=5,
                threads=2, allocator=("tuned", "tuned (landscape.device.tune_cpu_allocator, as the CLI) or default"),
                sections=("convs,product", "convs and/or product"))
    model, x, labels = hessian_setup(a)
    from landscape.analysis.hessian import HessianOperator, make_batches
    n_par = sum(p.numel() for p in model.parameters())
    print(f"# {a.checkpoint}: {n_par:,} parameters, {a.n_images} images in batches of {a.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    sections = a.sections.split(",")
    if "convs" in sections:
        conv_table(model, x[:a.batch_size], a.repeats)
    if "product" not in sections:
        return
    batches = make_batches(x, labels, a.batch_size)
    sides = {"plain model": (), "conv": ("conv",), "+ relu, maxpool": ("conv", "relu", "maxpool"),
             "+ pool_before_relu (all: the default)": ("conv", "relu", "maxpool", "pool_before_relu")}
    ops = {k: HessianOperator(model, "clean", batches, rewrites=rw) for k, rw in sides.items()}
    exact = HessianOperator(model, "clean", batches, dtype="float64")
    g = torch.Generator().manual_seed(0)
    vecs = [torch.randn(n_par, generator=g) for _ in range(a.repeats)]
    refs = [exact.hvp(v.double()) for v in vecs[:2]]
    del exact
    errs = {k: max(float((op.hvp(v).double() - r).norm() / r.norm()) for v, r in zip(vecs, refs))
            for k, op in ops.items()}                     # also builds every side's graphs (untimed)
    times = {k: [] for k in ops}
    for r in range(a.repeats):
        for k, op in ops.items():                        # interleaved
            t = time.perf_counter()
            op.hvp(vecs[r])
            times[k].append(time.perf_counter() - t)
    base = statistics.median(times["plain model"])
    print("| the operator's model | one product, median s | speed vs the plain model | rel. difference from float64 | graph cache MiB |")
    print("|---|---|---|---|---|")
    for k, op in ops.items():
        t = statistics.median(times[k])
        print(f"| {k} | {t:.3f} | {base / t:.2f}x | {errs[k]:.1e} | {op.cache_bytes / 2**20:.0f} |")


if __name__ == "__main__":
    main()
