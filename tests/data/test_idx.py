import gzip
from pathlib import Path

import numpy as np
import pytest

from landscape.data import load_dataset
from landscape.data.idx import FILES, read_idx, write_idx
from landscape.errors import DataNotFoundError, LandscapeError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def _write_mnist(folder, n_train=12, n_test=5, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(x, folder / FILES[split][0])
        write_idx(y, folder / FILES[split][1])
        arrays[split] = (x, y)
    return arrays


@pytest.fixture(autouse=True)
def no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "cache"))


def test_reads_tiny_idx_from_data_dir(tmp_path):
    arrays = _write_mnist(tmp_path / "mnist")
    for split in ("train", "test"):
        ds = load_dataset("mnist", split, data_dir=tmp_path, download=False)
        x, y = arrays[split]
        assert ds.shape == (1, 28, 28) and np.array_equal(ds.images[:, 0].numpy(), x)
        assert np.array_equal(ds.labels.numpy(), y) and not ds.natural
        assert ds.source == str(tmp_path / "mnist")


def test_truncated_and_corrupt_files(tmp_path):
    _write_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / FILES["test"][0]
    with gzip.open(path) as f:
        raw = f.read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-10])
    with pytest.raises(LandscapeError, match="truncated or corrupt"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x0d\x03" + raw[4:])
    with pytest.raises(LandscapeError, match="magic"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(LandscapeError, match="gzip"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    lab = tmp_path / "mnist" / FILES["train"][1]
    write_idx(np.zeros(3, np.uint8), lab)
    with pytest.raises(LandscapeError, match="labels"):
        load_dataset("mnist", "train", data_dir=tmp_path, download=False)


def test_read_idx_roundtrip():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    assert np.array_equal(read_idx(header + a.tobytes()), a)
    with pytest.raises(LandscapeError):
        read_idx(b"\x00\x00")


def test_not_found_without_download(tmp_path):
    with pytest.raises(DataNotFoundError, match="mnist not found"):
        load_dataset("mnist", "train", data_dir=tmp_path, download=False)


def test_fashion_mnist_mini_balanced():
    for split, n in (("train", 5000), ("test", 1000)):
        ds = load_dataset("fashion-mnist-mini", split)
        assert len(ds) == n and ds.shape == (1, 28, 28) and ds.num_classes == 10
        assert ds.labels.bincount(minlength=10).tolist() == [n // 10] * 10
        assert ds.classes[0] == "T-shirt/top" and ds.source.startswith("embedded")


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist():
    ds = load_dataset("fashion-mnist", "test", download=False)
    assert len(ds) == 10000 and ds.shape == (1, 28, 28)
    assert ds.source == str(DEBIAN) and ds.labels.bincount().tolist() == [1000] * 10
    mini = load_dataset("fashion-mnist-mini", "test")
    # the embedded subset is made of real test images
    first = mini.images[0]
    assert bool((ds.images == first).flatten(1).all(1).any())


def test_unknown_dataset_and_split():
    with pytest.raises(LandscapeError, match="unknown dataset 'svhn'"):
        load_dataset("svhn")
    with pytest.raises(LandscapeError, match="unknown split"):
        load_dataset("mnist", "val")


class _Response:
    def __init__(self, blob):
        self.blob = blob

    def read(self, *a):
        blob, self.blob = self.blob, b""
        return blob

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("md5_ok", [True, False])
def test_download_with_md5_check(tmp_path, monkeypatch, md5_ok):
    import hashlib

    from landscape.data import idx
    src = tmp_path / "src"
    _write_mnist(src)
    blobs = {p.name: p.read_bytes() for p in src.iterdir()}
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        return _Response(blobs[url.rsplit("/", 1)[1]])
    monkeypatch.setattr(idx.urllib.request, "urlopen", fake_urlopen)
    md5 = {k: (hashlib.md5(v).hexdigest() if md5_ok else "0" * 32) for k, v in blobs.items()}
    monkeypatch.setitem(idx.SOURCES, "mnist", dict(idx.SOURCES["mnist"], md5=md5))
    target = tmp_path / "dl"
    if md5_ok:
        ds = load_dataset("mnist", "test", data_dir=target)
        assert len(ds) == 5 and ds.source == str(target / "mnist")
        assert all(u.startswith(idx.SOURCES["mnist"]["urls"][0]) for u in urls) and len(urls) == 4
    else:
        with pytest.raises(DataNotFoundError, match="checksum mismatch"):
            load_dataset("mnist", "test", data_dir=target)
        assert not any(p.is_file() for p in target.rglob("*"))
