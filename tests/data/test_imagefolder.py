import warnings

import pytest
from PIL import Image

from landscape.data import load_dataset
from landscape.data.imagefolder import DEFAULT_IMAGE_SIZE, find_imagefolder
from landscape.errors import DataNotFoundError, LandscapeError


def _png(path, color, size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "imnet"
    colors = {"zebra": (255, 0, 0), "ant": (0, 255, 0), "moth": (0, 0, 255)}
    for c, col in colors.items():
        for i in range(3):
            _png(root / "train" / c / f"{i}.png", col)
        _png(root / "val" / c / "a.PNG", col, size=(9, 9))
    Image.new("L", (16, 16), 128).save(root / "train" / "ant" / "gray.jpg")  # grey JPEG -> RGB
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    return root


def test_loads_sorted_classes_resized(folder):
    ds = load_dataset("imagefolder", "train", data_dir=folder, image_size=8)
    assert ds.classes == ["ant", "moth", "zebra"]
    assert ds.shape == (3, 8, 8) and len(ds) == 10 and ds.images.dtype.is_floating_point is False
    assert ds.natural and ds.meta["image_size"] == 8
    assert ds.labels.bincount().tolist() == [4, 3, 3]
    red = ds.images[ds.labels == 2]
    assert (red[:, 0] == 255).all() and (red[:, 1:] == 0).all()
    gray = ds.images[(ds.labels == 0) & (ds.images[:, 0, 0, 0] != 0)]
    assert len(gray) == 1 and abs(int(gray[0, 1, 4, 4]) - 128) <= 2
    test = load_dataset("imagefolder", "test", data_dir=folder, image_size=8)
    assert test.classes == ds.classes and len(test) == 3 and test.labels.tolist() == [0, 1, 2]


def test_default_size_and_test_folder_name(tmp_path):
    for split in ("train", "test"):
        _png(tmp_path / split / "a" / "0.png", (1, 2, 3))
    ds = load_dataset("imagefolder", "test", data_dir=tmp_path)
    assert ds.shape == (3, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    assert find_imagefolder(tmp_path) == tmp_path and find_imagefolder(tmp_path / "nothing") is None


def test_unreadable_images_are_skipped_with_a_warning(folder):
    (folder / "train" / "moth" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ds = load_dataset("imagefolder", "train", data_dir=folder, image_size=8)
    assert len(ds) == 10 and ds.meta["skipped"] == 1


def test_errors(tmp_path, folder):
    with pytest.raises(DataNotFoundError, match="`data_dir`"):  # the library names its argument
        load_dataset("imagefolder", "train")
    with pytest.raises(DataNotFoundError, match="not a folder"):
        load_dataset("imagefolder", "train", data_dir=tmp_path / "missing")
    with pytest.raises(DataNotFoundError, match="no train"):
        load_dataset("imagefolder", "train", data_dir=folder / "val")
    (folder / "train" / "empty").mkdir()
    with pytest.raises(LandscapeError, match="holds no images"):
        load_dataset("imagefolder", "train", data_dir=folder, image_size=8)
    (folder / "train" / "empty").rmdir()
    _png(folder / "val" / "unicorn" / "0.png", (0, 0, 0))
    with pytest.raises(LandscapeError, match="unicorn"):
        load_dataset("imagefolder", "test", data_dir=folder, image_size=8)
    bad = tmp_path / "bad"
    (bad / "train" / "x").mkdir(parents=True)
    (bad / "train" / "x" / "0.jpg").write_bytes(b"junk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LandscapeError, match="could be read"):
            load_dataset("imagefolder", "train", data_dir=bad)
    with pytest.raises(LandscapeError, match="image size"):
        load_dataset("imagefolder", "train", data_dir=folder, image_size=2)
