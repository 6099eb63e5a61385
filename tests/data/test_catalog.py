import pytest

from landscape.data import DATASETS, load_dataset
from landscape.data.catalog import describe_dataset, locate
from landscape.errors import LandscapeError
from tests.data.cifar_files import write_extracted


def test_static_metadata_matches_loaded_data(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "cache"))
    keys = ("channels", "height", "width", "num_classes", "mean", "std")
    mini = load_dataset("fashion-mnist-mini", "test").describe()
    static = describe_dataset("fashion-mnist-mini")
    assert {k: static[k] for k in keys} == {k: mini[k] for k in keys} and static["classes"] == mini["classes"]
    write_extracted("cifar100", tmp_path)
    loaded = load_dataset("cifar100", "test", data_dir=tmp_path).describe()
    static = describe_dataset("cifar100")
    assert {k: static[k] for k in keys} == {k: pytest.approx(loaded[k]) for k in keys}
    assert describe_dataset("cifar10")["classes"][0] == "airplane"


def test_imagefolder_and_errors():
    d = describe_dataset("imagefolder", num_classes=100, image_size=96)
    assert d["num_classes"] == 100 and d["height"] == 96 and d["image_size"] == 96 and d["channels"] == 3
    assert describe_dataset("imagefolder", classes=["a", "b"])["num_classes"] == 2
    with pytest.raises(LandscapeError, match="number of classes"):
        describe_dataset("imagefolder")
    with pytest.raises(LandscapeError, match="unknown dataset"):
        describe_dataset("svhn")
    with pytest.raises(LandscapeError, match="28x28"):
        describe_dataset("mnist", image_size=64)
    with pytest.raises(LandscapeError, match="has 10 classes"):
        describe_dataset("cifar10", num_classes=100)


def test_locate_has_no_side_effects(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_DATA", str(tmp_path / "cache"))
    found = {name: locate(name, tmp_path / "nothing") for name in DATASETS}
    assert all(hint for _, hint in found.values())
    assert found["fashion-mnist-mini"][0].startswith("embedded")
    assert all(found[n][0] is None for n in ("mnist", "cifar10", "cifar100", "imagefolder"))
    assert list(tmp_path.iterdir()) == []
