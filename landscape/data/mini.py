"""``fashion-mnist-mini``: a class-balanced real subset of Fashion-MNIST shipped in the package.

It is the embedded default dataset: it needs no network and no apt. It holds 500 training images per
class (5,000) drawn from the official Fashion-MNIST training split and 100 test images per class
(1,000) from the official test split, chosen with ``numpy.random.default_rng(0)`` by
``python -m landscape.data.mini --source /usr/share/datasets/fashion-mnist`` and stored, unchanged, as
uint8 arrays in ``fashion_mnist_mini.npz`` beside this file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..errors import LandscapeError
from .base import ImageDataset

FILE = Path(__file__).with_name("fashion_mnist_mini.npz")
PER_CLASS = {"train": 500, "test": 100}


def load_mini(split: str = "train") -> ImageDataset:
    from .idx import SOURCES

    try:
        with np.load(FILE) as z:
            images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    except (OSError, KeyError, ValueError) as e:
        raise LandscapeError(f"the embedded dataset {FILE} is missing or damaged ({e}); reinstall landscape") from None
    return ImageDataset("fashion-mnist-mini", split, torch.from_numpy(images).unsqueeze(1),
                        torch.from_numpy(labels.astype(np.int64)), SOURCES["fashion-mnist"]["classes"],
                        source=f"embedded ({FILE.name})", mean=SOURCES["fashion-mnist"]["mean"],
                        std=SOURCES["fashion-mnist"]["std"])


def make_mini(source: str | None = None, out: Path = FILE, seed: int = 0) -> Path:
    """Rebuild the embedded subset from the full Fashion-MNIST files."""
    from .idx import load_idx_dataset

    rng = np.random.default_rng(seed)
    arrays = {}
    for split, per in PER_CLASS.items():
        full = load_idx_dataset("fashion-mnist", split, data_dir=source, download_ok=False)
        labels = full.labels.numpy()
        chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), per, replace=False) for c in range(10)])
        chosen = rng.permutation(chosen)
        arrays[f"{split}_images"] = full.images[chosen, 0].numpy()
        arrays[f"{split}_labels"] = labels[chosen].astype(np.uint8)
        arrays[f"{split}_source_index"] = chosen.astype(np.int32)
    np.savez_compressed(out, **arrays)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", default=None, help="folder holding the four Fashion-MNIST IDX .gz files")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(make_mini(a.source, seed=a.seed))
