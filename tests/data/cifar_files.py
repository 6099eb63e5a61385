"""Writers of tiny CIFAR archives in the exact official layout (shared by the data and CLI tests)."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

LAYOUT = {
    "cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py",
                {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
                "batches.meta", b"labels", b"label_names", 10),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python", {"train": ["train"], "test": ["test"]},
                 "meta", b"fine_labels", b"fine_label_names", 100),
}


def make_cifar_files(name: str, per_file: int = 4, seed: int = 0) -> dict[str, bytes]:
    """``{member path inside the tarball: pickled bytes}``; image i of each file has a known pattern."""
    archive, folder, files, meta_name, label_key, names_key, k = LAYOUT[name]
    rng = np.random.default_rng(seed)
    out = {f"{folder}/{meta_name}": pickle.dumps({names_key: [f"class{i}".encode() for i in range(k)],
                                                  b"num_cases_per_batch": per_file}, protocol=2)}
    for split in ("train", "test"):
        for fname in files[split]:
            data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
            labels = [int(v) for v in rng.integers(0, k, per_file)]
            out[f"{folder}/{fname}"] = pickle.dumps(
                {b"batch_label": b"batch", b"data": data, label_key: labels,
                 b"filenames": [b"img.png"] * per_file}, protocol=2)
    return out


def write_tarball(name: str, where: Path, files: dict[str, bytes] | None = None) -> Path:
    files = files or make_cifar_files(name)
    path = Path(where) / LAYOUT[name][0]
    with tarfile.open(path, "w:gz") as tar:
        for member, blob in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def write_extracted(name: str, where: Path, files: dict[str, bytes] | None = None) -> Path:
    files = files or make_cifar_files(name)
    for member, blob in files.items():
        p = Path(where) / member
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob)
    return Path(where) / LAYOUT[name][1]


def expected(name: str, split: str, files: dict[str, bytes]):
    """Images (N,3,32,32) and labels as the loader should return them."""
    _, folder, names, _, label_key, _, _ = LAYOUT[name]
    xs, ys = [], []
    for fname in names[split]:
        d = pickle.loads(files[f"{folder}/{fname}"], encoding="bytes")
        xs.append(d[b"data"].reshape(-1, 3, 32, 32))
        ys += d[label_key]
    return np.concatenate(xs), np.array(ys)
