r"""Several grid points of a loss surface in one forward pass: stacked weights.

:class:`StackedModel` holds ``P`` weight vectors :math:`\theta_1 \dots \theta_P` of one network and
evaluates them on a batch made of ``P`` stacked copies of ``n`` examples (rows ``p·n .. p·n+n-1`` go
through :math:`\theta_p`) with ``torch.func.functional_call`` under ``torch.vmap``: one call instead
of ``P``, which pays off where the per-call overhead dominates (small models, GPUs). Attacks see it
as an ordinary model on ``P·n`` examples; since an attack acts per example, each copy gets the
perturbation the same attack gives that copy's weights alone, provided that

* the attack always evaluates the model on the whole stacked batch (no early stop, no cascade on
  survivors; :class:`StackedModel` refuses any other batch size rather than mix up weights), and
* its randomness is the same for every copy: deterministic attacks, or tileable ones
  (:class:`~landscape.attacks.maxloss.TiledSparsePGD` draws the random start of ``n`` examples and
  repeats it ``P`` times).

BatchNorm runs with the running statistics (eval mode); a train-mode objective is not batched.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ..attacks.base import model_mode
from ..errors import LandscapeError
from ..training.losses import cross_entropy


class StackedModel(nn.Module):
    """``P`` weight sets of ``model`` (dicts over some of its parameter names) on ``P`` stacked copies of
    ``n`` examples; see the module docstring."""

    def __init__(self, model: nn.Module, params: Sequence[Mapping[str, torch.Tensor]], n: int):
        super().__init__()
        if not params:
            raise LandscapeError("a stacked model needs at least one weight set")
        self.base = model
        self.P = len(params)
        self.n = int(n)
        names = list(params[0])
        self._stacked = {k: torch.stack([p[k].detach() for p in params]) for k in names}
        self._fixed = {k: v for k, v in model.named_parameters() if k not in self._stacked}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.P * self.n:
            raise LandscapeError(f"a stacked model of {self.P} weight sets x {self.n} examples got a batch of "
                                 f"{x.shape[0]}; the attack must evaluate the whole batch (no early stop)")
        xs = x.reshape(self.P, self.n, *x.shape[1:])
        buffers = dict(self.base.named_buffers())

        def one(p, xb):
            return functional_call(self.base, {**self._fixed, **buffers, **p}, (xb,))

        out = torch.vmap(one)(self._stacked, xs)
        return out.reshape(self.P * self.n, *out.shape[2:])


def batchable(objective) -> str | None:
    """None when ``objective`` can be evaluated several points at a time, else the reason it cannot."""
    if objective.bn != "eval":
        return "BatchNorm in train mode"
    if objective.loss_fn is not None:
        return "a custom loss"
    if objective.mode == "recomputed":
        atk = objective.attack
        stages = getattr(atk, "stages", [atk])
        for s in stages:
            if not (getattr(s, "tileable", False) or getattr(s, "deterministic", False)):
                return f"the attack {getattr(s, 'name', type(s).__name__)} draws a random start per example"
    return None


def _set_tile(attack, tile: int) -> None:
    for s in getattr(attack, "stages", [attack]):
        if getattr(s, "tileable", False):
            s.tile = int(tile)


def evaluate_points(objective, offsets: Sequence[Mapping[str, torch.Tensor]]) -> list[tuple[float, float]]:
    """``(loss, accuracy)`` of ``objective`` at ``θ₀ + offset`` for every offset, all in one pass per
    batch of examples; equal (to rounding) to ``objective.evaluate(offset)`` for each."""
    why = batchable(objective)
    if why:
        raise LandscapeError(f"grid points cannot be batched with {why}; use `points_per_batch` 1")
    P = len(offsets)
    params = [{k: c + off[k].to(c.device, c.dtype) if k in off else c for k, c in objective.center.items()}
              for off in offsets]
    n_all = len(objective.x)
    totals = torch.zeros(P, dtype=torch.float64)
    correct = torch.zeros(P, dtype=torch.long)
    model = objective.model
    if objective.mode == "fixed":
        objective.fixed_perturbations()
    if objective.mode == "recomputed" and objective.seed is not None:
        torch.manual_seed(objective.seed)
    with model_mode(model, "eval"):
        for i in range(0, n_all, objective.batch_size):
            sl = slice(i, i + objective.batch_size)
            xb, yb = objective.x[sl], objective.y[sl]
            n = len(yb)
            sm = StackedModel(model, params, n)
            rep = (P,) + (1,) * (xb.dim() - 1)
            if objective.mode == "clean":
                x_in = xb.repeat(rep)
            elif objective.mode == "fixed":
                x_in = objective.fixed_perturbations()[sl].repeat(rep)
            else:
                _set_tile(objective.attack, P)
                try:
                    x_in = objective.attack(sm, xb.repeat(rep), yb.repeat(P))
                finally:
                    _set_tile(objective.attack, 1)
            tb = (objective.targets if objective.targets is not None else objective.y)[sl]
            with torch.no_grad():
                logits = sm(x_in).view(P, n, -1)
                for p in range(P):
                    totals[p] += float(cross_entropy(logits[p], tb)) * (n / n_all)
                    correct[p] += int((logits[p].argmax(1) == yb).sum())
    return [(float(totals[p]), float(correct[p]) / n_all) for p in range(P)]


__all__ = ["StackedModel", "batchable", "evaluate_points"]
