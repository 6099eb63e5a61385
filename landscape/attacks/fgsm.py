"""One-step attacks for fast adversarial training: FGSM and N-FGSM (l∞ and l2).

FGSM (Goodfellow et al. 2015)
    One step of size ``eps`` along the steepest-ascent direction (``sign(g)`` for l∞, ``g/||g||_2``
    for l2), optionally from a random start in the ball (RS-FGSM: ``random_start=True`` with
    ``alpha=1.25*eps``), then projected exactly onto the threat model. Output: inside the threat model.

N-FGSM (de Jorge et al. 2022, "Make some noise")
    Noise first, then one step of size ``alpha = eps``, and **no projection back to the eps-ball**:
    only the [0,1] box is enforced.

    * l∞: noise uniform in ``[-2 eps, 2 eps]`` per coordinate; the output lies in the l∞ ball of
      radius ``3 eps`` (noise + step), not in ``ThreatModel('linf', eps)``.
    * l2 (our analogue): noise uniform in the l2 ball of radius ``2 eps``, step ``eps * g/||g||_2``;
      the output lies in the l2 ball of radius ``3 eps``.

    ``within_budget=False`` is the training default; ``within_budget=True`` projects onto the threat
    model (recipes stored before the rename call it ``project``).
    Evaluation never uses N-FGSM.

Example::

    >>> x_adv = FGSM(eps=8/255)(model, x, y)
    >>> x_adv = NFGSM(eps=8/255)(model, x, y)        # in the 3*eps ball, for training only
"""

from __future__ import annotations

import torch

from .base import Attack
from .losses import generator_for
from .pgd import normalized, random_in_ball


def _grad(model, x_in, y, loss_fn):
    x_in = x_in.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(model(x_in), y)
        g, = torch.autograd.grad(loss.sum(), [x_in])
    return g


def projected_one_step(attack: Attack, model, x, y, *, start_radius: float, step_norm: str) -> torch.Tensor:
    """One projected step of ``attack.alpha`` along ``g`` normalised in ``step_norm``, from a random start.

    The start is uniform in the ``attack.norm`` ball of ``start_radius`` (none when 0), projected onto
    the threat model; the result is projected onto it too. Shared by FGSM/RS-FGSM and the 1-step l1
    attack, which differ only in the start radius and the step's geometry."""
    gen = generator_for(attack.seed, x.device)
    x0 = x
    if start_radius > 0:
        x0 = attack.threat.project(x, x + random_in_ball(x, attack.norm, start_radius, gen))
    g = _grad(model, x0, y, attack._loss)
    return attack.threat.project(x, x0 + attack.alpha * normalized(g, step_norm))


class FGSM(Attack):
    """FGSM / RS-FGSM for l∞ and l2 (see module docstring)."""

    name = "fgsm"
    norms = ("linf", "l2")

    def __init__(self, eps: float = 8 / 255, norm: str = "linf", *, alpha: float | None = None,
                 random_start: bool = False, loss: str = "ce", seed: int | None = None, mode: str = "eval"):
        super().__init__(eps, norm, mode=mode)
        self.alpha = float(alpha) if alpha is not None else self.eps
        self.random_start = bool(random_start)
        self._set_loss(loss, seed)

    def perturb(self, model, x, y):
        return projected_one_step(self, model, x, y, start_radius=self.eps if self.random_start else 0.0,
                                  step_norm=self.norm)


class NFGSM(Attack):
    """N-FGSM for l∞ and l2: noise ``noise * eps``, step ``alpha`` (default eps), no eps-ball projection."""

    name = "nfgsm"
    norms = ("linf", "l2")

    def __init__(self, eps: float = 8 / 255, norm: str = "linf", *, noise: float = 2.0, alpha: float | None = None,
                 within_budget: bool = False, loss: str = "ce", seed: int | None = None, mode: str = "eval"):
        super().__init__(eps, norm, mode=mode)
        self.noise = float(noise)
        self.alpha = float(alpha) if alpha is not None else self.eps
        self.within_budget = bool(within_budget)
        self._set_loss(loss, seed)

    @property
    def output_radius(self) -> float:
        """The radius of the ball (in the attack's norm) that unprojected outputs lie in."""
        return self.noise * self.eps + self.alpha

    def perturb(self, model, x, y):
        gen = generator_for(self.seed, x.device)
        x0 = (x + random_in_ball(x, self.norm, self.noise * self.eps, gen)).clamp(0, 1)
        g = _grad(model, x0, y, self._loss)
        x_adv = (x0 + self.alpha * normalized(g, self.norm)).clamp(0, 1)
        if self.within_budget:
            x_adv = self.threat.project(x, x_adv)
        return x_adv
