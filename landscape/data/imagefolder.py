"""``imagefolder``: one folder per class, the ImageNet-100 layout.

::

    <data_dir>/train/<class>/*.jpg|jpeg|png|bmp|gif|webp|tif|tiff|ppm
    <data_dir>/val/<class>/...        (or <data_dir>/test/<class>/...)

* Classes are the sub-folders of ``train/``, sorted by name; label ``i`` is the ``i``-th of them. The
  test split uses the same list (a test class folder unknown to ``train/`` is an error; one that is
  missing simply has no examples), so that labels always agree between splits. If there is no
  ``train/``, the test split's own folders are used.
* Every image is converted to RGB, its shorter side resized to ``image_size`` (bicubic, Pillow) and
  the centre ``image_size x image_size`` square kept, then stored as uint8. The default size is
  :data:`DEFAULT_IMAGE_SIZE` = 64: the whole split lives in memory on the device (ImageNet-100's
  126,689 training images take 1.5 GB at 64x64, 19 GB at 224x224); pass ``--image-size`` for more.
* An image Pillow cannot read is **skipped with a warning** (its count is kept in ``meta``), since
  large scraped folders often hold a few broken files; a class left with no readable image, a split
  with no class folder, or a missing folder is an error.
* The per-channel mean/std are the usual ImageNet statistics (static, so that a model can be built
  before the images are read).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError, LandscapeError
from .base import ImageDataset

DEFAULT_IMAGE_SIZE = 64
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
SPLIT_FOLDERS = {"train": ("train",), "test": ("val", "test")}
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
HOW_TO_GET = ("pass `data_dir` pointing at a folder with train/<class>/*.jpg and val/<class>/*.jpg "
              "(the ImageNet-100 layout)")


def split_folder(data_dir: str | Path | None, split: str) -> Path | None:
    """The folder of ``split`` under ``data_dir`` (``train``; ``val`` or ``test``), or None. Reads nothing."""
    if not data_dir:
        return None
    for name in SPLIT_FOLDERS[split]:
        p = Path(data_dir) / name
        if p.is_dir():
            return p
    return None


def find_imagefolder(data_dir: str | Path | None) -> Path | None:
    """``data_dir`` if it has a train folder with at least one class folder, else None."""
    folder = split_folder(data_dir, "train")
    if folder is None:
        return None
    return Path(data_dir) if any(p.is_dir() for p in folder.iterdir()) else None


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def _load_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def load_imagefolder(split: str = "train", data_dir: str | Path | None = None,
                     image_size: int | None = None) -> ImageDataset:
    """Load ``split`` ('train' or 'test') of a class-per-folder dataset, resized to ``image_size``."""
    if split not in SPLIT_FOLDERS:
        raise LandscapeError(f"unknown split {split!r}; use train or test")
    if not data_dir:
        raise DataNotFoundError(f"the imagefolder dataset needs a folder; {HOW_TO_GET}")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataNotFoundError(f"imagefolder: {root} is not a folder; {HOW_TO_GET}")
    size = int(image_size or DEFAULT_IMAGE_SIZE)
    if size < 4 or size > 1024:
        raise LandscapeError(f"image size {size} is out of range; use 4 to 1024 pixels")
    folder = split_folder(root, split)
    if folder is None:
        names = "/ or ".join(SPLIT_FOLDERS[split])
        raise DataNotFoundError(f"imagefolder: {root} has no {names}/ folder for the {split} split; {HOW_TO_GET}")
    train = split_folder(root, "train")
    class_source = train if train is not None else folder
    classes = [p.name for p in _class_dirs(class_source)]
    if not classes:
        raise LandscapeError(f"imagefolder: {class_source} has no class folders")
    index = {c: i for i, c in enumerate(classes)}
    present = _class_dirs(folder)
    unknown = [p.name for p in present if p.name not in index]
    if unknown:
        raise LandscapeError(f"imagefolder: {folder} has class folders not in {class_source}: {', '.join(unknown[:5])}")
    images, labels, skipped = [], [], []
    for cdir in present:
        files = _image_files(cdir)
        if not files:
            raise LandscapeError(f"imagefolder: class folder {cdir} holds no images ({', '.join(EXTENSIONS)})")
        n_before = len(images)
        for f in files:
            try:
                images.append(_load_image(f, size))
            except Exception as e:  # Pillow raises many types for broken files
                skipped.append(f"{f} ({type(e).__name__})")
                continue
            labels.append(index[cdir.name])
        if len(images) == n_before:
            raise LandscapeError(f"imagefolder: no image in {cdir} could be read")
    if not images:
        raise LandscapeError(f"imagefolder: {folder} holds no images")
    if skipped:
        warnings.warn(f"imagefolder: skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]}", stacklevel=2)
    return ImageDataset("imagefolder", split, torch.from_numpy(np.stack(images)),
                        torch.tensor(labels, dtype=torch.int64), classes, source=str(folder),
                        mean=MEAN, std=STD, natural=True,
                        meta={"image_size": size, "data_dir": str(root.resolve()), "skipped": len(skipped)})
