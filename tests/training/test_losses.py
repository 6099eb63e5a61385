"""Losses and soft labels against hand computations on a tiny batch."""

import math

import pytest
import torch

from landscape.errors import LandscapeError
from landscape.training import Recipe, SoftLabels, cross_entropy, get_preset, recipe_loss
from landscape.training.losses import KLObjective, kl_clean_adv
from landscape.training.trainer import make_attack


class Lookup(torch.nn.Module):
    """A 'model' returning fixed logits per input (the input's first pixel indexes a table)."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(table, dtype=torch.float32))

    def forward(self, x):
        return self.table[x[:, 0, 0, 0].long()]


def _lsm(row):
    m = max(row)
    z = math.log(sum(math.exp(v - m) for v in row)) + m
    return [v - z for v in row]


CLEAN = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
ADV = [[0.0, 1.0, 0.0], [-1.0, 2.0, 0.5]]
Y = [0, 2]


def _setup():
    model = Lookup(CLEAN + ADV)
    x = torch.zeros(2, 1, 2, 2)
    x[:, 0, 0, 0] = torch.tensor([0.0, 1.0])
    x_adv = torch.zeros(2, 1, 2, 2)
    x_adv[:, 0, 0, 0] = torch.tensor([2.0, 3.0])
    return model, x, x_adv, torch.tensor(Y)


def _ce(rows, targets):
    out = 0.0
    for row, t in zip(rows, targets):
        lsm = _lsm(row)
        out += -sum(tk * l for tk, l in zip(t, lsm))
    return out / len(rows)


def _kl(p_rows, q_rows):
    out = 0.0
    for a, b in zip(p_rows, q_rows):
        lp, lq = _lsm(a), _lsm(b)
        out += sum(math.exp(u) * (u - v) for u, v in zip(lp, lq))
    return out / len(p_rows)


HARD = [[1.0 if k == y else 0.0 for k in range(3)] for y in Y]
SOFT = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]


def test_cross_entropy_hard_and_soft():
    logits = torch.tensor(ADV)
    assert cross_entropy(logits, torch.tensor(Y)).item() == pytest.approx(_ce(ADV, HARD), rel=1e-6)
    assert cross_entropy(logits, torch.tensor(SOFT)).item() == pytest.approx(_ce(ADV, SOFT), rel=1e-6)
    # a one-hot soft target equals the hard label
    assert cross_entropy(logits, torch.tensor(HARD)).item() == pytest.approx(_ce(ADV, HARD), rel=1e-6)


@pytest.mark.parametrize("soft", [False, True])
def test_recipe_losses_by_hand(soft):
    model, x, x_adv, y = _setup()
    t = torch.tensor(SOFT) if soft else y
    tt = SOFT if soft else HARD
    r = Recipe(loss="ce")
    assert recipe_loss(r, model, x, x_adv, t).item() == pytest.approx(_ce(ADV, tt), rel=1e-6)
    r = Recipe(loss="tradeoff", tradeoff_alpha=0.3)
    want = 0.7 * _ce(CLEAN, tt) + 0.3 * _ce(ADV, tt)
    assert recipe_loss(r, model, x, x_adv, t).item() == pytest.approx(want, rel=1e-6)
    for variant in ("T", "F"):  # the variants differ in the attack, not in the loss
        r = Recipe(loss="trades", trades_beta=2.5, trades_variant=variant)
        want = _ce(CLEAN, tt) + 2.5 * _kl(CLEAN, ADV)
        got = recipe_loss(r.to_dict(), model, x, x_adv, t)  # a plain dict works too
        assert got.item() == pytest.approx(want, rel=1e-6)
        assert got.dim() == 0 and got.requires_grad


def test_trades_variant_sets_attack_objective():
    # the authors' README: --attack_loss ce is (T), --attack_loss trades (the KL) is (F)
    assert get_preset("strades-t-1step").attack_objective == "ce"
    assert get_preset("strades-f-1step").attack_objective == "kl"
    assert get_preset("fast-ls-l0").attack_objective == "ce"
    assert get_preset("sat-1step").attack_objective == "ce"


def test_kl_objective_logits_give_kl_through_ce():
    model, x, x_adv, y = _setup()
    obj = KLObjective(model, x, y)
    z = obj(x_adv)
    kl = kl_clean_adv(torch.tensor(CLEAN), torch.tensor(ADV), reduction="none")
    ce = torch.nn.functional.cross_entropy(z, y, reduction="none")
    assert torch.allclose(ce, torch.log1p(2 * torch.exp(kl)), atol=1e-6)


def test_soft_label_update_by_hand():
    labels = torch.tensor([0, 2, 1])
    sl = SoftLabels(labels, 3, momentum=0.9, start=1)
    assert torch.equal(sl.targets(torch.tensor([0, 1]), epoch=0), torch.tensor([0, 2]))  # hard before start
    p = torch.tensor([[0.2, 0.5, 0.3]])
    sl.update(torch.tensor([1]), p, epoch=0)  # inactive: no change
    assert torch.equal(sl.table[1], torch.tensor([0.0, 0.0, 1.0]))
    sl.update(torch.tensor([1]), p, epoch=1)
    assert torch.allclose(sl.table[1], torch.tensor([0.02, 0.05, 0.93]))
    sl.update(torch.tensor([1]), p, epoch=2)
    assert torch.allclose(sl.table[1], torch.tensor([0.9 * 0.02 + 0.02, 0.9 * 0.05 + 0.05, 0.9 * 0.93 + 0.03]))
    assert torch.allclose(sl.targets(torch.tensor([1]), 1).sum(1), torch.ones(1))
    assert torch.equal(sl.table[0], torch.tensor([1.0, 0.0, 0.0]))  # others untouched
    st = sl.state_dict()
    sl2 = SoftLabels(labels, 3)
    sl2.load_state_dict(st)
    assert torch.equal(sl2.table, sl.table) and sl2.start == 1


def test_recipe_round_trip_and_settings():
    r = get_preset("fast-ls-l0", eps=20, scale="small")
    assert Recipe.from_dict(r.to_dict()) == r
    r2 = r.with_settings(["soft_labels=false", "trades_beta=3", "train_eps=40", "noise=off"])
    assert (r2.soft_labels, r2.trades_beta, r2.train_eps, r2.attack_name, r2.input_noise) == \
        (False, 3.0, 40.0, "spgd1", False)
    # l0 noise is applied to the input by the trainer: the attack stays, the noise reaches 2 k_train
    n = get_preset("sat-1step").with_settings(["noise=true"])
    assert (n.attack_name, n.input_noise, n.noise_pixels()) == ("spgd1", True, 240)
    assert n.noise_pixels(k_train=10) == 20
    # l2/linf noise is N-FGSM's, inside the attack
    assert get_preset("nfgsm-l2").attack_name == "nfgsm" and not get_preset("nfgsm-l2").input_noise
    # a new attack drops the options it does not take, keeps the rest, unless they are set too
    r3 = get_preset("sat-1step", scale="small").with_settings(["eval_attack=spgd", "monitor_attack=spgd1"])
    assert r3.eval_attack_kwargs == {"steps": 100} and r3.monitor_attack_kwargs == {"steps": 20}
    assert get_preset("sat-1step").with_settings(["eval_attack=rs", 'eval_attack_kwargs={"n_queries": 7}']
                                                 ).eval_attack_kwargs == {"n_queries": 7}
    # the paper's multi-step "+S&N": noise on the input, then the recipe's sPGD steps with early stopping
    sn = get_preset("strades").with_settings(["noise=true", "soft_labels=true", "steps=5"])
    assert (sn.attack_name, sn.input_noise) == ("spgd", True)
    attack = make_attack(sn.attack_name, sn.norm, sn.train_threat.eps, sn.attack_options, steps=sn.steps)
    assert (type(attack).__name__, attack.steps, attack.early_stop, attack.track_best, attack.patience) == \
        ("SparsePGD", 5, True, True, 10)
    with pytest.raises(LandscapeError):
        r.with_settings(["no_such_field=1"])
    with pytest.raises(LandscapeError):
        r.replace(loss="hinge")
    with pytest.raises(LandscapeError):
        get_preset("nfgsm-l2", norm="l0")
    assert get_preset(norm="linf").name == "nfgsm-linf"
    assert get_preset("sat").train_eps == 120.0


def test_sat_starts_at_half_the_epochs_however_soft_labels_are_switched_on():
    # the authors' --sat_epoch 0.5: int(E * 0.5), 0-based
    for epochs, start in ((100, 50), (8, 4), (5, 2), (30, 15), (1, 0)):
        preset = get_preset("fast-ls-l0", eps=20, scale="small").replace(epochs=epochs)
        switched = get_preset("sat-1step", scale="small").with_settings(["soft_labels=true", f"epochs={epochs}"])
        assert preset.sat_start_epoch == switched.sat_start_epoch == start
    assert get_preset("fast-ls-l0", scale="paper").sat_start_epoch == 50
    assert Recipe(epochs=100, sat_start=0).sat_start_epoch == 0  # an explicit value wins
    assert "(soft labels)" in get_preset("fast-ls-l0").describe() and "updated before the loss from epoch 51 of " \
        "100" in get_preset("fast-ls-l0", scale="paper").describe()
    assert "(soft labels)" not in get_preset("sat-1step").describe()
    assert Recipe.from_dict(Recipe(sat_start=None).to_dict()).sat_start is None
    with pytest.raises(LandscapeError):
        Recipe(sat_start=-1)


def test_lr_schedule_per_iteration_at_a_quarter_and_three_quarters():
    # the authors' MultiStepLR stepped per iteration at floor(E*|loader|/4) and floor(3E*|loader|/4)
    r = Recipe(epochs=10, lr=0.05)
    spe = 7  # 70 iterations: milestones at iterations 17 and 52
    lrs = [r.lr_at(it // spe, it % spe, spe) for it in range(70)]
    assert lrs[16] == pytest.approx(0.05) and lrs[17] == pytest.approx(0.005)
    assert lrs[51] == pytest.approx(0.005) and lrs[52] == pytest.approx(0.0005)
    assert r.replace(lr_unit="epoch").lr_at(2, 0, spe) == pytest.approx(0.005)  # round(2.5) = 2
    with pytest.raises(LandscapeError):
        Recipe(lr_unit="fortnight")


def test_lr_schedule_is_a_function_of_epoch():
    r = Recipe(epochs=100, lr=0.05, lr_unit="epoch", milestones=(0.5, 0.75))
    assert [r.lr_at(e) for e in (0, 49, 50, 74, 75, 99)] == pytest.approx([0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005])
