"""Attack specifications (landscape.attacks.spec): one frozen name + keyword arguments, one role table."""

import dataclasses
import json

import pytest
import torch

from landscape.attacks import ATTACKS, NFGSM, AttackSpec, NoisySparsePGD, SparseAutoAttack, attack_for
from landscape.attacks.spec import EVALUATION_ATTACKS, NOISY_ATTACKS, ROLE_TABLE, ROLES, accepted_arguments
from landscape.errors import LandscapeError
from landscape.threat import NORMS, ThreatModel
from landscape.training.presets import PRESETS, get_preset
from landscape.training.recipe import Recipe

EPS = {"l0": 3, "l1": 2.0, "l2": 0.5, "linf": 8 / 255}


def test_round_trip_through_a_dict_and_json():
    spec = AttackSpec("saa", {"steps": 100, "n_queries": 300})
    d = spec.to_dict()
    assert d == {"name": "saa", "kwargs": {"n_queries": 300, "steps": 100}}
    again = AttackSpec.from_dict(json.loads(json.dumps(d)))
    assert again == spec and hash(again) == hash(spec)
    assert AttackSpec.from_dict("spgd") == AttackSpec("spgd")
    # keyword order, None values and spelling do not make two specs differ
    assert AttackSpec(" SAA ", n_queries=300, steps=100, seed=None) == spec
    assert str(spec) == "saa(n_queries=300, steps=100)" and str(AttackSpec("pgd")) == "pgd"
    for bad in ({"kwargs": {}}, {"name": "spgd", "extra": 1}, {"name": "spgd", "kwargs": [1]}, 3):
        with pytest.raises(LandscapeError):
            AttackSpec.from_dict(bad)


def test_spec_is_frozen_and_with_returns_a_new_one():
    spec = AttackSpec("spgd", steps=100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "pgd"
    changed = spec.with_(steps=5, alpha=0.5)
    assert changed.options == {"alpha": 0.5, "steps": 5} and spec.options == {"steps": 100}
    assert spec.with_(steps=None) == spec                      # None leaves an argument as it is
    assert spec.with_defaults(steps=7, loss="ce").options == {"loss": "ce", "steps": 100}
    # one budget applied to whatever attack a role gives: PGD has no query budget
    assert AttackSpec("pgd").with_accepted(steps=3, n_queries=9).options == {"steps": 3}


def test_unknown_keyword_is_one_clear_error_naming_the_attack_and_what_it_takes():
    with pytest.raises(LandscapeError) as e:
        AttackSpec("pgd", n_queries=3)
    msg = str(e.value)
    assert msg.startswith("attack pgd does not take n_queries; it takes ")
    listed = msg.split("it takes ")[1].split(", ")
    assert listed == list(accepted_arguments("pgd")) and "steps" in listed and "eps" not in listed
    with pytest.raises(LandscapeError, match="attack spgd1 does not take bogus"):
        AttackSpec("spgd1", {"bogus": 1})
    with pytest.raises(LandscapeError, match="unknown attack"):
        AttackSpec("nope")
    # the same check guards a recipe: an error when the recipe is made, naming its field
    with pytest.raises(LandscapeError, match="eval_attack: attack saa does not take restarts"):
        get_preset("fast-ls-l0").with_settings(['eval_attack_kwargs={"restarts": 2}'])
    with pytest.raises(LandscapeError, match="attack: unknown attack"):
        Recipe(attack="nope")


def test_aliases_and_earlier_keyword_names_are_translated():
    assert AttackSpec("rs", steps=7).options == {"n_queries": 7}
    # the noisy attacks' "project the result back" flag was called `project` before it was
    # renamed `within_budget` (beside sPGD's `projected` gradient): stored recipes still load
    assert AttackSpec("nspgd1", {"project": True}).options == {"within_budget": True}
    assert AttackSpec("nfgsm", project=False).options == {"within_budget": False}
    old = get_preset("fast-ls-l0").to_dict()
    old.update(attack="nspgd1", attack_kwargs={"project": True, "projected": True, "alpha": 1.0})
    r = Recipe.from_dict(old)
    assert r.attack_kwargs == {"alpha": 1.0, "projected": True, "within_budget": True}
    a = r.attack_spec.build(r.train_threat)
    assert isinstance(a, NoisySparsePGD) and a.within_budget and a._spgd.projected


@pytest.mark.parametrize("norm", NORMS)
def test_every_role_of_every_norm_builds(norm):
    threat = ThreatModel(norm, EPS[norm])
    assert set(ROLE_TABLE[norm]) == set(ROLES)
    for role in ROLES:
        spec = attack_for(norm, role)
        assert isinstance(spec, AttackSpec) and norm in spec.norms
        attack = spec.build(threat)
        assert attack.threat == threat
        for k, v in spec.kwargs:                # the spec's arguments reach the attack
            assert getattr(attack, k) == v, (norm, role, k)
        assert (spec.name in NOISY_ATTACKS) == (role == "noisy-train" and norm != "l1")
    assert attack_for(norm, "strong").build(threat).name == {"l0": "saa", "l1": "apgd"}.get(norm, "pgd")
    with pytest.raises(LandscapeError, match="unknown attack role"):
        attack_for(norm, "fastest")


def test_build_checks_the_norm_and_takes_a_norm_and_eps():
    assert isinstance(AttackSpec("saa", steps=2).build("l0", 4), SparseAutoAttack)
    with pytest.raises(LandscapeError, match="attack pgd is for linf/l2 perturbations, not l0"):
        AttackSpec("pgd").build(ThreatModel("l0", 3))


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_holds_its_attacks_as_specs(name):
    for scale in ("paper", "small"):
        r = get_preset(name, scale=scale)
        for spec in (r.attack_spec, r.eval_spec, r.monitor_spec):
            assert isinstance(spec, AttackSpec)
        assert r.eval_spec == attack_for(r.norm, "strong" if scale == "paper" else "reduced")
        assert r.monitor_spec == attack_for(r.norm, "monitor")
        assert r.attack_spec.name == r.attack_name
        assert r.attack_spec.build(r.train_threat).threat == r.train_threat
        # the stored fields are the specs' plain values, so a stored recipe reads back the same
        assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))).eval_spec == r.eval_spec
        assert str(r.eval_spec) in r.describe()


def test_trainer_make_attack_maps_its_flags_onto_the_spec():
    from landscape.training.trainer import make_attack
    a = make_attack("nfgsm", "linf", 0.1, {}, steps=1, project=True, projected=True)
    assert isinstance(a, NFGSM) and a.within_budget
    b = make_attack("spgd", "l0", 3, {"steps": 4}, steps=9, projected=True)
    assert b.steps == 4 and b.projected                   # the kwargs' steps win
    with pytest.raises(LandscapeError, match="fixed number of steps"):
        make_attack("fgsm", "linf", 0.1, steps=3)


def test_cli_eval_offers_exactly_the_attacks_that_stay_in_the_threat_model():
    from analysis_cli.eval import ATTACK_CHOICES
    assert set(ATTACK_CHOICES) == set(EVALUATION_ATTACKS) == set(ATTACKS) - set(NOISY_ATTACKS)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.rand(4, 3, 2, 2), torch.zeros(4, dtype=torch.long)
    for norm in ("l2", "linf"):
        tm = ThreatModel(norm, 0.1)
        assert tm.is_valid(x, attack_for(norm, "train").build(tm)(model, x, y)).all()


def test_a_recipe_checks_its_training_arguments_against_the_attack_that_runs():
    # noise makes FGSM N-FGSM: N-FGSM's noise size is a valid argument, FGSM's random start is not
    r = get_preset("nfgsm-l2").with_settings(['attack_kwargs={"noise": 1.5}'])
    assert r.attack_spec == AttackSpec("nfgsm", noise=1.5) and r.attack_spec.build(r.threat).noise == 1.5
    with pytest.raises(LandscapeError, match="attack: attack nfgsm does not take random_start"):
        get_preset("nfgsm-l2").with_settings(['attack_kwargs={"random_start": true}'])
    assert "nfgsm(noise=1.5) at l2(eps=0.5)" in r.describe()


def test_a_recipe_refuses_an_attack_of_another_norm_when_it_is_made():
    from landscape.errors import LandscapeError
    from landscape.training.recipe import Recipe
    with pytest.raises(LandscapeError, match="attack fgsm is for .* perturbations, not l0"):
        Recipe(name="x", norm="l0", eps=20, attack="fgsm")
    with pytest.raises(LandscapeError, match="eval_attack: attack apgd"):
        Recipe(name="x", norm="l0", eps=20, eval_attack="apgd")
    assert Recipe(name="x", norm="l0", eps=20, attack="spgd1").attack == "spgd1"


def test_a_recipe_of_another_norm_that_names_no_attack_gets_its_norms_attacks():
    from landscape.attacks.spec import attack_for
    from landscape.training.recipe import Recipe
    r = Recipe(name="x", norm="linf", eps=8 / 255)
    assert r.attack == attack_for("linf", "train").name and r.eval_attack == attack_for("linf", "strong").name
    assert r.monitor_attack == attack_for("linf", "monitor").name
    assert Recipe.from_dict(r.to_dict()) == r
