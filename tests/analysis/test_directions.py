"""Filter-normalised directions and direction files."""

import pytest
import torch

from landscape.analysis.directions import (direction_norm, load_directions, random_direction, random_directions,
                                           save_directions)
from landscape.errors import LandscapeError
from landscape.models import build_model


def test_filter_normalised(tiny_cnn):
    d = random_direction(tiny_cnn, seed=0)
    weights = dict(tiny_cnn.named_parameters())
    assert set(d) == set(weights)
    for k, v in d.items():
        w = weights[k].detach()
        if w.dim() <= 1:  # biases and BatchNorm weights/biases
            assert v.abs().sum() == 0, k
        else:
            torch.testing.assert_close(v.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-5, atol=1e-7)
    d_bn = random_direction(tiny_cnn, seed=0, include_bn=True)
    bn_w = "features.1.weight"
    assert d_bn[bn_w].norm() == pytest.approx(float(weights[bn_w].detach().norm()), rel=1e-5)
    # the same seed gives the same plane; different draws differ
    a, b = random_directions(tiny_cnn, 2, seed=4)
    a2, _ = random_directions(tiny_cnn, 2, seed=4)
    assert all(torch.equal(a[k], a2[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], b["features.0.weight"])
    u = random_direction(tiny_cnn, seed=1, norm="unit")
    assert direction_norm(u) == pytest.approx(1.0, rel=1e-5)


def test_direction_file_roundtrip_and_mismatch(tiny_cnn, tmp_path):
    dirs = random_directions(tiny_cnn, 2, seed=1)
    p = save_directions(tmp_path / "d.pt", dirs, {"seed": 1})
    raw = torch.load(p, weights_only=True)
    assert raw["names"] == list(dirs[0])
    loaded, meta = load_directions(p, tiny_cnn, k=2)
    assert meta["seed"] == 1
    for a, b in zip(dirs, loaded):
        assert all(torch.equal(a[k], b[k]) for k in a)
    other = build_model("small-cnn", in_channels=1, num_classes=3, image_size=12, width=6, hidden=8, batchnorm=True)
    with pytest.raises(LandscapeError, match="does not fit"):
        load_directions(p, other)
    with pytest.raises(LandscapeError, match="direction"):
        load_directions(p, tiny_cnn, k=3)
    torch.save({"x": torch.zeros(1)}, tmp_path / "junk.pt")
    with pytest.raises(LandscapeError, match="not a landscape directions file"):
        load_directions(tmp_path / "junk.pt", tiny_cnn)
