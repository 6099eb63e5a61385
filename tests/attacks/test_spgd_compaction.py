"""sPGD keeps the examples it still attacks compacted (gathered once, shrunk when some stop). It must
return exactly what the plain loop returns: every step on ``x[idx]`` of the examples not yet done,
state gathered and scattered back each step. The plain loop below is that algorithm, written for
this test only."""

import math

import pytest
import torch
from torch import nn

from landscape.attacks import SparsePGD
from landscape.attacks.losses import generator_for
from landscape.attacks.spgd import masked_perturbation, topk_mask


def plain_spgd(att: SparsePGD, model, x, y):
    gen = generator_for(att.seed, x.device)
    k = att.threat.k
    n, _, h, w = x.shape
    p = att._init_p(x, gen)
    m = att._init_m(x, gen)
    mask_step, step = att.beta * math.sqrt(h * w), att.alpha * att.magnitude
    best_delta = torch.zeros_like(x)
    best_loss = torch.full((n,), float("-inf"))
    best_fooled = torch.zeros(n, dtype=torch.bool)
    unchanged = torch.zeros(n, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    if att.early_stop:
        with torch.no_grad():
            done = model(x).argmax(1) != y
        best_fooled = done.clone()
    for it in range(att.steps + 1):
        idx = (~done).nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        last = it == att.steps
        if last and not att.track_best:
            with torch.no_grad():
                best_delta[idx] = masked_perturbation(p[idx], m[idx], k, att.projected)[0]
            break
        pi, mi = p[idx].requires_grad_(not last), m[idx].requires_grad_(not last)
        xi, yi = x[idx], y[idx]
        with torch.set_grad_enabled(not last):
            delta, b = masked_perturbation(pi, mi, k, att.projected)
            logits = model(xi + delta)
            loss = att._loss(logits, yi)
            if not last:
                gp, gm = torch.autograd.grad(loss.sum(), [pi, mi])
        with torch.no_grad():
            delta, loss = delta.detach(), loss.detach()
            fooled = logits.argmax(1) != yi
            if att.track_best:
                bf, bl = best_fooled[idx], best_loss[idx]
                better = (fooled & ~bf) | ((fooled == bf) & (loss > bl))
            else:
                better = fooled
            upd = idx[better]
            best_delta[upd], best_loss[upd], best_fooled[upd] = delta[better], loss[better], fooled[better]
            if att.early_stop:
                done[idx[fooled]] = True
            if last:
                break
            pn = (pi.detach() + step * gp.sign()).clamp(-att.magnitude, att.magnitude)
            pn = torch.minimum(torch.maximum(pn, -xi), 1 - xi)
            gnorm = gm.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            mn = mi.detach() + torch.where(gnorm > 2e-10, mask_step * gm / (gnorm + 1e-10), torch.zeros_like(gm))
            same = (topk_mask(mn, k) == b).flatten(1).all(dim=1)
            cnt = torch.where(same, unchanged[idx] + 1, torch.zeros_like(unchanged[idx]))
            redraw = cnt >= att.patience
            if redraw.any():
                mn[redraw] = att._init_m(xi[redraw], gen)
                cnt[redraw] = 0
            unchanged[idx], p[idx], m[idx] = cnt, pn, mn
    return (x + best_delta).clamp(0, 1)


def _model_and_data(n=24):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    x = torch.rand(n, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::4] = (y[::4] + 1) % 3         # a quarter misclassified before the attack
    return model, x, y


@pytest.mark.parametrize("options", [
    {}, {"projected": True}, {"early_stop": False}, {"track_best": False},
    {"early_stop": False, "track_best": False}, {"patience": 1}, {"loss": "ce"}, {"magnitude": 0.5},
])
def test_compacted_spgd_equals_the_plain_loop(options):
    model, x, y = _model_and_data()
    for seed in (0, 1):
        att = SparsePGD(3, 12, seed=seed, **options)
        ours = att(model, x, y)
        plain = plain_spgd(SparsePGD(3, 12, seed=seed, **options), model, x, y)
        assert torch.equal(ours, plain)


def test_the_comparison_exercises_examples_leaving_the_set():
    model, x, y = _model_and_data()
    with torch.no_grad():
        before = model(x).argmax(1) != y
        after = model(SparsePGD(3, 12, seed=0)(model, x, y)).argmax(1) != y
    broken = after & ~before                 # stopped early during the run: they left the active set
    assert 0 < int(broken.sum()) < int((~before).sum())


def test_nothing_to_attack_returns_the_input():
    model, x, y = _model_and_data(4)
    with torch.no_grad():
        y = (model(x).argmax(1) + 1) % 3     # all misclassified already
    assert torch.equal(SparsePGD(3, 5, seed=0)(model, x, y), x.clamp(0, 1))
