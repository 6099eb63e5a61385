"""Every attack: output in [0,1] and inside its threat model, model mode restored, no param grads."""

import pytest
import torch

from landscape.attacks import ATTACKS, NFGSM, NoisySparsePGD, build_attack, default_attack, training_attack
from landscape.errors import LandscapeError
from landscape.threat import ThreatModel

from .helpers import bn_model

FAST = {"spgd": {"steps": 8}, "spgd-projected": {"steps": 8}, "rs": {"n_queries": 30},
        "saa": {"steps": 5, "n_queries": 20}, "pgd": {"steps": 4, "restarts": 2}, "apgd": {"steps": 8}, "nspgd": {"steps": 3}}
EPS = {"l0": 3, "l1": 2.0, "l2": 0.7, "linf": 0.1}
CASES = [(name, norm) for name, (_, norms, _) in ATTACKS.items() for norm in norms]


@pytest.mark.parametrize("name,norm", CASES)
def test_output_in_threat_model_box_and_mode_restored(name, norm):
    torch.manual_seed(0)
    model = bn_model((3, 6, 6)).train()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 3, 6, 6, generator=g)
    x[0] = 0.0                                   # the box edges
    x[1] = 1.0
    y = torch.randint(0, 3, (5,), generator=g)
    eps = 1 if name == "exact-l0" else EPS[norm]   # the exhaustive attack searches single pixels
    seed = {} if name == "exact-l0" else {"seed": 0}  # ... and draws nothing at random
    attack = build_attack(name, norm, eps, **seed, **FAST.get(name, {}))
    x_adv = attack(model, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert ((x_adv >= 0) & (x_adv <= 1)).all()
    assert not x_adv.requires_grad
    tm = ThreatModel(norm, eps)
    if name in ("nfgsm", "nspgd1", "nspgd"):   # noisy training attacks leave the ball on purpose (documented)
        big = tm.eps * 3   # N-FGSM: 2ε noise + an ε step; l0: up to 2k noise pixels + k attack pixels
        assert ThreatModel(norm, big).is_valid(x, x_adv).all()
    else:
        assert tm.is_valid(x, x_adv).all()
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    # attacks run in eval mode: BatchNorm running statistics untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, buffers[k]), k


@pytest.mark.parametrize("cls,norm,eps", [(NFGSM, "linf", 0.1), (NFGSM, "l2", 0.7), (NoisySparsePGD, "l0", 3)])
def test_noisy_attacks_project_flag_keeps_threat_model(cls, norm, eps):
    model = bn_model((3, 6, 6)).eval()
    x = torch.rand(6, 3, 6, 6)
    y = torch.randint(0, 3, (6,))
    tm = ThreatModel(norm, eps)
    assert not tm.is_valid(x, cls(eps, norm=norm, seed=0)(model, x, y)).all()   # leaves the ball...
    assert tm.is_valid(x, cls(eps, norm=norm, within_budget=True, seed=0)(model, x, y)).all()  # ...unless projected


def test_eval_mode_restored_after_attack_in_train_mode():
    model = bn_model().eval()
    build_attack("spgd1", "l0", 2, mode="train")(model, torch.rand(4, 1, 6, 6), torch.zeros(4, dtype=torch.long))
    assert not any(m.training for m in model.modules())


def test_mode_restored_when_attack_raises():
    model = bn_model().train()
    with pytest.raises(LandscapeError):
        build_attack("spgd", "l0", 100)(model, torch.rand(2, 1, 6, 6), torch.zeros(2, dtype=torch.long))
    assert model.training


def test_registry_errors_and_helpers():
    with pytest.raises(LandscapeError, match="l0"):
        build_attack("pgd", "l0", 3)
    with pytest.raises(LandscapeError, match="unknown attack"):
        build_attack("nope", "l0", 3)
    with pytest.raises(LandscapeError):
        build_attack("fgsm", "linf", 0.1, steps=3)
    assert default_attack("l0", 5).name == "saa"
    assert default_attack("linf", 0.1).name == "pgd"
    assert default_attack("l1", 2).name == "apgd"
    assert training_attack("l0", 5).steps == 1
    assert training_attack("l0", 5, noise=True).name == "nspgd1"
    assert training_attack("linf", 0.1, noise=True).name == "nfgsm"
    assert training_attack("l1", 2).name == "onestep-l1"


def test_spgd1_is_cheap_one_gradient():
    """The fast-training sPGD makes exactly one forward+backward pass (random start, one step)."""
    calls = []
    model = bn_model().eval()
    model.register_forward_hook(lambda *a: calls.append(1))
    x, y = torch.rand(4, 1, 6, 6), torch.zeros(4, dtype=torch.long)
    x_adv = build_attack("spgd1", "l0", 3, seed=0)(model, x, y)
    assert len(calls) == 1
    assert (ThreatModel("l0", 3).norm_of(x_adv - x) > 0).all()      # a perturbation, even if not fooled


def test_seed_makes_attacks_reproducible():
    model = bn_model().eval()
    x, y = torch.rand(4, 1, 6, 6), torch.zeros(4, dtype=torch.long)
    for name in ("spgd", "rs"):
        a = build_attack(name, "l0", 2, seed=5, steps=10)
        assert torch.equal(a(model, x, y), a(model, x, y))


def test_accepted_options_drop_what_a_default_attack_does_not_take():
    """One budget applied to each norm's default attack: PGD/APGD have no query budget."""
    from landscape.attacks import accepted_options, attack_for
    assert accepted_options(attack_for("l1", "strong").name, {"steps": 5, "n_queries": 9}) == {"steps": 5}
    assert accepted_options(attack_for("l0", "strong").name, {"steps": 5, "n_queries": 9, "seed": None}) == {"steps": 5, "n_queries": 9}
    assert accepted_options("rs", {"steps": 7}) == {"steps": 7}  # translated to n_queries by build_attack
    assert build_attack("rs", "l0", 3, steps=7).n_queries == 7
