"""Projected gradient descent (Madry et al. 2018) for l∞ and l2, with random restarts.

Threat model
    l∞ or l2 ball of radius ``eps`` intersected with the [0,1] box; every iterate is projected
    exactly with :meth:`ThreatModel.project`.

Steps
    l∞: ``x + alpha * sign(grad)``; l2: ``x + alpha * grad / ||grad||_2``. ``alpha`` defaults to
    ``2.5 * eps / steps`` (Madry et al.). The random start is uniform in the l∞ ball, or uniform in
    the l2 ball (Gaussian direction, radius ``eps * U^(1/d)``). Each restart keeps, per example, the
    first misclassified iterate, else the iterate with the highest loss; restarts after the first run
    only on examples that are still correctly classified.

Arguments
    eps, norm='linf', steps=50, restarts=1, alpha=None, loss='ce' (or 'margin', 'dlr'),
    random_start=True, seed=None, mode='eval'.

Example::

    >>> x_adv = PGD(eps=8/255, norm="linf", steps=50, restarts=5)(model, x, y)
"""

from __future__ import annotations

import torch

from ..errors import LandscapeError
from .base import Attack
from .losses import generator_for


def random_in_ball(x: torch.Tensor, norm: str, eps: float, gen) -> torch.Tensor:
    """A random perturbation of ``x``'s shape in the ``norm`` ball of radius ``eps`` (not box-clipped)."""
    if norm == "linf":
        return (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    d = x[0].numel()
    g = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    if norm == "l2":
        g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        r = torch.rand((x.shape[0],), generator=gen, device=x.device, dtype=x.dtype) ** (1.0 / d)
        return g * (eps * r).view(-1, *([1] * (x.dim() - 1)))
    if norm == "l1":
        # Laplace direction normalised to the l1 sphere, radius eps * U^(1/d): uniform in the l1 ball
        e = -torch.log(torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype).clamp_min(1e-12))
        s = torch.randint(0, 2, x.shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1
        v = e * s
        v = v / v.flatten(1).abs().sum(1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        r = torch.rand((x.shape[0],), generator=gen, device=x.device, dtype=x.dtype) ** (1.0 / d)
        return v * (eps * r).view(-1, *([1] * (x.dim() - 1)))
    raise LandscapeError(f"no random start for {norm}")


def normalized(g: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent direction of unit ``norm`` for gradient ``g`` (sign for l∞, g/||g|| for l2)."""
    if norm == "linf":
        return g.sign()
    return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (g.dim() - 1)))


class BestTracker:
    """Per-example best iterate: misclassified beats correct, then higher loss wins."""

    def __init__(self, x: torch.Tensor):
        n = x.shape[0]
        self.x = x.clone()
        self.loss = torch.full((n,), float("-inf"), device=x.device, dtype=x.dtype)
        self.fooled = torch.zeros(n, dtype=torch.bool, device=x.device)

    @torch.no_grad()
    def update(self, idx: torch.Tensor, x_new: torch.Tensor, loss: torch.Tensor, fooled: torch.Tensor) -> None:
        bf, bl = self.fooled[idx], self.loss[idx]
        better = (fooled & ~bf) | ((fooled == bf) & (loss > bl))
        if better.any():
            j = idx[better]
            self.x[j] = x_new[better].detach()
            self.loss[j] = loss[better].detach()
            self.fooled[j] = fooled[better]


class PGD(Attack):
    """PGD for l∞ / l2 with restarts. See the module docstring."""

    name = "pgd"
    norms = ("linf", "l2")

    def __init__(self, eps: float = 8 / 255, norm: str = "linf", steps: int = 50, *, restarts: int = 1,
                 alpha: float | None = None, loss: str = "ce", random_start: bool = True,
                 seed: int | None = None, mode: str = "eval"):
        super().__init__(eps, norm, mode=mode)
        counts = self._counts(steps=steps, restarts=restarts)
        self.steps, self.restarts = counts["steps"], counts["restarts"]
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / self.steps
        self.random_start = bool(random_start)
        self._set_loss(loss, seed)

    def perturb(self, model, x, y):
        gen = generator_for(self.seed, x.device)
        best = BestTracker(x)
        for r in range(self.restarts):
            idx = (~best.fooled).nonzero().squeeze(1) if r > 0 else torch.arange(len(x), device=x.device)
            if idx.numel() == 0:
                break
            xi, yi = x[idx], y[idx]
            xa = xi.clone()
            if self.random_start:
                xa = self.threat.project(xi, xi + random_in_ball(xi, self.norm, self.eps, gen))
            for _ in range(self.steps):
                xa.requires_grad_(True)
                with torch.enable_grad():
                    logits = model(xa)
                    loss = self._loss(logits, yi)
                    g, = torch.autograd.grad(loss.sum(), [xa])
                with torch.no_grad():
                    best.update(idx, xa, loss, logits.argmax(1) != yi)
                    xa = self.threat.project(xi, xa.detach() + self.alpha * normalized(g, self.norm))
            with torch.no_grad():
                logits = model(xa)
                best.update(idx, xa, self._loss(logits, yi), logits.argmax(1) != yi)
        return best.x
