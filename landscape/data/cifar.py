"""CIFAR-10 and CIFAR-100 from the official python-pickle tarballs.

Layout (exactly as published at https://www.cs.toronto.edu/~kriz/cifar.html):

* ``cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/{data_batch_1..5, test_batch,
  batches.meta}``; each batch is a pickled dict with ``b'data'`` (uint8, N x 3072: the red, green
  and blue 32x32 planes of each image, row-major) and ``b'labels'``; the meta dict has
  ``b'label_names'``;
* ``cifar-100-python.tar.gz`` holding ``cifar-100-python/{train, test, meta}`` with ``b'fine_labels'``
  and ``b'fine_label_names'``.

Where the data is looked for, in order (the first hit wins; the extracted folder before the tarball):

1. ``--data-dir``: ``<data_dir>/<folder>``, ``<data_dir>/<tarball>``, and the same under
   ``<data_dir>/<name>/``;
2. the cache, ``~/.cache/landscape`` (or ``$LANDSCAPE_DATA``): ``<cache>/<folder>``, ``<cache>/<tarball>``;
3. the canonical download into ``<data_dir or cache>/<tarball>``, checked against the published md5
   before it is kept. The tarball is read in place (members are read from the archive, never
   extracted to disk).

The batches are pickles; they are read with a restricted unpickler that allows only the three
numpy names needed to rebuild a plain array (``_reconstruct``, ``ndarray``, ``dtype``), plus the
latin-1 ``_codecs.encode`` that Python 3 uses for bytes at protocol 2, and refuses every other
global, so a doctored file cannot run code. Local copies are checked structurally (array shapes, label
counts and ranges) rather than by md5, so that the small test archives load too.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError, LandscapeError
from .base import ImageDataset
from .idx import default_cache, md5_file

SPECS = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "folder": "cifar-10-batches-py",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "files": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        "meta": "batches.meta", "labels": b"labels", "names": b"label_names",
        "num_classes": 10, "counts": {"train": 50000, "test": 10000},
        "mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616),
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "folder": "cifar-100-python",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "files": {"train": ["train"], "test": ["test"]},
        "meta": "meta", "labels": b"fine_labels", "names": b"fine_label_names",
        "num_classes": 100, "counts": {"train": 50000, "test": 10000},
        "mean": (0.5071, 0.4865, 0.4409), "std": (0.2673, 0.2564, 0.2762),
    },
}

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _spec(name: str) -> dict:
    if name not in SPECS:
        raise LandscapeError(f"unknown CIFAR dataset {name!r}; use cifar10 or cifar100")
    return SPECS[name]


def how_to_get(name: str) -> str:
    s = _spec(name)
    return (f"download {s['url']} (md5 {s['md5']}) into `data_dir` or {default_cache()}, "
            "or run any command that loads it while online")


# --------------------------------------------------------------------------- safe unpickling
def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _latin1_encode():
    import codecs

    def encode(text, encoding="utf-8", errors="strict"):
        # Python 3 pickles bytes at protocol <= 2 as _codecs.encode(str, 'latin1'); nothing else is allowed
        if str(encoding).lower().replace("-", "") != "latin1" or not isinstance(text, str):
            raise pickle.UnpicklingError("only latin1 byte strings may be rebuilt")
        return codecs.encode(text, "latin1", errors)
    return encode


_ALLOWED = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Plain containers, bytes, numbers and numpy arrays only; any other global is refused."""

    def find_class(self, module, name):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return make()


def safe_unpickle(data: bytes, what: str):
    """Unpickle a CIFAR batch (``encoding='bytes'``) without running any code it might name."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise LandscapeError(f"{what} is not a plain CIFAR pickle ({e}); refusing to load it") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError, UnicodeError) as e:
        raise LandscapeError(f"{what} is corrupt or truncated ({type(e).__name__})") from None


# --------------------------------------------------------------------------- lookup (no side effects)
def candidates(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Every path where ``name`` is looked for, in order (folders and tarballs)."""
    s = _spec(name)
    roots = []
    if data_dir:
        roots += [Path(data_dir), Path(data_dir) / name]
    roots.append(default_cache())
    out = []
    for r in roots:
        out += [r / s["folder"], r / s["archive"]]
    return out


def _folder_complete(folder: Path, s: dict) -> bool:
    need = [s["meta"]] + s["files"]["train"] + s["files"]["test"]
    return all((folder / f).is_file() for f in need)


def find_cifar(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first extracted folder (with every batch) or tarball of ``name``, or None. Reads nothing."""
    s = _spec(name)
    for p in candidates(name, data_dir):
        if p.name == s["folder"] and p.is_dir() and _folder_complete(p, s):
            return p
        if p.name == s["archive"] and p.is_file():
            return p
    return None


# --------------------------------------------------------------------------- download
def download(name: str, data_dir: str | Path | None = None) -> Path:
    """Fetch the official tarball into ``<data_dir or cache>/``, keeping it only if its md5 matches."""
    s = _spec(name)
    target_dir = Path(data_dir) if data_dir else default_cache()
    dest = target_dir / s["archive"]
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataNotFoundError(f"cannot create {target_dir} to download {name} into ({e})") from None
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(s["url"], timeout=60) as r, open(tmp, "wb") as f:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                f.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise DataNotFoundError(f"could not download {s['url']} ({e})") from None
    got = md5_file(tmp)
    if got != s["md5"]:
        tmp.unlink(missing_ok=True)
        raise DataNotFoundError(f"the download of {s['url']} failed its checksum (md5 {got}, "
                                f"expected {s['md5']}); it was discarded")
    os.replace(tmp, dest)
    return dest


# --------------------------------------------------------------------------- reading
def _reader(source: Path, s: dict):
    """A function ``read(member_name) -> bytes`` over an extracted folder or the tarball."""
    if source.is_dir():
        def read(fname):
            path = source / fname
            try:
                return path.read_bytes()
            except OSError as e:
                raise LandscapeError(f"cannot read {path} ({e})") from None
        return read, None
    try:
        tar = tarfile.open(source, "r:*")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise LandscapeError(f"{source} is not a readable tar archive ({e})") from None

    def read(fname):
        member = f"{s['folder']}/{fname}"
        try:
            info = tar.getmember(member)
            f = tar.extractfile(info)
            if f is None:
                raise KeyError(member)
            return f.read()
        except KeyError:
            raise LandscapeError(f"{source} has no {member}; is it the official {s['archive']}?") from None
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            raise LandscapeError(f"{source} is corrupt or truncated ({e})") from None
    return read, tar


def _as_images(data, what: str) -> np.ndarray:
    if isinstance(data, (bytes, bytearray)):
        arr = np.frombuffer(bytes(data), dtype=np.uint8)
    elif isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise LandscapeError(f"{what}: b'data' is {data.dtype}, expected uint8")
        arr = data
    elif isinstance(data, list):
        arr = np.asarray(data, dtype=np.uint8)
    else:
        raise LandscapeError(f"{what}: b'data' has an unexpected type {type(data).__name__}")
    if arr.size % 3072:
        raise LandscapeError(f"{what}: b'data' does not hold whole 3x32x32 images ({arr.size} bytes)")
    return np.ascontiguousarray(arr).reshape(-1, 3, 32, 32)


def load_cifar(name: str, split: str = "train", data_dir: str | Path | None = None,
               download_ok: bool = True) -> ImageDataset:
    """Load ``cifar10`` or ``cifar100`` ``split`` ('train' or 'test') as an :class:`ImageDataset`."""
    s = _spec(name)
    if split not in s["files"]:
        raise LandscapeError(f"unknown split {split!r}; use train or test")
    source = find_cifar(name, data_dir)
    if source is None:
        looked = ", ".join(str(p) for p in candidates(name, data_dir))
        if not download_ok:
            raise DataNotFoundError(f"{name} not found (looked in {looked}); {how_to_get(name)}")
        try:
            source = download(name, data_dir)
        except DataNotFoundError as e:
            raise DataNotFoundError(f"{name} not found (looked in {looked}) and the download failed: {e}; "
                                    f"{how_to_get(name)}") from None
    read, tar = _reader(source, s)
    try:
        meta = safe_unpickle(read(s["meta"]), f"{source}: {s['meta']}")
        if not isinstance(meta, dict) or s["names"] not in meta:
            raise LandscapeError(f"{source}: {s['meta']} has no {s['names']!r}")
        classes = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in meta[s["names"]]]
        images, labels = [], []
        for fname in s["files"][split]:
            what = f"{source}: {fname}"
            batch = safe_unpickle(read(fname), what)
            if not isinstance(batch, dict) or b"data" not in batch or s["labels"] not in batch:
                raise LandscapeError(f"{what} lacks b'data' or {s['labels']!r}")
            x = _as_images(batch[b"data"], what)
            y = np.asarray(batch[s["labels"]], dtype=np.int64).reshape(-1)
            if len(x) != len(y):
                raise LandscapeError(f"{what}: {len(x)} images but {len(y)} labels")
            images.append(x)
            labels.append(y)
    finally:
        if tar is not None:
            tar.close()
    images = np.concatenate(images)
    labels = np.concatenate(labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise LandscapeError(f"{source}: labels outside 0..{len(classes) - 1}")
    return ImageDataset(name, split, torch.from_numpy(images), torch.from_numpy(labels), classes,
                        source=str(source), mean=s["mean"], std=s["std"], natural=True)
