"""Training-budget warm-up: the 1-step attack's budget ramps linearly over `eps_warmup` epochs."""

import pytest
import torch

from landscape.errors import LandscapeError
from landscape.training.recipe import Recipe
from landscape.training.trainer import warmup_eps, warmup_fraction


def test_warmup_schedule_and_budgets():
    r = Recipe(name="x", norm="linf", eps=8 / 255, eps_warmup=2)
    fr = [warmup_fraction(r, e, s, 10) for e in range(3) for s in (0, 9)]
    assert fr == pytest.approx([0.05, 0.5, 0.55, 1.0, 1.0, 1.0])
    assert warmup_eps(r, 0.5) == pytest.approx(4 / 255)
    r0 = Recipe(name="x", norm="l0", eps=20, eps_warmup=2)
    assert warmup_eps(r0, 0.01) == 1.0 and warmup_eps(r0, 0.5) == 10.0  # whole pixels, at least one
    assert warmup_fraction(Recipe(name="x", norm="l0", eps=20), 0, 0, 10) == 1.0  # off by default
    with pytest.raises(LandscapeError):
        Recipe(name="x", norm="l0", eps=20, eps_warmup=-1)
    assert Recipe.from_dict(r.to_dict()).eps_warmup == 2


def test_training_uses_the_ramped_budget(monkeypatch, tmp_path):
    """During the warm-up every training perturbation stays inside the ramped budget."""
    from landscape.training import trainer
    seen = []
    real = trainer.make_attack

    def spy(name, norm, eps, kwargs=None, **kw):
        atk = real(name, norm, eps, kwargs, **kw)
        if name == "fgsm":
            seen.append(eps)
        return atk

    from landscape.training.presets import get_preset
    monkeypatch.setattr(trainer, "make_attack", spy)
    recipe = get_preset("nfgsm-linf", "linf", "8/255", scale="small").with_settings(
        ["noise=false", "eps_warmup=2", "batch_size=64", "epochs=1"])
    trainer.train(recipe, out=tmp_path / "run", seed=0, max_train_examples=256, eval_examples=8, progress=False,
                  device="cpu")
    ramp = seen[2:]  # the first are the training and monitor attacks built once at full budget
    assert len(ramp) == 4 and ramp == sorted(ramp) and max(ramp) <= 8 / 255 / 2 + 1e-9
    assert ramp[0] == pytest.approx(8 / 255 / 8)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["recipe"]["eps_warmup"] == 2
