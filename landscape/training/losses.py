"""Training losses of the recipes, given a fixed adversarial input.

Public contract (the Hessian analysis depends on these names):

* :func:`cross_entropy` ``(logits, targets)``: mean cross-entropy for hard labels (int64, shape
  (N,)) or soft-label rows (float, shape (N, K), each a probability vector):
  ``CE = -1/N Σ_i Σ_k t_ik log softmax(z_i)_k``.
* :func:`recipe_loss` ``(recipe, model, x, x_adv, targets)``: the recipe's training loss, a scalar
  (mean over the batch), with ``x_adv`` held fixed (no attack is run):

  ======== ==================================================================================
  ce       ``CE(f(x_adv), t)``
  tradeoff ``(1-λ)·CE(f(x), t) + λ·CE(f(x_adv), t)``
  trades   ``CE(f(x), t) + β·KL(p(x) ‖ p(x_adv))``, ``KL(p‖q) = 1/N Σ_i Σ_k p_ik (log p_ik - log q_ik)``
           with ``p = softmax f(x)``, ``q = softmax f(x_adv)``; gradients flow through both
           (as in TRADES and the authors' trainer)
  ======== ==================================================================================

The model is called once on ``x`` (for tradeoff/trades) and once on ``x_adv``, in whatever mode
it is in: the trainer calls it in train mode, analyses usually in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .recipe import Recipe


def _upcast(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (bf16/fp16 autocast) are upcast to float32; float64 stays float64."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy against hard labels (N,) or soft-label probability rows (N, K).

    ``reduction``: ``mean`` (default), ``sum`` or ``none`` (per example)."""
    logits = _upcast(logits)
    if targets.dim() == 1 and not targets.is_floating_point():
        return F.cross_entropy(logits, targets.long(), reduction=reduction)
    per = -(targets.to(logits.dtype) * F.log_softmax(logits, dim=1)).sum(dim=1)
    return per.mean() if reduction == "mean" else (per.sum() if reduction == "sum" else per)


def kl_clean_adv(logits_clean: torch.Tensor, logits_adv: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``KL(softmax(clean) ‖ softmax(adv))`` per example (``reduction='none'``) or its batch mean."""
    logp = F.log_softmax(_upcast(logits_clean), dim=1)
    logq = F.log_softmax(_upcast(logits_adv), dim=1)
    kl = (logp.exp() * (logp - logq)).sum(dim=1)
    return kl if reduction == "none" else kl.mean()


def _as_recipe(recipe) -> Recipe:
    return recipe if isinstance(recipe, Recipe) else Recipe.from_dict(dict(recipe))


def weighted_mean(per_example: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``Σ w_i ℓ_i / Σ w_i`` (SAT's normalisation), or the plain mean without weights."""
    if weights is None:
        return per_example.mean()
    w = weights.to(per_example.dtype)
    return (w * per_example).sum() / w.sum().clamp_min(1e-12)


def loss_from_logits(recipe, logits_clean: torch.Tensor | None, logits_adv: torch.Tensor,
                     targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The recipe's loss from already computed logits (``logits_clean`` may be None for ``ce``).

    ``weights`` (per example, SAT's ``w_i = max_j t_ij``) weight the cross-entropy terms, normalised
    by their sum; the KL term of ``trades`` is weighted too only with ``recipe.sat_weighted_kl``."""
    recipe = _as_recipe(recipe)

    def ce(logits):
        return weighted_mean(cross_entropy(logits, targets, reduction="none"), weights)

    if recipe.loss == "ce":
        return ce(logits_adv)
    if logits_clean is None:
        raise ValueError(f"the {recipe.loss} loss needs the clean logits")
    if recipe.loss == "tradeoff":
        a = recipe.tradeoff_alpha
        return (1 - a) * ce(logits_clean) + a * ce(logits_adv)
    kl = kl_clean_adv(logits_clean, logits_adv, reduction="none")
    kl = weighted_mean(kl, weights) if recipe.sat_weighted_kl else kl.mean()
    return ce(logits_clean) + recipe.trades_beta * kl


def recipe_loss(recipe, model: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
    """The recipe's training loss (scalar, batch mean) for a fixed ``x_adv``; see the module docstring."""
    recipe = _as_recipe(recipe)
    logits_clean = model(x) if recipe.needs_clean_forward else None
    return loss_from_logits(recipe, logits_clean, model(x_adv), targets)


class PairForward(torch.nn.Module):
    """``forward(x_adv, x=None) -> (f(x) or None, f(x_adv))``: both forwards in one call.

    DistributedDataParallel synchronises gradients once per forward call, so the trainer wraps this
    module (not the bare model) in DDP when a loss needs two forwards; each forward keeps its own
    BatchNorm batch, exactly as two separate calls would.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x_adv, x=None):
        clean = self.model(x) if x is not None else None
        return clean, self.model(x_adv)


class KLObjective(torch.nn.Module):
    """Makes a CE-maximising attack maximise ``KL(p(x) ‖ p(x'))`` instead (sTRADES (F)).

    For a batch with labels ``y`` and clean probabilities ``p`` it returns logits ``z(x')`` with
    ``z_y = -KL(p ‖ p(x'))`` and ``z_j = 0`` otherwise, so that
    ``CE(z, y) = log(1 + (K-1)·exp(KL))``: increasing in the KL, with gradient
    ``σ·∇KL`` where ``σ = (K-1)e^KL / (1+(K-1)e^KL) ∈ [(K-1)/K, 1)``. Only meant for 1-step attacks
    on the whole batch (a multi-step attack that drops "successful" examples would misread it).
    """

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
        super().__init__()
        self.model = model
        from ..attacks.base import model_mode
        with torch.no_grad(), model_mode(model, "eval"):
            self.logits_clean = model(x).detach().float()
        self.y = y

    def forward(self, x_adv):
        if len(x_adv) != len(self.y):
            raise RuntimeError("KLObjective is only valid on the whole batch it was built for")
        kl = kl_clean_adv(self.logits_clean, self.model(x_adv), reduction="none")
        z = torch.zeros(len(kl), self.logits_clean.shape[1], device=kl.device, dtype=kl.dtype)
        return z.scatter(1, self.y.view(-1, 1), -kl.view(-1, 1))


__all__ = ["cross_entropy", "kl_clean_adv", "weighted_mean", "loss_from_logits", "recipe_loss", "PairForward", "KLObjective"]
