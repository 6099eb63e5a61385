"""evaluate / robust_accuracy: stage rows, validity gate, monotonicity in budget and steps."""

import pytest
import torch

from landscape.attacks import Attack, SparseAutoAttack, build_attack
from landscape.errors import LandscapeError
from landscape.evaluation import evaluate, robust_accuracy
from tests.interrupting import interrupting, recording

from .helpers import bn_model, linear_model


@pytest.fixture(scope="module")
def fixed():
    model = linear_model((3, 5, 5), classes=3, seed=0, scale=3.0)
    x = torch.rand(60, 3, 5, 5, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:5] = (y[:5] + 1) % 3                     # a few clean mistakes
    return model, x, y


def test_cascade_rows_and_meta(fixed):
    model, x, y = fixed
    saa = SparseAutoAttack(eps=1, steps=20, n_queries=50, seed=0)
    df, meta = evaluate(model, x, y, saa, batch_size=25, save_adv=True)
    assert df["stage"].tolist() == ["clean", "spgd", "spgd-projected", "rs", "worst-case"]
    acc = df["accuracy"].tolist()
    assert acc[0] == pytest.approx(55 / 60)
    assert all(a >= b for a, b in zip(acc, acc[1:]))             # survivors only shrink
    assert acc[-1] == acc[-2] == meta["robust_accuracy"]
    assert (df["n"] == 60).all() and meta["validity_checked"]
    adv = meta["adv"]
    assert adv["x_adv"].shape == x.shape
    with torch.no_grad():
        still = model(adv["x_adv"]).argmax(1) == y
    assert torch.equal(still & adv["clean_correct"], adv["robust"])
    assert int(adv["robust"].sum()) == df["correct"].iloc[-1]


def test_single_attack_rows(fixed):
    model, x, y = fixed
    df, meta = evaluate(model, x, y, build_attack("pgd", "linf", 0.05, steps=5), batch_size=64)
    assert df["stage"].tolist() == ["clean", "pgd", "worst-case"]
    assert df["accuracy"].iloc[1] == df["accuracy"].iloc[2] <= df["accuracy"].iloc[0]


class Cheat(Attack):
    """An attack that returns a point outside its threat model."""

    name = "cheat"

    def perturb(self, model, x, y):
        return (x + 0.5).clamp(0, 1)


def test_invalid_adversarial_examples_are_never_counted(fixed):
    model, x, y = fixed
    with pytest.raises(LandscapeError, match="outside"):
        evaluate(model, x, y, Cheat(0.01, "linf"))


@pytest.mark.parametrize("name,norm,budgets", [
    ("spgd", "l0", [1, 2, 4]),
    ("pgd", "linf", [0.01, 0.03, 0.1]),
    ("pgd", "l2", [0.1, 0.3, 1.0]),
    ("apgd", "l1", [0.3, 1.0, 3.0]),
])
def test_robust_accuracy_does_not_increase_with_eps(fixed, name, norm, budgets):
    model, x, y = fixed
    accs = [robust_accuracy(model, x, y, build_attack(name, norm, e, steps=30, seed=0)) for e in budgets]
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] < accs[0]                                     # the budgets matter


def test_robust_accuracy_does_not_increase_with_steps():
    model = bn_model((1, 8, 8), seed=3).eval()
    x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = model(x).argmax(1)
    accs = [robust_accuracy(model, x, y, build_attack("spgd", "l0", 1, steps=s, seed=0)) for s in (2, 10, 50)]
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] < 1.0


def test_evaluate_accepts_dataset_and_checks_budget(mini_data):
    from landscape.models import build_model
    _, test = mini_data
    sub = test.subset(16, seed=0)
    torch.manual_seed(0)
    model = build_model("small-cnn", in_channels=1, num_classes=10, image_size=28, width=4, hidden=8).eval()
    df, _ = evaluate(model, sub, None, build_attack("fgsm", "linf", 8 / 255), batch_size=8)
    assert df["n"].iloc[0] == 16
    with pytest.raises(LandscapeError, match="larger than the image"):
        evaluate(model, sub, None, build_attack("spgd", "l0", 1000, steps=2))


def _interrupt_after(monkeypatch, n_batches: int):
    """Make evaluate's batch loop stop with Ctrl-C once ``n_batches`` batches are finished."""
    import landscape.evaluation as ev
    monkeypatch.setattr(ev, "attack_batches", interrupting(ev.attack_batches, batch=n_batches)[0])


@pytest.mark.parametrize("which", ["saa seeded", "spgd on torch's generator"])
def test_an_interrupted_evaluation_resumes_to_the_uninterrupted_result(fixed, tmp_path, monkeypatch, which):
    """Stopped after two of three batches and run again with ``partial``: the same table (seconds aside)
    and the same adversarial examples as one uninterrupted run, the first two batches not recomputed.
    An attack without a seed draws from torch's generator, which the resumed run restores."""
    model, x, y = fixed
    make = ((lambda: SparseAutoAttack(eps=1, steps=10, n_queries=20, seed=0)) if which.startswith("saa")
            else (lambda: build_attack("spgd", "l0", 1, steps=10)))
    torch.manual_seed(7)
    whole, wmeta = evaluate(model, x, y, make(), batch_size=25, save_adv=True)
    folder = tmp_path / ".ev.partial"
    torch.manual_seed(7)
    with monkeypatch.context() as m:
        _interrupt_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            evaluate(model, x, y, make(), batch_size=25, save_adv=True, partial=folder)
    assert sorted(p.name for p in folder.iterdir()) == ["batch_000000000.pt", "batch_000000025.pt", "key.json"]
    torch.manual_seed(123)                      # whatever the generator holds now: the saved state is restored
    calls = []
    atk = make()
    real_run = atk.run if hasattr(atk, "run") else None
    if real_run is not None:
        atk.run = lambda mdl, xb, yb: calls.append(len(xb)) or real_run(mdl, xb, yb)
    else:
        real_perturb = atk.perturb
        atk.perturb = lambda mdl, xb, yb: calls.append(len(xb)) or real_perturb(mdl, xb, yb)
    again, ameta = evaluate(model, x, y, atk, batch_size=25, save_adv=True, partial=folder)
    assert calls == [10] and ameta["resumed_examples"] == 50       # only the last batch was attacked
    cols = ["stage", "accuracy", "correct", "n"]
    assert again[cols].equals(whole[cols])
    assert torch.equal(ameta["adv"]["x_adv"], wmeta["adv"]["x_adv"])
    assert torch.equal(ameta["adv"]["robust"], wmeta["adv"]["robust"])
    assert not folder.exists()                  # removed once complete


def test_partial_results_of_another_evaluation_are_not_mixed_in(fixed, tmp_path, monkeypatch, capsys):
    model, x, y = fixed
    folder = tmp_path / ".ev.partial"
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(KeyboardInterrupt):
            evaluate(model, x, y, build_attack("spgd", "l0", 1, steps=10, seed=0), batch_size=25, partial=folder)
    (folder / "notes.txt").write_text("not landscape's")   # a file the store did not make: never deleted
    df, meta = evaluate(model, x, y, build_attack("spgd", "l0", 2, steps=10, seed=0), batch_size=25, partial=folder)
    assert meta["resumed_examples"] == 0 and "different evaluation" in capsys.readouterr().err
    ref, _ = evaluate(model, x, y, build_attack("spgd", "l0", 2, steps=10, seed=0), batch_size=25)
    assert df["correct"].tolist() == ref["correct"].tolist()
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]  # the store's own files are gone


def test_run_attack_resumes_from_its_partial_folder(fixed, tmp_path, monkeypatch):
    """run_attack(partial=...) stopped after one of three batches and called again: the same adversarial
    examples and logits as one uninterrupted call, only the rest attacked; torch's generator (which an
    attack without a seed draws from) is restored from the saved state."""
    import landscape.attacks.base as base
    from landscape.attacks.base import run_attack
    model, x, y = fixed
    whole, wl = run_attack(build_attack("spgd", "l0", 1, steps=10), model, x, y, 25, seed=3, with_logits=True)
    folder = tmp_path / "p"
    real = base.attack_batches
    with monkeypatch.context() as m:
        m.setattr(base, "attack_batches", interrupting(real, batch=1)[0])
        with pytest.raises(KeyboardInterrupt):
            run_attack(build_attack("spgd", "l0", 1, steps=10), model, x, y, 25, seed=3, with_logits=True,
                       partial=folder)
    assert len(list(folder.glob("batch_*.pt"))) == 1
    fake, starts = recording(real)
    with monkeypatch.context() as m:
        m.setattr(base, "attack_batches", fake)
        again, al = run_attack(build_attack("spgd", "l0", 1, steps=10), model, x, y, 25, seed=3, with_logits=True,
                               partial=folder)
    assert starts == [25] and torch.equal(again, whole) and torch.equal(al, wl) and not folder.exists()
