"""Overlap of perturbed pixel locations."""

import math

import pandas as pd
import pytest
import torch

from landscape.analysis.overlap import location_overlap, perturbed_pixels, pixel_iou
from landscape.attacks import Attack
from tests.interrupting import interrupting, recording

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


def test_cli_overlap_interrupted_in_the_strong_attack_resumes(cli_run, tmp_path, monkeypatch):
    """Ctrl-C in the second batch of the strong attack: the 1-step attack's and the strong attack's
    finished batches are kept (exit 130, saying so); the same command again attacks only what is left
    and writes the table an uninterrupted run writes; the partial folder is gone afterwards."""
    import landscape.attacks.base as base
    real = base.attack_batches
    ck = make_ckpt(tmp_path / "l0.pt", {"norm": "l0", "eps": 3})
    cmd = ["overlap", ck, "--n-examples", "12", "--batch-size", "5", "--strong-attack", "saa", "--strong-steps", "3",
           "--strong-queries", "5"]
    assert cli_run(cmd + ["--out", tmp_path / "whole.png"]).exit_code == 0
    with monkeypatch.context() as m:
        m.setattr(base, "attack_batches", interrupting(real, call=2, batch=1)[0])
        r = cli_run(cmd + ["--out", tmp_path / "part.png"])
    assert r.exit_code == 130 and "partial results were saved" in r.stderr
    assert [p.name for p in sorted((tmp_path / ".part.partial").iterdir())] == ["strong"]  # the 1-step one completed
    fake, calls = recording(real)
    with monkeypatch.context() as m:
        m.setattr(base, "attack_batches", fake)
        assert cli_run(cmd + ["--out", tmp_path / "part.png"]).exit_code == 0
    assert calls == [0, 5] and not (tmp_path / ".part.partial").exists()   # 1-step again (cheap); strong from 5
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "part.csv"), pd.read_csv(tmp_path / "whole.csv"))
