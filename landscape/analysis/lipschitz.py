"""Empirical Lipschitz constants of the adversarial loss and of its gradient (Lemmas 3.2/3.4,
Theorems 4.1/4.2 of Zhong et al. 2025).

For the centre ``θ₁ = θ`` and ``θ₂ = θ + r·d`` with ``d`` a unit direction (``||θ₁ - θ₂|| = r``), the
attack is re-run at both points (``δ₁``, ``δ₂``) and:

* ``loss_lip  = |L_ε(θ₁) - L_ε(θ₂)| / r``                 (Lemma 3.2: bounded by A_θ)
* ``grad_lip  = ||∇L_ε(θ₁) - ∇L_ε(θ₂)|| / r``             (Lemma 3.4: ≤ A_θθ + B_θδ / r)
* ``grad_lip_fixed = ||∇L(θ₁, δ₁) - ∇L(θ₂, δ₁)|| / r``    (δ held: the smooth part, ≈ A_θθ)
* ``delta_l2  = mean_i ||δ₁ᵢ - δ₂ᵢ||₂``                     (the perturbations' move, in B_θδ)
* ``loc_change`` (l0 only) ``= mean_i (1 - IoU(S₁ᵢ, S₂ᵢ))``, the share of perturbed pixel locations
  that change; ``changed`` the share of examples whose perturbation changed at all.

The lemma says the gradient's Lipschitz bound has an additive term that does not shrink with r: as
``r → 0``, ``grad_lip`` blows up like ``1/r`` wherever the perturbation jumps, while
``grad_lip_fixed`` stays bounded. Comparing variants of the loss:

* labels ``hard`` (one-hot) against ``soft`` (Theorem 4.1: soft labels shrink A_θ and B_θδ): the soft
  targets are the checkpoint's self-adaptive-training targets when they exist for the analysed
  images (``--split train``), else label smoothing ``t = (1-s)·onehot + s/C`` with ``s = smoothing``;
* loss ``ce`` against ``tradeoff`` (Theorem 4.2): ``(1-α)·CE(f(x), t) + α·CE(f(x+δ), t)`` with
  ``α = tradeoff_alpha`` (the recipe's, else 0.5).

The attack is seeded identically at θ₁ and θ₂ (common random numbers), so a perturbation that moves
moved because the weights did, not because of the attack's random start. It always maximises cross-entropy against the hard labels (it is the same attack for every
variant), so differences between variants are differences of the loss being measured.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import validate as _validate
from ..errors import LandscapeError
from .directions import direction_norm, random_direction
from .objective import LossObjective
from .overlap import perturbed_pixels, pixel_iou


def check_smoothing(smoothing) -> float:
    """A label-smoothing factor: a finite number in [0, 1)."""
    s = _validate.number("smoothing", smoothing)
    if not 0 <= s < 1:
        raise LandscapeError(f"`smoothing` (label smoothing) must be in [0, 1), got {smoothing}")
    return s


def label_smoothing_targets(y: torch.Tensor, num_classes: int, smoothing: float = 0.1) -> torch.Tensor:
    """``(1-s)·onehot(y) + s/C``."""
    check_smoothing(smoothing)
    return F.one_hot(y.long(), num_classes).float() * (1 - smoothing) + smoothing / num_classes


def tradeoff_loss(alpha: float = 0.5) -> Callable:
    """``(1-α)·CE(f(x), t) + α·CE(f(x+δ), t)``: the training library's trade-off loss (``recipe_loss``)."""
    from ..training.losses import recipe_loss
    recipe = {"name": "tradeoff", "norm": "l0", "eps": 1, "loss": "tradeoff", "tradeoff_alpha": float(alpha)}

    def fn(model, x, x_adv, t):
        return recipe_loss(recipe, model, x, x_adv, t)
    return fn


def unit_direction(model: nn.Module, *, seed: int, kind: str = "filter") -> dict:
    """A unit-norm direction: filter-normalised then scaled to norm 1 (``filter``) or plain Gaussian
    (``random``); biases and BatchNorm parameters are zeroed for ``filter`` and kept for ``random``."""
    if kind == "filter":
        d = random_direction(model, seed=seed, norm="filter")
    elif kind == "random":
        d = random_direction(model, seed=seed, norm="none", include_bn=True)
    else:
        raise LandscapeError(f"unknown direction kind {kind!r}; use filter or random")
    n = direction_norm(d)
    return {k: v / n for k, v in d.items()}


def _flat_dist(g1: dict, g2: dict) -> float:
    return float(torch.sqrt(sum(((g1[k].double() - g2[k].double()) ** 2).sum() for k in g1)))


def lipschitz_estimates(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Callable,
                        radii: Sequence[float], *, variants: dict | None = None, n_directions: int = 1,
                        direction: str = "filter", seed: int = 0, batch_size: int = 256,
                        norm: str | None = None, progress: bool | None = None) -> tuple[pd.DataFrame, dict]:
    """The table of the module docstring for every variant, direction and radius.

    ``variants`` maps a name to ``{"targets": tensor or None, "loss_fn": callable or None}``; default
    ``{"hard-ce": {}}``. ``norm`` (the threat model's) decides whether ``loc_change`` is computed (l0).
    """
    from .. import progress as _progress
    from ..validate import values
    radii = values("radii", radii, positive=True)
    if not radii or any(r <= 0 for r in radii):
        raise LandscapeError("radii must be positive numbers, e.g. 1e-3,1e-2,1e-1")
    variants = variants or {"hard-ce": {}}
    norm = norm or getattr(getattr(attack, "threat", None), "norm", None)
    rows = []
    bar = _progress.bar(total=len(variants) * n_directions * (len(radii) + 1), desc="lipschitz", progress=progress)
    try:
        for vname, spec in variants.items():
            obj = LossObjective(model, x, y, "recomputed", attack, batch_size, targets=spec.get("targets"),
                                loss_fn=spec.get("loss_fn"), seed=seed)
            obj.seed = seed
            L1, _, g1, xa1 = obj.loss_and_grad()
            bar.update(1)
            d1 = xa1 - obj.x
            s1 = perturbed_pixels(obj.x, xa1)
            for j in range(n_directions):
                d = unit_direction(model, seed=seed * 1000 + j, kind=direction)
                for r in radii:
                    off = {k: v * r for k, v in d.items()}
                    obj.seed = seed
                    L2, _, g2, xa2 = obj.loss_and_grad(off)
                    _, _, gfix, _ = obj.loss_and_grad(off, x_adv=xa1)
                    d2 = xa2 - obj.x
                    moved = (d1 - d2).flatten(1).norm(dim=1)
                    row = {"variant": vname, "direction": j, "radius": r, "loss_1": L1, "loss_2": L2,
                           "loss_lip": abs(L1 - L2) / r, "grad_lip": _flat_dist(g1, g2) / r,
                           "grad_lip_fixed": _flat_dist(g1, gfix) / r, "delta_l2": float(moved.mean()),
                           "changed": float((moved > 0).float().mean())}
                    if norm == "l0":
                        iou = pixel_iou(s1, perturbed_pixels(obj.x, xa2))
                        row["loc_change"] = float(np.nanmean((1 - iou).cpu().numpy())) if not bool(iou.isnan().all()) else 0.0
                    else:
                        row["loc_change"] = float("nan")
                    rows.append(row)
                    bar.update(1)
    finally:
        bar.close()
    df = pd.DataFrame(rows)
    summary = (df.groupby(["variant", "radius"], sort=False)[["loss_lip", "grad_lip", "grad_lip_fixed", "delta_l2", "loc_change"]]
               .mean().reset_index().to_dict(orient="records"))
    meta = {"radii": radii, "n_directions": n_directions, "direction": direction, "seed": seed,
            "n_examples": int(len(x)), "mode": "recomputed", "norm": norm,
            "attack": attack.config() if hasattr(attack, "config") else repr(attack),
            "variants": {k: {"soft_targets": v.get("targets") is not None,
                             "loss": "tradeoff(alpha=%g)" % v["loss_fn"].alpha if getattr(v.get("loss_fn"), "alpha", None) is not None
                             else ("custom" if v.get("loss_fn") else "ce")} for k, v in variants.items()},
            "summary": summary}
    return df, meta


def check_compare(compare: Sequence[str]) -> list[str]:
    """The ``compare`` items: labels and/or loss."""
    compare = [c.strip() for c in compare if c.strip()]
    bad = set(compare) - {"labels", "loss"}
    if bad:
        raise LandscapeError(f"unknown `compare` item {sorted(bad)[0]!r}; use labels, loss or labels,loss")
    return compare


def build_variants(compare: Sequence[str], y: torch.Tensor, num_classes: int, *, smoothing: float = 0.1,
                   soft_targets: torch.Tensor | None = None, tradeoff_alpha: float = 0.5) -> dict:
    """Variants for ``--compare``: ``labels`` adds hard/soft, ``loss`` adds ce/tradeoff (hard labels)."""
    compare = check_compare(compare)
    out = {"hard-ce": {}}
    if "labels" in compare:
        t = soft_targets if soft_targets is not None else label_smoothing_targets(y, num_classes, smoothing)
        out["soft-ce"] = {"targets": t}
    if "loss" in compare:
        out["hard-tradeoff"] = {"loss_fn": tradeoff_loss(tradeoff_alpha)}
    return out
