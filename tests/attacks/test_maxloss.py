"""Loss-keeping attacks: the exact k=1 l0 attack, MaxLoss and the tiled sPGD used by batched surfaces."""

import itertools

import torch
import torch.nn.functional as F

from landscape.attacks import ExactL0K1, MaxLoss, SparsePGD, StrongMaxLoss, TiledSparsePGD, build_attack
from landscape.threat import ThreatModel

from .helpers import bn_model, linear_model


def brute_force_k1(model, x, y, values):
    """Per example, the highest cross-entropy over every pixel set to every point of ``values``^C."""
    n, c, h, w = x.shape
    best = F.cross_entropy(model(x), y, reduction="none")
    with torch.no_grad():
        for i in range(h):
            for j in range(w):
                for v in itertools.product(values, repeat=c):
                    xa = x.clone()
                    xa[:, :, i, j] = torch.tensor(v)
                    best = torch.maximum(best, F.cross_entropy(model(xa), y, reduction="none"))
    return best


def test_exact_k1_finds_the_true_maximum_on_a_tiny_model():
    """Cross-entropy of a linear model is convex in one pixel's values: the maximum over a fine
    grid of values is reached at a corner, which the exhaustive attack finds."""
    model = linear_model((2, 4, 4), classes=3, seed=3, scale=3.0)
    x = torch.rand(12, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (12,), generator=torch.Generator().manual_seed(1))
    xa = ExactL0K1()(model, x, y)
    assert ThreatModel("l0", 1).is_valid(x, xa).all()
    with torch.no_grad():
        got = F.cross_entropy(model(xa), y, reduction="none")
        truth = brute_force_k1(model, x, y, [i / 10 for i in range(11)])
    assert torch.allclose(got, truth, atol=1e-5), (got - truth).abs().max()
    # a multi-step sPGD at k=1 does not exceed it
    with torch.no_grad():
        spgd = F.cross_entropy(model(SparsePGD(1, 50, early_stop=False, loss="ce", seed=0)(model, x, y)), y, reduction="none")
    assert (spgd <= got + 1e-5).all()


def test_maxloss_keeps_the_highest_loss_of_its_stages_and_the_clean_point():
    model = bn_model((1, 6, 6), classes=3, seed=2).eval()
    x = torch.rand(20, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(5))
    a = SparsePGD(3, 5, early_stop=False, loss="ce", seed=0)
    b = SparsePGD(3, 5, projected=True, early_stop=False, loss="ce", seed=1)
    xm = MaxLoss([a, b])(model, x, y)
    with torch.no_grad():
        ce = lambda z: F.cross_entropy(model(z), y, reduction="none")  # noqa: E731
        lm, la, lb, l0 = ce(xm), ce(a(model, x, y)), ce(b(model, x, y)), ce(x)
    assert ThreatModel("l0", 3).is_valid(x, xm).all()
    assert (lm >= torch.maximum(torch.maximum(la, lb), l0) - 1e-6).all()


def test_strong_maxloss_per_norm_is_registered_and_valid():
    model = bn_model((1, 6, 6), classes=3, seed=2).eval()
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(5))
    for norm, eps in (("l0", 1), ("l0", 2), ("l1", 1.0), ("l2", 0.5), ("linf", 0.05)):
        atk = build_attack("maxloss", norm, eps, steps=3, n_queries=4, seed=0)
        assert isinstance(atk, StrongMaxLoss)
        xa = atk(model, x, y)
        assert ThreatModel(norm, eps).is_valid(x, xa).all(), norm
    assert isinstance(build_attack("maxloss", "l0", 1).stages[0], ExactL0K1)


def test_tiled_spgd_gives_each_copy_the_single_batch_result():
    model = bn_model((1, 6, 6), classes=3, seed=2).eval()
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, 3, (5,), generator=torch.Generator().manual_seed(5))
    single = TiledSparsePGD(2, 6, seed=7)(model, x, y)
    tiled = TiledSparsePGD(2, 6, seed=7, tile=3)(model, x.repeat(3, 1, 1, 1), y.repeat(3))
    for t in range(3):
        assert torch.equal(tiled[5 * t:5 * (t + 1)], single)


def _forwards(model_type):
    """A counter of the top-level forwards of models of ``model_type`` (the attacks' channels_last
    copies included), as a context manager yielding a one-element list."""
    import contextlib

    @contextlib.contextmanager
    def counting():
        n = [0]
        handle = torch.nn.modules.module.register_module_forward_hook(
            lambda m, i, o: n.__setitem__(0, n[0] + 1) if isinstance(m, model_type) else None)
        try:
            yield n
        finally:
            handle.remove()
    return counting()


def test_loss_keeping_attacks_leave_the_logits_of_what_they_return(tiny_cnn):
    """sPGD keeping its best iterate and MaxLoss hand back the logits of exactly the examples they
    return (from forwards they ran anyway), so MaxLoss compares its stages without a forward per
    stage: the clean forward plus sPGD's steps + 1, nothing more. Early stop, projected or not."""
    model = tiny_cnn
    x = torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(3))
    for kwargs in ({"early_stop": False, "loss": "ce"}, {"early_stop": True},
                   {"early_stop": False, "projected": True, "loss": "ce"}):
        a = SparsePGD(4, 6, seed=0, **kwargs)
        xa = a(model, x, y)
        with torch.no_grad():
            direct = model(xa)
        assert a.last_logits is not None and torch.allclose(a.last_logits, direct, atol=1e-5), kwargs
    assert SparsePGD(4, 6, seed=0, track_best=False, early_stop=False)(model, x, y) is not None
    steps = 5
    m = MaxLoss([SparsePGD(4, steps, early_stop=False, loss="ce", seed=0)])
    with _forwards(type(model)) as n:
        xm = m(model, x, y)
    assert n[0] == 1 + steps + 1          # clean, the steps, the last iterate; no comparison forward
    with torch.no_grad():
        assert torch.allclose(m.last_logits, model(xm), atol=1e-5)
    # an attack with no logits of its own is compared by a forward, as before
    m2 = MaxLoss([ExactL0K1()])
    with _forwards(type(model)) as n:
        xm2 = m2(model, x, y)
    with torch.no_grad():
        assert torch.allclose(m2.last_logits, model(xm2), atol=1e-5)
    assert "last_logits" not in SparsePGD(4, 6).config() and "last_logits" not in repr(a)
