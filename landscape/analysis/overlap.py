"""Where perturbations land: overlap of the pixel sets of two attacks on the same images.

The paper's second piece of evidence that catastrophic overfitting in l0 training is about
*locations*: the pixels that the 1-step attack perturbs are almost disjoint from those that
sparse-AutoAttack perturbs. For each image the perturbed pixel set is ``S = {(h, w) : max_c
|x_adv - x| > tol}`` (a pixel counts once, whatever its channels, as the l0 budget does), and

    IoU = |S₁ ∩ S₂| / |S₁ ∪ S₂|   (undefined, NaN, when both sets are empty),
    overlap rate = |S₁ ∩ S₂| / |S₂|   (NaN when S₂ is empty),

with S₁ the training attack's pixels and S₂ the strong attack's (sparse-AutoAttack's): the overlap
rate is the share of sAA's perturbed pixels that the training attack also chose, the quantity the
paper plots as a distribution over examples (Fig. 2b; its formula is not stated there, this is the
natural reading, see ``PAPER_PROTOCOL.md`` §6.4). The IoU is kept beside it.

Means are reported over two sets of images: ``both_succeed`` (images that both attacks turn into
misclassifications from a correct clean prediction — the locations that *work*) and ``all`` (every
image where at least one attack perturbed a pixel). The per-image table has both attacks' success
flags, so other subsets are one filter away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..attacks.base import run_attack
from ..partial import remove_empty
from .objective import predict_stats


def perturbed_pixels(x: torch.Tensor, x_adv: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
    """Bool (N, H, W): the pixels where any channel of ``x_adv`` differs from ``x`` by more than ``tol``."""
    return ((x_adv - x).abs() > tol).any(dim=1)


def pixel_iou(s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """Per-example IoU of two boolean masks (N, H, W); NaN where both are empty."""
    inter = (s1 & s2).flatten(1).sum(1).double()
    union = (s1 | s2).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float("nan")))


def overlap_rate(s_train: torch.Tensor, s_strong: torch.Tensor) -> torch.Tensor:
    """Per-example ``|S_train ∩ S_strong| / |S_strong|`` of two boolean masks (N, H, W); NaN where
    the strong attack perturbed no pixel."""
    inter = (s_train & s_strong).flatten(1).sum(1).double()
    den = s_strong.flatten(1).sum(1).double()
    return torch.where(den > 0, inter / den.clamp_min(1), torch.full_like(den, float("nan")))


def location_overlap(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack_a: Callable, attack_b: Callable,
                     *, batch_size: int = 256, seed: int = 0, tol: float = 0.0,
                     names: tuple[str, str] = ("onestep", "strong"), partial=None) -> tuple[pd.DataFrame, dict]:
    """Per-image pixel sets of two attacks and their IoU (see the module docstring). ``partial``: a
    folder where both attacks keep their finished batches (one subfolder each, named by ``names``), so
    that the same call again resumes (:func:`~landscape.attacks.base.run_attack`)."""
    na, nb = names
    _, clean_acc, clean_ok = predict_stats(model, x, y, batch_size)
    xa = run_attack(attack_a, model, x, y, batch_size, seed=seed, partial=None if partial is None else Path(partial) / na)
    xb = run_attack(attack_b, model, x, y, batch_size, seed=seed, partial=None if partial is None else Path(partial) / nb)
    if partial is not None:
        remove_empty(partial)           # both attacks complete: their folders are gone
    _, acc_a, ok_a = predict_stats(model, xa, y, batch_size)
    _, acc_b, ok_b = predict_stats(model, xb, y, batch_size)
    sa, sb = perturbed_pixels(x, xa, tol), perturbed_pixels(x, xb, tol)
    iou = pixel_iou(sa, sb)
    rate = overlap_rate(sa, sb)
    succ_a = (clean_ok & ~ok_a).cpu()
    succ_b = (clean_ok & ~ok_b).cpu()
    df = pd.DataFrame({
        "index": np.arange(len(x)), "label": y.cpu().numpy(), "clean_correct": clean_ok.cpu().numpy(),
        f"success_{na}": succ_a.numpy(), f"success_{nb}": succ_b.numpy(),
        f"pixels_{na}": sa.flatten(1).sum(1).cpu().numpy(), f"pixels_{nb}": sb.flatten(1).sum(1).cpu().numpy(),
        "intersection": (sa & sb).flatten(1).sum(1).cpu().numpy(), "union": (sa | sb).flatten(1).sum(1).cpu().numpy(),
        "iou": iou.cpu().numpy(), "overlap_rate": rate.cpu().numpy()})
    both = (succ_a & succ_b).numpy()
    iou_np = iou.cpu().numpy()

    rate_np = rate.cpu().numpy()

    def _mean(mask, vals=iou_np):
        v = vals[mask & ~np.isnan(vals)]
        return (float(v.mean()) if v.size else float("nan")), int(v.size)

    m_both, n_both = _mean(both)
    m_all, n_all = _mean(np.ones(len(x), dtype=bool))
    r_both, _ = _mean(both, rate_np)
    r_all, _ = _mean(np.ones(len(x), dtype=bool), rate_np)
    meta = {"mean_iou_both_succeed": m_both, "n_both_succeed": n_both, "mean_iou_all": m_all, "n_all": n_all,
            "mean_rate_both_succeed": r_both, "mean_rate_all": r_all,
            "rate_definition": "|S_train ∩ S_strong| / |S_strong| per image (S: perturbed pixels)",
            "clean_acc": clean_acc, f"acc_{na}": acc_a, f"acc_{nb}": acc_b, "n_examples": int(len(x)),
            f"attack_{na}": _cfg(attack_a), f"attack_{nb}": _cfg(attack_b), "tol": tol}
    return df, meta


def _cfg(attack):
    return attack.config() if hasattr(attack, "config") else repr(attack)
