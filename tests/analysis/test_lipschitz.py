"""Lipschitz estimates: with no perturbation they are finite differences of the clean loss."""

import pandas as pd
import pytest
import torch

from landscape.analysis.directions import direction_norm
from landscape.analysis.lipschitz import (build_variants, label_smoothing_targets, lipschitz_estimates,
                                          unit_direction)
from landscape.analysis.objective import LossObjective
from landscape.attacks import Attack
from landscape.errors import LandscapeError

from .test_objective import data, linear_model
from .test_surface import RandomL0, make_ckpt


class NoAttack(Attack):
    name = "none"

    def perturb(self, model, x, y):
        return x.clone()


def test_without_perturbation_equals_finite_differences():
    m = linear_model()
    x, y = data()
    df, meta = lipschitz_estimates(m, x, y, NoAttack(0.1, "linf"), [1e-4], progress=False)
    d = unit_direction(m, seed=0)
    assert direction_norm(d) == pytest.approx(1.0)
    obj = LossObjective(m, x, y, "clean")
    _, _, g, _ = obj.loss_and_grad()
    slope = float(sum((g[k] * d[k]).sum() for k in g))
    row = df.iloc[0]
    assert row.loss_lip == pytest.approx(abs(slope), rel=1e-3)
    assert row.delta_l2 == 0 and row.grad_lip == pytest.approx(row.grad_lip_fixed)


def test_variants_and_l0_location_change(tiny_cnn, tiny_batch):
    x, y = tiny_batch
    t = label_smoothing_targets(y, 3, 0.3)
    torch.testing.assert_close(t.sum(1), torch.ones(len(y)))
    v = build_variants(["labels", "loss"], y, 3)
    assert list(v) == ["hard-ce", "soft-ce", "hard-tradeoff"]
    with pytest.raises(LandscapeError):
        build_variants(["colour"], y, 3)
    df, meta = lipschitz_estimates(tiny_cnn, x, y, RandomL0(4, "l0"), [1e-2, 1e-1], variants=v, progress=False)
    assert len(df) == 6 and set(df.variant) == set(v)
    # the attack is seeded identically at θ₁ and θ₂ (common random numbers): a weight-blind random
    # attack gives the same perturbations, so nothing moves and only the weights change the loss
    assert (df.loc_change == 0).all() and (df.changed == 0).all() and (df.delta_l2 == 0).all()
    with pytest.raises(LandscapeError):
        lipschitz_estimates(tiny_cnn, x, y, RandomL0(4, "l0"), [0.0], progress=False)


def test_cli_lipschitz(cli_run, tmp_path):
    ck = make_ckpt(tmp_path / "l0.pt", {"norm": "l0", "eps": 3})
    r = cli_run(["lipschitz", ck, "--radii", "1e-2,1e-1", "--compare", "labels", "--n-examples", "8",
                 "--out", tmp_path / "lip.png"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "lip.csv")
    assert set(df.variant) == {"hard-ce", "soft-ce"} and (df.loss_lip >= 0).all()
    assert (tmp_path / "lip.png").exists()
    r = cli_run(["lipschitz", ck, "--radii", "x", "--out", tmp_path / "lip.png"])
    assert r.exit_code == 2
