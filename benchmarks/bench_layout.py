"""Training on the CPU in the channels_last layout against the default layout, side by side.

    OMP_NUM_THREADS=2 python benchmarks/bench_layout.py [--repeats 3] [--examples 1024] [--preset fast-ls-l0]

Runs the trainer itself (``landscape.training.trainer.train``: the quick-start small-cnn on
fashion-mnist-mini, the preset at its small scale, one epoch over a seeded subset, no CO monitor)
three ways, interleaved: ``channels_last=False`` (the CPU default: the model in the default layout,
the eval-mode training attack on a channels_last copy, ``attacks.base.attack_model``), the same
without that copy (``attacks.base.CHANNELS_LAST_COPY = False``, the layout before the copy), and
``channels_last=True`` (model and batches channels_last). Prints the epochs' times (the trainer's own
``epoch_time_s``), their medians and ratios, and the training losses.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile

import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--examples", type=int, default=1024)
    ap.add_argument("--preset", default="fast-ls-l0")
    a = ap.parse_args(argv)
    from landscape.checkpoint import Checkpoint
    from landscape.training.trainer import train
    from landscape.attacks import base
    arms = {"default layout, attack on a channels_last copy": (False, True),
            "default layout, no copy": (False, False),
            "channels_last model": (True, True)}
    times = {k: [] for k in arms}
    losses = {k: [] for k in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for i, (name, (cl, copy)) in enumerate(arms.items()):
                out = f"{tmp}/r{r}-{i}"
                base.CHANNELS_LAST_COPY = copy
                train(a.preset, norm="l0", eps=20, out=out, device="cpu", seed=r, max_train_examples=a.examples,
                      eval_examples=1, clean_examples=1, channels_last=cl, progress=False, log=lambda *x: None,
                      changes={"epochs": 1, "monitor_examples": 0})
                m = Checkpoint.load(f"{out}/checkpoint.pt").metrics[-1]
                times[name].append(m["epoch_time_s"])
                losses[name].append(m["train_loss"])
    base.CHANNELS_LAST_COPY = True
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{a.preset}, {a.examples} examples, one epoch, {a.repeats} repeats\n")
    print("| layout | s/epoch, each repeat | median | against no copy | training loss, each repeat |\n|---|---|---|---|---|")
    ref = med["default layout, no copy"]
    for k in arms:
        print(f"| {k} | {', '.join(f'{t:.2f}' for t in times[k])} | **{med[k]:.2f}** | {ref / med[k]:.2f}x | "
              f"{', '.join(f'{v:.4f}' for v in losses[k])} |")


if __name__ == "__main__":
    main()
