"""LossObjective: closed forms on a linear model (clean, fixed, recomputed), restoration of weights."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.analysis.directions import random_directions
from landscape.analysis.objective import LossObjective, plane_offset, predict_stats
from landscape.attacks import Attack
from landscape.errors import LandscapeError


class SignAttack(Attack):
    """l∞ one-step sign attack: exact for a two-class linear model away from the box edges."""
    name = "sign"

    def perturb(self, model, x, y):
        x = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), y)
        g, = torch.autograd.grad(loss, x)
        return self.threat.project(x.detach(), x.detach() + self.eps * g.sign())


def linear_model(d=12, classes=2, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, classes)).double().eval()


def data(n=10, d=12, classes=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = (0.2 + 0.6 * torch.rand(n, 1, 3, d // 3, generator=g)).double()  # away from the box edges
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def closed_form(W, b, x, y, eps=0.0, x_fixed=None):
    """CE of logits W x + b; with eps>0 the optimal l∞ perturbation of a 2-class linear model."""
    xf = x.flatten(1)
    if x_fixed is not None:
        xf = x_fixed.flatten(1)
    elif eps:
        wdiff = W[1 - y] - W[y]  # (n, d): direction raising the other class
        xf = xf + eps * wdiff.sign()
    return F.cross_entropy(xf @ W.T + b, y).item()


def test_clean_surface_point_equals_formula():
    m = linear_model()
    x, y = data()
    d1, d2 = random_directions(m, 2, seed=3)
    obj = LossObjective(m, x, y, "clean", batch_size=4)
    W0, b0 = m[1].weight.detach().clone(), m[1].bias.detach().clone()
    for a, b in [(0, 0), (0.5, -0.25), (-1, 1)]:
        loss, acc = obj.evaluate(plane_offset(d1, d2, a, b))
        W = W0 + a * d1["1.weight"] + b * d2["1.weight"]
        assert d1["1.bias"].abs().sum() == 0  # biases stay where they are
        assert loss == pytest.approx(closed_form(W, b0, x, y), rel=1e-10)
        pred = (x.flatten(1) @ W.T + b0).argmax(1)
        assert acc == pytest.approx(float((pred == y).double().mean()))
    # weights restored
    assert torch.equal(m[1].weight, W0)


def test_fixed_and_recomputed_equal_closed_form():
    m = linear_model()
    x, y = data()
    eps = 0.05
    atk = SignAttack(eps, "linf")
    d1, = random_directions(m, 1, seed=5)
    W0, b0 = m[1].weight.detach().clone(), m[1].bias.detach().clone()
    rec = LossObjective(m, x, y, "recomputed", atk, batch_size=3)
    fix = LossObjective(m, x, y, "fixed", atk, batch_size=3)
    # at the centre both equal the exact adversarial loss
    exact0 = closed_form(W0, b0, x, y, eps)
    assert rec.evaluate()[0] == pytest.approx(exact0, rel=1e-9)
    assert fix.evaluate()[0] == pytest.approx(exact0, rel=1e-9)
    x_fix = fix.fixed_perturbations()
    a = 0.7
    W = W0 + a * d1["1.weight"]
    off = plane_offset(d1, None, a)
    assert rec.evaluate(off)[0] == pytest.approx(closed_form(W, b0, x, y, eps), rel=1e-9)
    assert fix.evaluate(off)[0] == pytest.approx(closed_form(W, b0, x, y, x_fixed=x_fix), rel=1e-9)
    # recomputed is the max over perturbations: never below the fixed loss
    assert rec.evaluate(off)[0] >= fix.evaluate(off)[0] - 1e-12


def test_weights_restored_on_error_and_bn_untouched(tiny_cnn, tiny_batch):
    x, y = tiny_batch
    before = {k: v.clone() for k, v in tiny_cnn.state_dict().items()}

    def bad_loss(model, xb, xab, t):
        raise RuntimeError("boom")

    obj = LossObjective(tiny_cnn, x, y, "clean", loss_fn=bad_loss)
    d1, = random_directions(tiny_cnn, 1, seed=0)
    with pytest.raises(RuntimeError):
        obj.evaluate(plane_offset(d1, None, 1.0))
    for k, v in tiny_cnn.state_dict().items():
        assert torch.equal(v, before[k])
    obj = LossObjective(tiny_cnn, x, y, "clean", bn="train")
    obj.evaluate(plane_offset(d1, None, 0.3))
    for k, v in tiny_cnn.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not tiny_cnn.training
    # eval-mode centre equals a plain forward pass
    loss, acc = LossObjective(tiny_cnn, x, y, "clean", batch_size=4).evaluate()
    ref = predict_stats(tiny_cnn, x, y)
    assert loss == pytest.approx(ref[0], rel=1e-6) and acc == pytest.approx(ref[1])


def test_bad_arguments(tiny_cnn, tiny_batch):
    x, y = tiny_batch
    with pytest.raises(LandscapeError):
        LossObjective(tiny_cnn, x, y, "fixed")
    with pytest.raises(LandscapeError):
        LossObjective(tiny_cnn, x, y, "sideways")
    obj = LossObjective(tiny_cnn, x, y)
    with pytest.raises(LandscapeError):
        obj.evaluate({"classifier.5.weight": torch.zeros(2, 2)})


def test_a_recomputed_point_takes_its_loss_from_the_attacks_own_forward(tiny_cnn, tiny_batch):
    """A recomputed surface point costs the attack and nothing more: the loss and accuracy come from
    the logits the loss-keeping attack computed on its result, equal to a forward of the model on
    it; where that forward would differ (BatchNorm in train mode, a custom loss) it is still run."""
    from landscape.attacks import MaxLoss, SparsePGD

    x, y = tiny_batch
    steps = 4
    atk = MaxLoss([SparsePGD(3, steps, early_stop=False, loss="ce", seed=0)])
    d = random_directions(tiny_cnn, seed=0)
    calls = [0]
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: calls.__setitem__(0, calls[0] + 1) if type(m) is type(tiny_cnn) else None)
    try:
        obj = LossObjective(tiny_cnn, x, y, mode="recomputed", attack=atk, batch_size=4, seed=0)
        loss, acc = obj.evaluate(plane_offset(d[0], None, 0.3))
        per_point = calls[0]
        with obj.at(plane_offset(d[0], None, 0.3)), torch.no_grad():
            logits = tiny_cnn(obj.last_x_adv)
        assert loss == pytest.approx(float(F.cross_entropy(logits, y)), abs=1e-5)
        assert acc == pytest.approx(float((logits.argmax(1) == y).float().mean()))
        assert per_point == 2 * (1 + steps + 1)          # two batches of 4 and 2: the attack's forwards only
        calls[0] = 0
        soft = LossObjective(tiny_cnn, x, y, mode="recomputed", attack=atk, batch_size=4, seed=0,
                             loss_fn=lambda m, xb, xa, t: F.cross_entropy(m(xa), t))
        assert soft.evaluate(plane_offset(d[0], None, 0.3))[0] == pytest.approx(loss, abs=1e-5)
        assert calls[0] > per_point                      # the custom loss runs its own forwards
    finally:
        handle.remove()
