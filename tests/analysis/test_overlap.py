"""Overlap of perturbed pixel locations."""

import math

import pandas as pd
import pytest
import torch

from landscape.analysis.overlap import location_overlap, perturbed_pixels, pixel_iou
from landscape.attacks import Attack

from .test_surface import make_ckpt


class FixedPixels(Attack):
    """Sets the listed pixels to 1 - x (a stand-in with known locations)."""
    norms = ("l0",)

    def __init__(self, eps, pixels):
        super().__init__(eps, "l0")
        self.pixels = pixels

    def perturb(self, model, x, y):
        out = x.clone()
        for (h, w) in self.pixels:
            out[:, :, h, w] = 1 - x[:, :, h, w]
        return out


def test_pixel_iou():
    a = torch.zeros(3, 4, 4, dtype=torch.bool)
    b = torch.zeros_like(a)
    a[0, 0, 0] = a[0, 0, 1] = b[0, 0, 1] = True
    a[1, 2, 2] = b[1, 3, 3] = True
    iou = pixel_iou(a, b)
    assert iou[0] == pytest.approx(0.5) and iou[1] == 0 and math.isnan(iou[2])
    x = torch.rand(2, 3, 4, 4)
    xa = x.clone()
    xa[0, 2, 1, 1] += 0.1  # one channel of one pixel counts as the pixel
    assert perturbed_pixels(x, xa).sum() == 1


def test_location_overlap(tiny_cnn, tiny_batch):
    x, y = tiny_batch
    x = x.clamp(0.01, 0.99)
    df, meta = location_overlap(tiny_cnn, x, y, FixedPixels(2, [(0, 0), (0, 1)]), FixedPixels(2, [(0, 1), (5, 5)]))
    assert df.iou.tolist() == pytest.approx([1 / 3] * len(x))
    assert meta["mean_iou_all"] == pytest.approx(1 / 3) and meta["n_all"] == len(x)
    both = df.success_onestep & df.success_strong
    assert meta["n_both_succeed"] == int(both.sum())


def test_cli_overlap(cli_run, tmp_path):
    ck = make_ckpt(tmp_path / "l0.pt", {"norm": "l0", "eps": 3})
    r = cli_run(["overlap", ck, "--n-examples", "8", "--strong-attack", "spgd", "--strong-steps", "3",
                 "--out", tmp_path / "ov.png"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "ov.csv")
    assert len(df) == 8 and ((df.iou.dropna() >= 0) & (df.iou.dropna() <= 1)).all()
    assert (df.pixels_onestep <= 3).all() and (tmp_path / "ov.png").exists()
