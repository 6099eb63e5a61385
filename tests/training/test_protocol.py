"""The presets are the authors' protocol (``../shared/PAPER_PROTOCOL.md``): one test per preset
asserts its paper-scale values, so that a later change cannot drift silently."""

import pytest
import torch

from landscape.errors import LandscapeError
from landscape.training.losses import loss_from_logits
from landscape.training.monitor import co_detected
from landscape.training.presets import get_preset
from landscape.training.recipe import RECIPE_VERSION, Recipe
from landscape.training.soft_labels import SoftLabels
from landscape.training.trainer import TrainingAttack, make_attack

#: the optimiser and schedule shared by every l0 preset at paper scale (§1.1)
OPTIM = dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=128, epochs=100,
             schedule="step", milestones=(0.25, 0.75), lr_decay=0.1, lr_unit="iteration")
ONE_STEP = dict(norm="l0", eps=20.0, train_eps=120.0, attack="spgd1", steps=1, train_mode="unproj",
                attack_kwargs={"alpha": 1.0, "beta": 1.0, "loss": "ce"}, tradeoff_alpha=0.75, trades_beta=6.0,
                sat_momentum=0.9, sat_weights=True, noise_max=2.0, eval_attack="saa", eval_attack_kwargs={})
MULTI = dict(norm="l0", eps=20.0, train_eps=120.0, attack="spgd", steps=20, train_mode="rand",
             attack_kwargs={"alpha": 0.25, "beta": 0.25, "loss": "ce", "patience": 10, "early_stop": True,
                            "track_best": True}, trades_beta=6.0, sat_momentum=0.9)


def _check(name, **want):
    r = get_preset(name, eps=20, scale="paper")
    got = {k: getattr(r, k) for k in want}
    assert got == want
    assert r.recipe_version == RECIPE_VERSION
    return r


@pytest.mark.parametrize("name, extra", [
    ("fast-ls-l0", dict(loss="trades", trades_variant="T", soft_labels=True, noise=True)),
    ("sat-1step", dict(loss="ce", soft_labels=False, noise=False)),
    ("tradeoff-1step", dict(loss="tradeoff", soft_labels=False, noise=False)),
    ("strades-t-1step", dict(loss="trades", trades_variant="T", soft_labels=False, noise=False)),
    ("strades-f-1step", dict(loss="trades", trades_variant="F", soft_labels=False, noise=False)),
])
def test_one_step_presets_are_the_authors(name, extra):
    r = _check(name, **OPTIM, **ONE_STEP, **extra)
    assert r.sat_start_epoch == 50                       # --sat_epoch 0.5
    assert r.noise_pixels() == 240                       # S_2k with k_train = 120
    assert r.attack_objective == ("kl" if extra.get("trades_variant") == "F" else "ce")
    attack = make_attack(r.attack_name, r.norm, r.train_threat.eps, r.attack_options, steps=r.steps)
    assert (attack.alpha, attack.beta, attack.early_stop, attack.track_best, attack.projected, attack.loss) == \
        (1.0, 1.0, False, False, False, "ce")


@pytest.mark.parametrize("name, loss", [("sat", "ce"), ("strades", "trades")])
def test_multi_step_presets_are_the_authors(name, loss):
    r = _check(name, **OPTIM, **MULTI, loss=loss)
    sn = r.with_settings(["soft_labels=true", "noise=true"])  # "+S&N": the same attack, early stop kept
    assert (sn.attack_name, sn.input_noise, sn.noise_pixels(), sn.sat_start_epoch) == ("spgd", True, 240, 50)
    both = TrainingAttack(sn, sn.train_threat.eps)
    assert sorted(a.projected for a in both.attacks) == [False, True]
    assert all(a.early_stop and a.track_best and a.patience == 10 and a.steps == 20 for a in both.attacks)
    torch.manual_seed(0)
    picks = {both.pick().projected for _ in range(40)}     # a fair coin per batch
    assert picks == {False, True}


def test_small_scale_is_the_same_recipe_by_stated_rules():
    for name in ("fast-ls-l0", "sat-1step", "strades-f-1step", "sat", "strades"):
        paper, small = get_preset(name, eps=20, scale="paper"), get_preset(name, eps=20, scale="small")
        assert small.train_eps == 6 * small.eps == paper.train_eps
        assert small.milestones == paper.milestones == (0.25, 0.75)
        assert small.sat_start_epoch == small.epochs // 2
        same = ("attack_kwargs", "loss", "trades_variant", "tradeoff_alpha", "trades_beta", "sat_weights",
                "noise_max", "train_mode", "lr_unit", "lr", "momentum", "weight_decay", "batch_size")
        assert {k: getattr(small, k) for k in same} == {k: getattr(paper, k) for k in same}


def test_sat_step_by_hand_on_a_tiny_linear_model():
    """One step of Alg. 1/3: targets updated before the loss from the clean prediction, weights
    w_i = max_j t_ij, loss = Σ w_i CE_i / Σ w_i, checked against a hand computation."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5]]))
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    x_adv = torch.tensor([[0.5, 2.0], [1.0, -1.0]])
    y = torch.tensor([1, 2])
    sl = SoftLabels(y, 3, momentum=0.9, start=0)
    idx = torch.tensor([0, 1])
    recipe = Recipe(loss="ce", soft_labels=True)
    # the trainer's order: p from the clean input, update, targets and weights, then the loss
    p = torch.softmax(lin(x).detach(), 1)
    sl.update(idx, p, epoch=0)
    t = sl.targets(idx, epoch=0)
    w = t.max(1).values
    loss = loss_from_logits(recipe, None, lin(x_adv), t, w)
    # by hand
    zc = [[1.0, 2.0, -0.5], [0.0, -1.0, 0.5]]
    za = [[0.5, 2.0, -0.75], [1.0, -1.0, 1.0]]
    import math

    def softmax(z):
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]
    hard = [[0, 1, 0], [0, 0, 1]]
    tt = [[0.9 * h + 0.1 * q for h, q in zip(hard[i], softmax(zc[i]))] for i in range(2)]
    ww = [max(r) for r in tt]
    ce = [-sum(tt[i][j] * math.log(softmax(za[i])[j]) for j in range(3)) for i in range(2)]
    want = (ww[0] * ce[0] + ww[1] * ce[1]) / (ww[0] + ww[1])
    assert torch.allclose(t, torch.tensor(tt), atol=1e-6)
    assert torch.allclose(w, torch.tensor(ww), atol=1e-6)
    assert loss.item() == pytest.approx(want, rel=1e-6)
    # without weights it is the plain mean; trades weights the CE term, not the KL (unless asked)
    assert loss_from_logits(recipe, None, lin(x_adv), t, None).item() == pytest.approx(sum(ce) / 2, rel=1e-6)
    tr = Recipe(loss="trades", trades_beta=6.0)
    lc, la = lin(x), lin(x_adv)
    kl = torch.nn.functional.kl_div(torch.log_softmax(la, 1), torch.softmax(lc, 1), reduction="none").sum(1)
    cec = -(t * torch.log_softmax(lc, 1)).sum(1)
    want_t = (w * cec).sum() / w.sum() + 6.0 * kl.mean()
    assert loss_from_logits(tr, lc, la, t, w).item() == pytest.approx(want_t.item(), rel=1e-6)
    want_tw = (w * cec).sum() / w.sum() + 6.0 * (w * kl).sum() / w.sum()
    assert loss_from_logits(tr.replace(sat_weighted_kl=True), lc, la, t, w).item() == \
        pytest.approx(want_tw.item(), rel=1e-6)


def test_co_flag_decides_as_the_paper():
    assert co_detected(0.725, 0.0)              # collapsed: sAA near zero, the training attack high
    assert co_detected(0.9, 0.03)
    assert not co_detected(0.70, 0.40)          # keeps 40% under sAA: not CO
    assert not co_detected(0.70, 0.235)         # a weak model is not a collapsed one
    assert not co_detected(0.10, 0.0)           # both low: a model at chance, not CO
    assert get_preset("sat-1step").co_floor == 0.05


def test_version_one_recipes_load_and_say_so():
    v1 = {k: v for k, v in Recipe().to_dict().items()
          if k not in ("recipe_version", "sat_weights", "sat_weighted_kl", "noise_max", "lr_unit", "train_mode",
                       "co_floor")}
    v1.update(trades_variant="F", loss="trades", noise=True, attack="spgd1", milestones=[0.6, 0.8], sat_start=None,
              epochs=8, soft_labels=True)
    r = Recipe.from_dict(v1)
    assert (r.recipe_version, r.trades_variant, r.sat_weights, r.lr_unit, r.attack_name, r.sat_start_epoch) == \
        (1, "T", False, "epoch", "nspgd1", 1)
    assert "recipe version 1" in r.describe()
    with pytest.raises(LandscapeError):
        Recipe(recipe_version=7)


def test_a_version_one_checkpoint_loads_says_its_version_and_is_not_resumed(tmp_path):
    from landscape.checkpoint import Checkpoint
    from landscape.training.trainer import train
    from tests.conftest import run_cli

    r = get_preset("sat-1step", eps=5, scale="small").with_settings(
        ["monitor_examples=4", 'monitor_attack_kwargs={"steps": 1, "n_queries": 2}', "eval_attack=spgd",
         'eval_attack_kwargs={"steps": 1}'])
    out = tmp_path / "run"
    train(r.replace(batch_size=16, epochs=1), out=out, device="cpu", model_kwargs={"width": 4, "hidden": 8},
          max_train_examples=16, eval_examples=4, progress=False, log=lambda m: None)
    ck_path = out / "checkpoint.pt"
    assert "recipe version 2)" in run_cli(["info", str(ck_path)]).output
    # the same checkpoint as version 1 wrote it: no recipe_version and none of the new fields
    ck = Checkpoint.load(ck_path)
    old = {k: v for k, v in ck.recipe.items() if k not in ("recipe_version", "sat_weights", "sat_weighted_kl",
                                                           "noise_max", "lr_unit", "train_mode", "co_floor")}
    ck.data["recipe"] = dict(old, trades_variant="F")
    ck.save(ck_path)
    res = run_cli(["info", str(ck_path)])
    assert res.exit_code == 0 and "recipe version 1: trained before the protocol fixes" in res.output
    assert Checkpoint.load(ck_path).model() is not None            # still loads and builds its model
    before = ck_path.read_bytes()
    with pytest.raises(LandscapeError, match="recipe version 1"):
        train(None, out=out, resume=True, device="cpu", max_train_examples=16, eval_examples=4, progress=False,
              log=lambda m: None)
    assert ck_path.read_bytes() == before
