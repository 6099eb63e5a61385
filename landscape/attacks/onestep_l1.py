"""A one-step l1 attack for fast training, in the style of Fast-EG-l1 (Jiang et al., "Towards stable
and efficient adversarial training against l1 bounded adversarial attacks", ICML 2023).

Threat model
    l1 ball of radius ``eps`` intersected with the [0,1] box.

Algorithm
    Random start uniform in the l1 ball of radius ``init * eps`` (projected onto ball ∩ box), then one
    Euclidean-geometry step ``x + alpha * g / ||g||_2`` followed by the exact Euclidean projection
    onto the l1 ball ∩ box (soft-thresholding, :meth:`ThreatModel.project`). The projection is what
    makes the step sparse. ``alpha`` defaults to ``eps`` (our choice; the step's l2 length equals
    the l1 budget, so after projection the budget is used in full on the largest-gradient coordinates).

Arguments
    eps, alpha=None (= eps), init=1.0, loss='ce', seed=None, mode='eval'.

Example::

    >>> x_adv = OneStepL1(eps=12)(model, x, y)
"""

from __future__ import annotations

from .base import Attack
from .fgsm import projected_one_step


class OneStepL1(Attack):
    name = "onestep-l1"
    norms = ("l1",)

    def __init__(self, eps: float = 12, *, alpha: float | None = None, init: float = 1.0, loss: str = "ce",
                 seed: int | None = None, norm: str = "l1", mode: str = "eval"):
        super().__init__(eps, norm, mode=mode)
        self.alpha = float(alpha) if alpha is not None else self.eps
        self.init = float(init)
        self._set_loss(loss, seed)

    def perturb(self, model, x, y):
        return projected_one_step(self, model, x, y, start_radius=self.init * self.eps, step_norm="l2")
