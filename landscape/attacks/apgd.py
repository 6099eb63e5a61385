"""APGD for l1 (Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on image
classifiers", ICML 2021), following its main ideas with our own simplifications.

Threat model
    l1 ball of radius ``eps`` intersected with the [0,1] box; every iterate is projected exactly with
    ``ThreatModel('l1', eps).project``.

Algorithm
    * Sparse steepest ascent: the step moves only the ``q`` coordinates with the largest ``|grad|``
      among those that can still move (a coordinate at the box boundary whose gradient points out of
      the box is excluded: "mind the box"), each by ``eta * eps / q`` along ``sign(grad)``.
    * Momentum 0.75 as in APGD: ``x' = P(x + 0.75 (z - x) + 0.25 (x - x_prev))``.
    * Checkpoints at the APGD fractions ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``
      of ``steps``: if fewer than 75% of the steps since the last checkpoint increased the loss, or
      neither the step size nor the best loss changed, halve ``eta`` and restart from the best point.
    * Sparsity ``q`` starts at ``sparsity * d`` (5% of the coordinates) and at each checkpoint is
      set to the number of non-zero coordinates of the best perturbation (at least 1), as the paper
      adapts ``k`` to the sparsity of its iterates. (Simplification: the paper's exact update of k and
      its initial step size of 1 are not reproduced bit for bit.)

Arguments
    eps, steps=100, restarts=1, eta=1.0, sparsity=0.05, loss='ce' (or 'dlr', 'margin'), seed=None.

Example::

    >>> x_adv = APGDL1(eps=12, steps=100)(model, x, y)
"""

from __future__ import annotations

import math

import torch

from ..errors import LandscapeError
from .base import Attack
from .losses import generator_for
from .pgd import BestTracker, random_in_ball


def checkpoints(steps: int) -> list[int]:
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({int(math.ceil(f * steps)) for f in p[1:] if f <= 1})


def sparse_direction(g: torch.Tensor, x_cur: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Unit-l1 ascent direction on the ``q`` (per example) movable coordinates with the largest |g|."""
    blocked = ((x_cur >= 1) & (g > 0)) | ((x_cur <= 0) & (g < 0))
    score = g.abs().masked_fill(blocked, -1.0).flatten(1)
    d = score.shape[1]
    qmax = int(q.max().clamp(1, d))
    top = score.topk(qmax, dim=1)
    keep = torch.arange(qmax, device=g.device)[None, :] < q[:, None]
    keep &= top.values > 0
    sel = torch.zeros_like(score)
    sel.scatter_(1, top.indices, keep.to(score.dtype))
    cnt = sel.sum(1).clamp_min(1)
    return (g.sign().flatten(1) * sel / cnt[:, None]).view_as(g)


class APGDL1(Attack):
    """APGD-l1 with sparse steps and exact ball ∩ box projection (see module docstring)."""

    name = "apgd"
    norms = ("l1",)

    def __init__(self, eps: float = 12, steps: int = 100, *, restarts: int = 1, eta: float = 1.0,
                 sparsity: float = 0.05, loss: str = "ce", seed: int | None = None, norm: str = "l1",
                 mode: str = "eval"):
        super().__init__(eps, norm, mode=mode)
        counts = self._counts(steps=steps, restarts=restarts)
        if not 0 < sparsity <= 1:
            raise LandscapeError(f"sparsity must be in (0, 1], got {sparsity}")
        self.steps, self.restarts = counts["steps"], counts["restarts"]
        self.eta = float(eta)
        self.sparsity = float(sparsity)
        self._set_loss(loss, seed)

    def _loss_grad(self, model, xa, y):
        xa = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xa)
            loss = self._loss(logits, y)
            g, = torch.autograd.grad(loss.sum(), [xa])
        return loss.detach(), g, logits.argmax(1) != y

    def perturb(self, model, x, y):
        gen = generator_for(self.seed, x.device)
        best = BestTracker(x)
        d = x[0].numel()
        marks = set(checkpoints(self.steps))
        for r in range(self.restarts):
            idx = (~best.fooled).nonzero().squeeze(1) if r > 0 else torch.arange(len(x), device=x.device)
            if idx.numel() == 0:
                break
            xi, yi = x[idx], y[idx]
            n = len(idx)
            cur = self.threat.project(xi, xi + random_in_ball(xi, "l1", self.eps, gen))
            eta = torch.full((n,), self.eta, device=x.device, dtype=x.dtype)
            q = torch.full((n,), max(1, int(math.ceil(self.sparsity * d))), device=x.device, dtype=torch.long)
            loss, g, fooled = self._loss_grad(model, cur, yi)
            best.update(idx, cur, loss, fooled)
            run_best_loss, run_best_x, run_best_g = loss.clone(), cur.clone(), g.clone()
            prev = cur.clone()
            n_incr = torch.zeros(n, device=x.device)
            last_mark, eta_at_mark = 0, eta.clone()
            loss_at_mark = run_best_loss.clone()
            for it in range(1, self.steps + 1):
                with torch.no_grad():
                    step = (eta * self.eps).view(-1, 1, 1, 1) * sparse_direction(g, cur, q)
                    z = self.threat.project(xi, cur + step)
                    mom = 0.75 if it > 1 else 1.0
                    nxt = self.threat.project(xi, cur + mom * (z - cur) + (1 - mom) * (cur - prev))
                prev, cur = cur, nxt
                new_loss, g, fooled = self._loss_grad(model, cur, yi)
                best.update(idx, cur, new_loss, fooled)
                with torch.no_grad():
                    n_incr += (new_loss > loss).float()
                    loss = new_loss
                    imp = new_loss > run_best_loss
                    run_best_loss = torch.where(imp, new_loss, run_best_loss)
                    run_best_x[imp] = cur[imp]
                    run_best_g[imp] = g[imp]
                    if it in marks:
                        span = it - last_mark
                        cond1 = n_incr < 0.75 * span
                        cond2 = (eta == eta_at_mark) & (run_best_loss <= loss_at_mark)
                        red = cond1 | cond2
                        eta = torch.where(red, eta / 2, eta)
                        if red.any():
                            cur[red] = run_best_x[red]
                            prev[red] = run_best_x[red]
                            g[red] = run_best_g[red]
                        nz = ((run_best_x - xi) != 0).flatten(1).sum(1)
                        q = nz.clamp_min(1)
                        n_incr.zero_()
                        last_mark, eta_at_mark, loss_at_mark = it, eta.clone(), run_best_loss.clone()
        return best.x
