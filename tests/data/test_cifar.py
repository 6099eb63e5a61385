import hashlib
import io
import os
import pickle
import urllib.error

import numpy as np
import pytest

from landscape.data import cifar, load_dataset
from landscape.errors import DataNotFoundError, LandscapeError
from tests.data.cifar_files import expected, make_cifar_files, write_extracted, write_tarball


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """No real cache and no network: every test sees only what it writes."""
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "cache"))

    def offline(*a, **k):
        raise urllib.error.URLError("offline (test)")
    monkeypatch.setattr(cifar.urllib.request, "urlopen", offline)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("form", ["tarball", "extracted"])
def test_loads_official_layout(tmp_path, name, form):
    files = make_cifar_files(name, per_file=4)
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    (write_tarball if form == "tarball" else write_extracted)(name, data_dir, files)
    for split in ("train", "test"):
        ds = load_dataset(name, split, data_dir=data_dir)
        x, y = expected(name, split, files)
        assert ds.images.dtype.is_floating_point is False and ds.shape == (3, 32, 32)
        assert np.array_equal(ds.images.numpy(), x) and np.array_equal(ds.labels.numpy(), y)
        assert ds.num_classes == (10 if name == "cifar10" else 100)
        assert ds.classes[3] == "class3" and ds.natural
        assert ds.mean == cifar.SPECS[name]["mean"] and len(ds.std) == 3
    assert len(load_dataset(name, "train", data_dir=data_dir)) == (20 if name == "cifar10" else 4)


def test_row_major_rgb_planes(tmp_path):
    files = make_cifar_files("cifar10", per_file=1)
    d = pickle.loads(files["cifar-10-batches-py/test_batch"], encoding="bytes")
    write_extracted("cifar10", tmp_path, files)
    img = load_dataset("cifar10", "test", data_dir=tmp_path).images[0]
    row = d[b"data"][0]
    assert img[0, 0, 1] == row[1] and img[0, 1, 0] == row[32] and img[1, 0, 0] == row[1024] and img[2, 31, 31] == row[3071]


def test_extracted_folder_preferred_and_cache_used(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    write_tarball("cifar10", cache)
    assert cifar.find_cifar("cifar10", None) == cache / "cifar-10-python.tar.gz"
    write_extracted("cifar10", cache)
    assert cifar.find_cifar("cifar10", None) == cache / "cifar-10-batches-py"
    # --data-dir comes first
    dd = tmp_path / "dd"
    (dd / "cifar10").mkdir(parents=True)
    write_tarball("cifar10", dd / "cifar10")
    assert cifar.find_cifar("cifar10", dd) == dd / "cifar10" / "cifar-10-python.tar.gz"


def test_not_found_offline_says_where_and_how(tmp_path):
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("cifar100", "train", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path) in msg and "cifar-100-python.tar.gz" in msg and "https://www.cs.toronto.edu" in msg
    with pytest.raises(DataNotFoundError, match="download failed"):
        load_dataset("cifar10", "test", data_dir=tmp_path)  # urlopen is offline
    assert not list(tmp_path.glob("*.part"))


def test_incomplete_folder_is_not_found(tmp_path):
    files = make_cifar_files("cifar10")
    files.pop("cifar-10-batches-py/data_batch_3")
    write_extracted("cifar10", tmp_path, files)
    assert cifar.find_cifar("cifar10", tmp_path) is None


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.mark.parametrize("md5_ok", [True, False])
def test_download_checks_md5(tmp_path, monkeypatch, md5_ok):
    blob = write_tarball("cifar10", tmp_path).read_bytes()
    os.remove(tmp_path / "cifar-10-python.tar.gz")
    seen = []

    def fake_urlopen(url, timeout=None):
        seen.append(url)
        return _Response(blob)
    monkeypatch.setattr(cifar.urllib.request, "urlopen", fake_urlopen)
    md5 = hashlib.md5(blob).hexdigest() if md5_ok else "0" * 32
    monkeypatch.setitem(cifar.SPECS, "cifar10", dict(cifar.SPECS["cifar10"], md5=md5))
    target = tmp_path / "dl"
    if md5_ok:
        ds = load_dataset("cifar10", "test", data_dir=target)
        assert len(ds) == 4 and (target / "cifar-10-python.tar.gz").read_bytes() == blob
    else:
        with pytest.raises(DataNotFoundError, match="checksum"):
            load_dataset("cifar10", "test", data_dir=target)
        assert not any(target.iterdir())  # nothing half-written is kept
    assert seen == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]


def test_download_default_goes_to_cache(tmp_path, monkeypatch):
    blob = write_tarball("cifar100", tmp_path).read_bytes()
    monkeypatch.setattr(cifar.urllib.request, "urlopen", lambda url, timeout=None: _Response(blob))
    monkeypatch.setitem(cifar.SPECS, "cifar100", dict(cifar.SPECS["cifar100"], md5=hashlib.md5(blob).hexdigest()))
    load_dataset("cifar100", "train")
    assert (tmp_path / "cache" / "cifar-100-python.tar.gz").is_file()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_refuses_pickle_with_globals(tmp_path):
    files = make_cifar_files("cifar10")
    files["cifar-10-batches-py/test_batch"] = pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2)
    write_extracted("cifar10", tmp_path, files)
    with pytest.raises(LandscapeError, match="not allowed|refusing"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    with pytest.raises(LandscapeError, match="refusing"):
        cifar.safe_unpickle(pickle.dumps(_codecs_evil(), protocol=2), "x")
    # numpy object arrays may only hold plain values; and must not be accepted as images
    obj = pickle.dumps({b"data": np.array([1, "a"], dtype=object), b"labels": [0]}, protocol=2)
    files["cifar-10-batches-py/test_batch"] = obj
    write_extracted("cifar10", tmp_path, files)
    with pytest.raises(LandscapeError):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def _codecs_evil():
    import codecs

    class Enc:
        def __reduce__(self):
            return (codecs.encode, ("x", "rot13"))
    return Enc()


def test_corrupt_files(tmp_path):
    files = make_cifar_files("cifar10")
    files["cifar-10-batches-py/test_batch"] = files["cifar-10-batches-py/test_batch"][:200]
    write_extracted("cifar10", tmp_path / "a", files)
    with pytest.raises(LandscapeError, match="corrupt|truncated"):
        load_dataset("cifar10", "test", data_dir=tmp_path / "a")
    files = make_cifar_files("cifar10")
    d = pickle.loads(files["cifar-10-batches-py/test_batch"], encoding="bytes")
    d[b"labels"] = d[b"labels"][:-1]
    files["cifar-10-batches-py/test_batch"] = pickle.dumps(d, protocol=2)
    write_extracted("cifar10", tmp_path / "b", files)
    with pytest.raises(LandscapeError, match="labels"):
        load_dataset("cifar10", "test", data_dir=tmp_path / "b")
    # a truncated tarball
    (tmp_path / "c").mkdir()
    tb = write_tarball("cifar10", tmp_path / "c")
    tb.write_bytes(tb.read_bytes()[:300])
    with pytest.raises(LandscapeError):
        load_dataset("cifar10", "train", data_dir=tmp_path / "c")
    # a tarball of something else
    (tmp_path / "e").mkdir()
    write_tarball("cifar10", tmp_path / "e", {"other/file": b"x"})
    with pytest.raises(LandscapeError, match="official"):
        load_dataset("cifar10", "train", data_dir=tmp_path / "e")
