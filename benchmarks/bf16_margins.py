"""How far bf16 autocast moves a model's logits and margins, the basis of ``attacks.base.BF16_BAND``.

    OMP_NUM_THREADS=1 python benchmarks/bf16_margins.py --checkpoint CK [--checkpoint CK2 ...] [--n-images 500]

For each checkpoint, on a seeded subset of its test split, clean and after 20 steps of float32 sPGD
(k = 20, no early stop, so the points sit near the decision boundary as a search's do), it compares
the model's logits under bf16 autocast with its float32 logits (on the attacks' channels_last copy)
and prints: the largest and median absolute logit error, the largest error of the margin (true logit
minus the best other) as a fraction of the largest |logit|, and how many verdicts (correct or not)
bf16 flips. A bf16 search settles in float32 every verdict within ``BF16_BAND`` of the boundary.
"""

from __future__ import annotations

import argparse
import datetime
import platform

import torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True)
    ap.add_argument("--n-images", type=int, default=500)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from landscape.attacks import SparsePGD
    from landscape.attacks.base import BF16_BAND, attack_model
    from landscape.attacks.losses import margin as _margin
    from landscape.checkpoint import load_checkpoint
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, {platform.machine()}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); BF16_BAND = {BF16_BAND}\n")
    print("| checkpoint | points | largest / median abs. logit error | largest margin error / largest abs. logit | "
          "verdicts flipped |\n|---|---|---|---|---|")
    for path in a.checkpoint:
        ck = load_checkpoint(path)
        model = ck.model().eval()
        sub = ck.load_dataset("test").subset(a.n_images, seed=0)
        x, y = sub.images.float().div(255), sub.labels
        x_adv = SparsePGD(20, 20, early_stop=False, seed=0)(model, x, y)
        net = attack_model(model, x, "eval")
        with torch.no_grad():
            for name, inp in (("clean", x), ("after 20 sPGD steps", x_adv)):
                exact = net(inp)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    low = net(inp).float()
                err = (low - exact).abs().amax(1)
                rel = ((_margin(low, y) - _margin(exact, y)).abs() / exact.abs().amax(1)).max()
                flips = int(((_margin(low, y) > 0) != (_margin(exact, y) > 0)).sum())
                print(f"| {path} | {name} | {err.max():.4f} / {err.median():.4f} | {100 * rel:.2f}% | "
                      f"{flips} of {len(y)} |")


if __name__ == "__main__":
    main()
