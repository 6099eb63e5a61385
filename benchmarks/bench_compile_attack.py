"""An attack step with ``torch.compile`` against eager PyTorch on the CPU, side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_compile_attack.py [--checkpoint CK] [--n 200] [--repeats 7]

An attack step is what every white-box attack here spends its time on: the model's forward on a batch
and the backward to the input only (the parameters do not require gradients). This script times it
for the model the attacks use on the CPU (the eval-mode ``channels_last`` copy,
``attacks.base.attack_model``), eagerly and compiled by ``torch.compile(dynamic=True)`` (inductor,
which needs a C compiler), interleaved, and prints the medians, their ratio, the compile time, the
time of the first call at a second batch size (sparse-PGD shrinks its batch as examples are broken)
and the largest difference between the two input gradients. Without ``--checkpoint`` it uses an
untrained full-width small-cnn (the timing does not depend on the weights).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import torch
import torch.nn.functional as F


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--n", type=int, default=200, help="images per batch")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from landscape.attacks.base import attack_model
    if a.checkpoint:
        from landscape.checkpoint import load_checkpoint
        model = load_checkpoint(a.checkpoint).model().eval()
    else:
        from landscape.models import build_model
        torch.manual_seed(0)
        model = build_model("small-cnn", in_channels=1, num_classes=10, image_size=28).eval()
    shape = (1, 28, 28)
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand((a.n, *shape), generator=g)
    y = torch.randint(0, 10, (a.n,), generator=g)
    m = attack_model(model, x, "eval")

    def step(f, xb, yb):
        xi = xb.clone().requires_grad_(True)
        loss = F.cross_entropy(f(xi), yb, reduction="none")
        return torch.autograd.grad(loss.sum(), xi)[0]

    compiled = torch.compile(m, dynamic=True)
    t0 = time.perf_counter()
    gc = step(compiled, x, y)
    t_compile = time.perf_counter() - t0
    half = max(1, a.n * 3 // 4)
    t0 = time.perf_counter()
    step(compiled, x[:half], y[:half])
    t_second = time.perf_counter() - t0
    ge = step(m, x, y)
    diff = float((ge - gc).abs().max() / ge.abs().max().clamp_min(1e-30))
    times = {"eager": [], "compiled": []}
    for _ in range(a.repeats):
        for name, f in (("eager", m), ("compiled", compiled)):
            t0 = time.perf_counter()
            step(f, x, y)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, {platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {a.n} images, "
          f"{a.checkpoint or 'untrained full-width small-cnn'}\n")
    print("| step (forward + input gradient) | median (ms) | eager / this |\n|---|---|---|")
    for k in times:
        print(f"| {k} | {med[k] * 1e3:.1f} | {med['eager'] / med[k]:.2f}x |")
    print(f"\ncompile (first call): {t_compile:.1f} s; first call at {half} images: {t_second:.2f} s; "
          f"largest relative difference of the input gradients: {diff:.1e}")


if __name__ == "__main__":
    main()
