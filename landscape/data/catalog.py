"""Static facts about each dataset, and where it is on this machine, without reading or downloading.

* :func:`describe_dataset` gives the metadata a model needs (channels, image size, classes,
  mean/std) in the shape of ``ImageDataset.describe()``, so a checkpoint can be written for a
  dataset that is not on disk (``landscape import``).
* :func:`locate` says where a dataset would be loaded from, or how to get it; it only looks at the
  file system (``landscape data list``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import LandscapeError
from . import DATASETS


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise LandscapeError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key


def describe_dataset(name: str, *, image_size: int | None = None, num_classes: int | None = None,
                     classes: list[str] | None = None) -> dict:
    """Static metadata of dataset ``name`` (same keys as ``ImageDataset.describe()``).

    ``imagefolder`` has no fixed class list: give ``num_classes`` (or ``classes``); its image size
    defaults to :data:`landscape.data.imagefolder.DEFAULT_IMAGE_SIZE`.
    """
    key = _canonical(name)
    if key in ("fashion-mnist-mini", "fashion-mnist", "mnist"):
        from .idx import SOURCES
        spec = SOURCES["mnist" if key == "mnist" else "fashion-mnist"]
        c, size, names, mean, std = 1, 28, list(spec["classes"]), spec["mean"], spec["std"]
    elif key in ("cifar10", "cifar100"):
        from .cifar import CIFAR10_CLASSES, SPECS
        spec = SPECS[key]
        names = list(CIFAR10_CLASSES) if key == "cifar10" else [str(i) for i in range(100)]
        c, size, mean, std = 3, 32, spec["mean"], spec["std"]
    else:
        from .imagefolder import DEFAULT_IMAGE_SIZE, MEAN, STD
        if classes is None:
            if not num_classes:
                raise LandscapeError("the imagefolder dataset has no fixed classes; give the number of classes")
            classes = [str(i) for i in range(int(num_classes))]
        c, size, names, mean, std = 3, int(image_size or DEFAULT_IMAGE_SIZE), list(classes), MEAN, STD
    if key != "imagefolder" and image_size and int(image_size) != size:
        raise LandscapeError(f"{key} images are {size}x{size}; `image_size` {image_size} does not apply")
    if classes is not None:
        names = list(classes)
    elif num_classes and int(num_classes) != len(names):
        raise LandscapeError(f"{key} has {len(names)} classes, not {num_classes}")
    meta = {"name": key, "channels": c, "height": size, "width": size, "num_classes": len(names),
            "classes": names, "mean": list(mean), "std": list(std)}
    if key == "imagefolder":
        meta["image_size"] = size
    return meta


def locate(name: str, data_dir: str | Path | None = None) -> tuple[str | None, str]:
    """``(where it was found or None, how to get it)``; looks at the file system only."""
    key = _canonical(name)
    if key == "fashion-mnist-mini":
        from .mini import FILE
        return (f"embedded ({FILE})" if FILE.is_file() else None), "reinstall landscape"
    if key in ("fashion-mnist", "mnist"):
        from .idx import SOURCES, default_cache, find_files
        found = find_files(key, data_dir)
        hint = (f"{SOURCES[key]['hint']}; or let a command download it into "
                f"{Path(data_dir) / key if data_dir else default_cache() / key}")
        return (str(found) if found else None), hint
    if key in ("cifar10", "cifar100"):
        from .cifar import find_cifar, how_to_get
        found = find_cifar(key, data_dir)
        return (str(found) if found else None), how_to_get(key)
    from .imagefolder import HOW_TO_GET, find_imagefolder
    found = find_imagefolder(data_dir)
    return (str(found) if found else None), HOW_TO_GET


__all__ = ["describe_dataset", "locate"]
