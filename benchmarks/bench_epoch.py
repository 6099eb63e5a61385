"""One Fast-LS-l0 epoch of PreActResNet-18 on CIFAR-10-shaped tensors: images/s and 100 epochs.

    python benchmarks/bench_epoch.py --device cuda [--compile] [--n-train 50000]
    python benchmarks/bench_epoch.py --device cpu --n-train 256 --batch-size 64     # proves it runs

It runs the trainer itself (``landscape.training.trainer.train``: the data resident on the device,
the ``fast-ls-l0`` recipe at paper scale, channels_last and bf16 autocast for the training forward
on CUDA, ``--compile``), on random uint8 images of shape 3x32x32 with 10 classes, for one epoch
(``--epochs``), with the CO monitor off and a final evaluation of one image (its cost is not in the
epoch time). It prints the epoch time, images/s, and the projected time of 100 epochs of 50,000
images (the paper's CIFAR-10 schedule; the paper reports 0.8 h on one RTX 6000 Ada).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch


def synthetic(n: int, seed: int, split: str):
    from landscape.data import ImageDataset
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    return ImageDataset(name="cifar10-shaped", split=split, images=images, labels=labels,
                        classes=[str(i) for i in range(10)], source="synthetic", natural=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--arch", default="preact-resnet18")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    from landscape.device import resolve_device
    from landscape.training import get_preset
    from landscape.training.trainer import train
    dev = resolve_device(a.device)
    recipe = get_preset("fast-ls-l0", "l0", 20, scale="paper").replace(
        epochs=a.epochs, batch_size=a.batch_size, monitor_examples=0,
        eval_attack="spgd", eval_attack_kwargs={"steps": 1})
    out = Path(tempfile.mkdtemp(prefix="bench_epoch_"))
    train(recipe, out=out, device=str(dev), arch=a.arch, compile=a.compile, eval_examples=1, progress=False,
          train_data=synthetic(a.n_train, 0, "train"), test_data=synthetic(16, 1, "test"), log=lambda m: None)
    from landscape.checkpoint import Checkpoint
    rows = Checkpoint.load(out / "checkpoint.pt").metrics
    times = [r["epoch_time_s"] for r in rows]
    ex = rows[-1]["examples"]
    t = min(times) if len(times) > 1 else times[0]   # the first epoch includes compilation/warm-up
    ips = ex / t
    projected = 100 * 50000 / ips
    res = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": platform.machine(), "device": str(dev),
           "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "compile": a.compile,
           "arch": a.arch, "n_train": a.n_train, "batch_size": a.batch_size, "epoch_times_s": times,
           "images_per_s": ips, "projected_100_epochs_s": projected,
           "command": " ".join(["python", "benchmarks/bench_epoch.py", *(argv if argv is not None else sys.argv[1:])])}
    print(f"{a.arch}, fast-ls-l0, {ex} CIFAR-10-shaped images per epoch on {res['gpu'] or dev}"
          f"{' (compiled)' if a.compile else ''}: epoch {t:.1f}s, {ips:.1f} images/s; "
          f"100 epochs of 50,000 images projected at {projected / 3600:.2f} h ({projected / 60:.1f} min)")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
