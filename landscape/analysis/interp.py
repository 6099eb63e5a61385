"""Interpolation sweeps: along a perturbation (the paper's Table 2) or between two sets of weights.

**Perturbation interpolation** (Zhong et al. 2025, Table 2). The 1-step attack gives ``δ = x_adv - x``
at the budget ε; for each ``α`` the model is evaluated on ``x + α·δ``. Because the attack keeps
``x + δ`` in [0,1] and ``α ∈ [0, 1]``, ``x + α·δ`` is in the box and in the budget (an l0 mask is
unchanged, a norm shrinks); values of α outside [0, 1] are clipped to the box. α = 0 is the clean
accuracy, α = 1 the 1-step robust accuracy. The strong attack (sparse-AutoAttack for l0) on the same
images is a row of its own (``kind="strong"``, ``alpha`` empty). In the paper the accuracy is *not*
monotone in α for l0 models that suffered catastrophic overfitting (successful adversarial examples
are not found by scaling the 1-step perturbation), and sAA accuracy is near 0.

**Weight interpolation** ``θ(α) = (1-α)·θ₁ + α·θ₂`` between two checkpoints of one architecture.
BatchNorm: by default the running statistics are interpolated like the weights
(``bn="interpolate"``: cheap, but the mean/variance of an interpolated network is not the
interpolation of the statistics); ``bn="recalibrate"`` resets them and re-estimates them at every α
with forward passes in train mode over training images (cumulative average, no gradient). Integer
buffers (``num_batches_tracked``) are taken from θ₁.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from ..attacks.base import model_mode, run_attack
from ..errors import LandscapeError
from ..partial import remove_empty
from .objective import predict_stats


def interpolate_perturbations(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Callable,
                              alphas: Sequence[float], *, strong_attack: Callable | None = None,
                              batch_size: int = 256, seed: int = 0, partial=None) -> tuple[pd.DataFrame, dict]:
    """Accuracy and loss on ``x + α·δ`` for each α, plus the strong attack's row (see module doc).
    ``partial``: a folder where both attacks keep their finished batches (``onestep/``, ``strong/``),
    so that the same call again resumes (:func:`~landscape.attacks.base.run_attack`)."""
    from ..validate import values
    alphas = values("alpha", alphas)  # finite, at most MAX_POINTS: checked before the attack
    part = (lambda role: None) if partial is None else (lambda role: Path(partial) / role)
    x_adv = run_attack(attack, model, x, y, batch_size, seed=seed, partial=part("onestep"))
    delta = x_adv - x
    rows = []
    for a in alphas:
        xi = (x + float(a) * delta).clamp(0, 1)
        loss, acc, _ = predict_stats(model, xi, y, batch_size)
        rows.append({"kind": "interp", "alpha": float(a), "acc": acc, "loss": loss})
    meta = {"attack": _cfg(attack), "n_examples": int(len(x)),
            "perturbed_pixels_mean": float((delta != 0).any(dim=1).flatten(1).sum(1).float().mean()) if len(x) else 0.0}
    if strong_attack is not None:
        xs = run_attack(strong_attack, model, x, y, batch_size, seed=seed, partial=part("strong"))
        loss, acc, _ = predict_stats(model, xs, y, batch_size)
        rows.append({"kind": "strong", "alpha": float("nan"), "acc": acc, "loss": loss})
        meta["strong_attack"] = _cfg(strong_attack)
        meta["strong_acc"] = acc
    if partial is not None:
        remove_empty(partial)           # both attacks complete: their folders are gone
    clean = predict_stats(model, x, y, batch_size)
    onestep = predict_stats(model, x_adv, y, batch_size)
    meta.update({"clean_acc": clean[1], "onestep_acc": onestep[1]})
    return pd.DataFrame(rows, columns=["kind", "alpha", "acc", "loss"]), meta


def _cfg(attack) -> dict | str:
    return attack.config() if hasattr(attack, "config") else repr(attack)


def interpolate_state(sd1: dict, sd2: dict, alpha: float) -> dict:
    """``(1-α)·sd1 + α·sd2`` for floating tensors; other tensors from ``sd1``."""
    if set(sd1) != set(sd2):
        raise LandscapeError("the two checkpoints have different parameters; interpolate models of one architecture")
    out = {}
    for k, v in sd1.items():
        w = sd2[k]
        if tuple(v.shape) != tuple(w.shape):
            raise LandscapeError(f"the two checkpoints differ in {k}: shapes {tuple(v.shape)} and {tuple(w.shape)}")
        out[k] = (1 - alpha) * v + alpha * w.to(v.device) if v.is_floating_point() else v.clone()
    return out


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x_train: torch.Tensor, batch_size: int = 256) -> int:
    """Reset BatchNorm running statistics and re-estimate them on ``x_train`` (train-mode forwards,
    cumulative average). Returns the number of BatchNorm layers touched."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    momenta = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    try:
        with model_mode(model, "train"):
            for i in range(0, len(x_train), batch_size):
                model(x_train[i:i + batch_size])
    finally:
        for m, mom in momenta:
            m.momentum = mom
    return len(bns)


def interpolate_weights(model1: nn.Module, model2: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        alphas: Sequence[float], *, attack: Callable | None = None, bn: str = "interpolate",
                        x_train: torch.Tensor | None = None, batch_size: int = 256, seed: int = 0
                        ) -> tuple[pd.DataFrame, dict]:
    """Clean (and, with ``attack``, recomputed adversarial) loss and accuracy along ``(1-α)θ₁ + αθ₂``."""
    if bn not in ("interpolate", "recalibrate"):
        raise LandscapeError(f"unknown BatchNorm handling {bn!r}; use interpolate or recalibrate")
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model1.modules())
    if bn == "recalibrate" and has_bn and x_train is None:
        raise LandscapeError("`bn`='recalibrate' needs training images in `x_train`")
    sd1 = {k: v.detach().clone() for k, v in model1.state_dict().items()}
    sd2 = {k: v.detach().clone() for k, v in model2.state_dict().items()}
    interpolate_state(sd1, sd2, 0.0)  # shape check before any work
    from ..validate import values
    alphas = values("alpha", alphas)
    work = copy.deepcopy(model1)
    rows = []
    for a in alphas:
        work.load_state_dict(interpolate_state(sd1, sd2, float(a)))
        if bn == "recalibrate" and has_bn:
            recalibrate_bn(work, x_train, batch_size)
        work.eval()
        loss, acc, _ = predict_stats(work, x, y, batch_size)
        row = {"alpha": float(a), "loss": loss, "acc": acc}
        if attack is not None:
            xa = run_attack(attack, work, x, y, batch_size, seed=seed)
            row["adv_loss"], row["adv_acc"], _ = predict_stats(work, xa, y, batch_size)
        rows.append(row)
    meta = {"bn": bn if has_bn else "none (no BatchNorm)", "n_examples": int(len(x)),
            "attack": _cfg(attack) if attack is not None else None, "mode": "recomputed" if attack else "clean"}
    return pd.DataFrame(rows), meta
