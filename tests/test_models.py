import pytest
import torch

from landscape.errors import LandscapeError
from landscape.models import ARCHS, build_model, model_kwargs_for


@pytest.mark.parametrize("act", ["relu", "softplus"])
def test_preact_resnet18_any_channels_classes(act):
    torch.manual_seed(0)
    m = build_model("preact-resnet18", in_channels=1, num_classes=7, activation=act, width=0.125).eval()
    out = m(torch.rand(2, 1, 16, 16))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    kinds = {type(mod).__name__ for mod in m.modules()}
    assert ("Softplus" in kinds) == (act == "softplus")
    m3 = build_model("preact-resnet18", in_channels=3, num_classes=100, activation=act, width=0.125).eval()
    assert m3(torch.rand(1, 3, 32, 32)).shape == (1, 100)


def test_preact_width_multiplier_and_names():
    small = build_model("preact-resnet18", width=0.125)
    full_names = {"conv1.weight", "layer1.0.bn1.weight", "layer2.0.shortcut.0.weight", "bn.weight", "linear.weight"}
    assert full_names <= set(small.state_dict())
    assert small.conv1.weight.shape == (8, 3, 3, 3) and small.linear.weight.shape == (10, 64)
    n_small = sum(p.numel() for p in small.parameters())
    n_half = sum(p.numel() for p in build_model("preact-resnet18", width=0.25).parameters())
    assert 3 < n_half / n_small < 5  # parameters scale with width squared
    assert not any("normalize" in k for k in small.state_dict())  # mean/std are not weights


def test_softplus_beta():
    m = build_model("preact-resnet18", width=0.125, activation="softplus10")
    assert any(isinstance(mod, torch.nn.Softplus) and mod.beta == 10 for mod in m.modules())
    with pytest.raises(LandscapeError, match="unknown activation"):
        build_model("preact-resnet18", width=0.125, activation="tanh")


@pytest.mark.parametrize("size,c,k", [(28, 1, 10), (32, 3, 100), (12, 2, 3)])
def test_small_cnn_shapes(size, c, k):
    m = build_model("small-cnn", in_channels=c, num_classes=k, image_size=size, width=4, hidden=8).eval()
    assert m(torch.rand(3, c, size, size)).shape == (3, k)
    bn = build_model("small-cnn", in_channels=c, num_classes=k, image_size=size, width=4, hidden=8, batchnorm=True)
    assert any(isinstance(mod, torch.nn.BatchNorm2d) for mod in bn.modules())
    sp = build_model("small-cnn", image_size=size, in_channels=c, width=4, hidden=8, act="softplus")
    assert any(isinstance(mod, torch.nn.Softplus) for mod in sp.modules())


def test_normalisation_inside_the_model():
    torch.manual_seed(0)
    mean, std = [0.2, 0.5, 0.7], [0.1, 0.3, 0.2]
    a = build_model("preact-resnet18", width=0.125, mean=mean, std=std).eval()
    b = build_model("preact-resnet18", width=0.125).eval()  # mean 0, std 1
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, 3, 8, 8)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(a(x), b((x - m) / s), atol=1e-5)
    assert torch.allclose(a.normalize(x), (x - m) / s)
    # float64 works too (the buffers follow the input's dtype)
    assert a.double()(x.double()).dtype == torch.float64


def test_model_kwargs_for_and_errors():
    meta = {"channels": 3, "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3, "height": 32}
    kw = model_kwargs_for("small-cnn", meta, width=4, hidden=None)
    m = build_model("small-cnn", **kw, hidden=8)
    assert m(torch.rand(1, 3, 32, 32)).shape == (1, 10) and kw["width"] == 4 and "hidden" not in kw
    assert set(ARCHS) == {"small-cnn", "preact-resnet18"}
    assert isinstance(build_model("PreAct_ResNet18", width=0.125), torch.nn.Module)
    with pytest.raises(LandscapeError, match="unknown model 'vgg'"):
        build_model("vgg")
    with pytest.raises(LandscapeError, match="does not take depth"):
        build_model("small-cnn", depth=3)
