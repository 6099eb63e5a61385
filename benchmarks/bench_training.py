"""Training speed: one fast-ls-l0 epoch over one clean epoch, same model and data, median of repeats.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_training.py [--repeats 3] [--device auto]

Both epochs run the trainer's own pieces (DeviceLoader, the recipe's attack, PairForward, the loss,
soft labels, on-device metric sums) over the whole fashion-mnist-mini training split (5,000 images)
with the quick-start small-cnn; the CO monitor and final evaluation are not included.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from landscape.data import DeviceLoader, load_dataset
from landscape.device import resolve_device
from landscape.models import build_model, model_kwargs_for
from landscape.training import SoftLabels, get_preset
from landscape.training.losses import PairForward, loss_from_logits
from landscape.training.trainer import QUICK_SMALL_CNN, make_attack


def epoch_time(kind: str, ds, dev, seed=0) -> float:
    recipe = get_preset("fast-ls-l0", eps=20, scale="small").replace(sat_start=0)
    torch.manual_seed(seed)
    model = build_model("small-cnn", **model_kwargs_for("small-cnn", ds.describe(), **QUICK_SMALL_CNN)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = DeviceLoader(ds, recipe.batch_size, seed=seed)
    attack = make_attack(recipe.attack_name, "l0", recipe.eps, steps=1)
    pair = PairForward(model)
    soft = SoftLabels(ds.labels, ds.num_classes, 0.9, 0)
    acc = torch.zeros(2, device=dev, dtype=torch.float64)
    model.train()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for x, y, idx in loader.iterate(0):
        if kind == "clean":
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
        else:
            x_adv = attack(model, x, y)
            lc, logits = pair(x_adv, x)
            loss = loss_from_logits(recipe, lc, logits, soft.targets(idx, 0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if kind != "clean":
            soft.update(idx, torch.softmax(lc.detach(), 1), 0)
        acc[0] += loss.detach() * len(y)
        acc[1] += (logits.detach().argmax(1) == y).sum()
    sync()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    dev = resolve_device(a.device)
    ds = load_dataset("fashion-mnist-mini", "train").to(dev)
    times = {"clean": [], "fast-ls-l0": []}
    for r in range(a.repeats):  # interleaved, so both see the same machine load
        for kind in times:
            times[kind].append(epoch_time(kind, ds, dev, seed=r))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {dev}")
    for k, v in times.items():
        print(f"{k:>11}: median {med[k]:.2f} s/epoch  (runs: {', '.join(f'{t:.2f}' for t in v)})")
    print(f"ratio fast-ls-l0 / clean: {med['fast-ls-l0'] / med['clean']:.2f}x")


if __name__ == "__main__":
    main()
