"""Datasets by name, each a uint8 tensor on the device, batches in [0,1] NCHW.

=====================  ==========================================================================
name                   what and where
=====================  ==========================================================================
fashion-mnist-mini     embedded default: 5,000/1,000 class-balanced real Fashion-MNIST images
fashion-mnist, mnist   IDX .gz files: --data-dir, Debian's /usr/share/datasets, or download
cifar10, cifar100      the official python-pickle tarball layout (download with md5 check)
imagefolder            one folder per class (ImageNet-100 layout), resized to --image-size
=====================  ==========================================================================
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LandscapeError
from .base import DeviceLoader, ImageDataset, augment

DATASETS = ("fashion-mnist-mini", "fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder")
DEFAULT_DATASET = "fashion-mnist-mini"


def load_dataset(name: str, split: str = "train", *, data_dir: str | Path | None = None,
                 image_size: int | None = None, download: bool = True) -> ImageDataset:
    """Load one split ('train' or 'test') of a dataset by name, as uint8 on the CPU."""
    key = str(name).strip().lower()
    if data_dir is not None and key == "fashion-mnist-mini" and not Path(data_dir).is_dir():
        # the embedded set needs no folder, but a folder that is not there is a mistake, not a no-op
        # (the other datasets report it themselves, or download into it)
        raise LandscapeError(f"`data_dir` {data_dir} " + ("is not a folder" if Path(data_dir).exists() else "does not exist"))
    if split not in ("train", "test"):
        raise LandscapeError(f"unknown split {split!r}; use train or test")
    if key == "fashion-mnist-mini":
        from .mini import load_mini
        return load_mini(split)
    if key in ("fashion-mnist", "mnist"):
        from .idx import load_idx_dataset
        return load_idx_dataset(key, split, data_dir, download_ok=download)
    if key in ("cifar10", "cifar100"):
        from .cifar import load_cifar
        return load_cifar(key, split, data_dir, download_ok=download)
    if key == "imagefolder":
        from .imagefolder import load_imagefolder
        return load_imagefolder(split, data_dir, image_size=image_size)
    raise LandscapeError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


__all__ = ["DATASETS", "DEFAULT_DATASET", "DeviceLoader", "ImageDataset", "augment", "load_dataset"]
