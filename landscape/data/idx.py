"""MNIST and Fashion-MNIST from their IDX ``.gz`` files.

Where the files are looked for, in order:

1. ``--data-dir`` (``<data_dir>/<name>/`` and ``<data_dir>/`` itself);
2. Debian's ``dataset-fashion-mnist`` package, ``/usr/share/datasets/fashion-mnist`` (Fashion-MNIST);
3. the canonical download (``<data_dir or ~/.cache/landscape>/<name>/``), each file checked against
   its published md5 before it is used.

Debian recompresses the ``.gz`` files, so files found on disk are checked on their decompressed
content instead: the IDX magic number, the item count and, for Fashion-MNIST, the SHA-256 of the
decompressed bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError, LandscapeError
from .base import ImageDataset

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

SOURCES = {
    "fashion-mnist": {
        "urls": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "md5": {  # of the published .gz files
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "sha256_raw": {  # of the decompressed IDX bytes (checked on every local copy)
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        "system": ["/usr/share/datasets/fashion-mnist"],
        "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                    "Bag", "Ankle boot"],
        "mean": (0.2860,), "std": (0.3530,),
        "hint": "install Debian's package (apt-get install dataset-fashion-mnist) or pass `data_dir`",
    },
    "mnist": {
        "urls": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "sha256_raw": {},
        "system": ["/usr/share/datasets/mnist"],
        "classes": [str(i) for i in range(10)],
        "mean": (0.1307,), "std": (0.3081,),
        "hint": "put the four IDX .gz files in `data_dir`/mnist",
    },
}


def default_cache() -> Path:
    return Path(os.environ.get("LANDSCAPE_DATA", Path.home() / ".cache" / "landscape"))


def read_idx(data: bytes, what: str = "IDX file") -> np.ndarray:
    """Parse an uncompressed IDX byte string (ubyte payload) into a numpy array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise LandscapeError(f"{what} is not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count = int(np.prod(dims)) if dims else 0
    if len(data) != header + count:
        raise LandscapeError(f"{what} is truncated or corrupt: expected {header + count} bytes, found {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(array: np.ndarray, path: str | Path) -> None:
    """Write a uint8 array as a gzipped IDX file (used by tests and by ``make_mini``)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def md5_file(path: Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks (download checks of every dataset use it)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def candidate_dirs(name: str, data_dir: str | Path | None) -> list[Path]:
    dirs = []
    if data_dir:
        dirs += [Path(data_dir) / name, Path(data_dir)]
    dirs += [Path(p) for p in SOURCES[name]["system"]]
    dirs.append(default_cache() / name)
    return dirs


def find_files(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first directory holding all four IDX files of ``name``, or None."""
    for d in candidate_dirs(name, data_dir):
        if all((d / f).is_file() for pair in FILES.values() for f in pair):
            return d
    return None


def download(name: str, data_dir: str | Path | None = None) -> Path:
    """Download the four IDX files from the canonical source, verifying md5; return their folder."""
    spec = SOURCES[name]
    target = (Path(data_dir) / name) if data_dir else default_cache() / name
    target.mkdir(parents=True, exist_ok=True)
    for pair in FILES.values():
        for fname in pair:
            dest = target / fname
            if dest.is_file() and md5_file(dest) == spec["md5"][fname]:
                continue
            last_error = None
            for base in spec["urls"]:
                tmp = dest.with_suffix(".part")
                try:
                    with urllib.request.urlopen(base + fname, timeout=30) as r, open(tmp, "wb") as f:
                        f.write(r.read())
                except (urllib.error.URLError, OSError, TimeoutError) as e:
                    last_error = e
                    continue
                if md5_file(tmp) != spec["md5"][fname]:
                    tmp.unlink(missing_ok=True)
                    last_error = LandscapeError(f"checksum mismatch for {fname} from {base}")
                    continue
                os.replace(tmp, dest)
                break
            else:
                raise DataNotFoundError(f"could not download {name} file {fname}: {last_error}")
    return target


def load_idx_dataset(name: str, split: str = "train", data_dir: str | Path | None = None,
                     download_ok: bool = True) -> ImageDataset:
    """Load ``mnist`` or ``fashion-mnist`` ``split`` ('train' or 'test') as an :class:`ImageDataset`."""
    spec = SOURCES[name]
    folder = find_files(name, data_dir)
    if folder is None:
        if download_ok:
            try:
                folder = download(name, data_dir)
            except DataNotFoundError as e:
                looked = ", ".join(str(d) for d in candidate_dirs(name, data_dir))
                raise DataNotFoundError(f"{name} not found (looked in {looked}) and the download failed "
                                        f"({e}); {spec['hint']}") from None
        else:
            looked = ", ".join(str(d) for d in candidate_dirs(name, data_dir))
            raise DataNotFoundError(f"{name} not found (looked in {looked}); {spec['hint']}")
    img_file, lab_file = FILES[split]
    arrays = []
    for fname in (img_file, lab_file):
        path = folder / fname
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read()
        except (OSError, EOFError) as e:
            raise LandscapeError(f"{path} is not a readable gzip file ({e})") from None
        want = spec["sha256_raw"].get(fname)
        if want and hashlib.sha256(raw).hexdigest() != want:
            raise LandscapeError(f"{path} does not match the published {name} data (checksum mismatch)")
        arrays.append(read_idx(raw, str(path)))
    images, labels = arrays
    if len(images) != len(labels):
        raise LandscapeError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return ImageDataset(name, split, torch.from_numpy(images.copy()).unsqueeze(1),
                        torch.from_numpy(labels.astype(np.int64)), spec["classes"], source=str(folder),
                        mean=spec["mean"], std=spec["std"])
