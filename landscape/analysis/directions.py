"""Directions in weight space for surfaces and Lipschitz probes (Li et al. 2018, filter normalisation).

A direction is a dict ``parameter name -> tensor`` over the model's trainable parameters.

Filter normalisation: draw ``d ~ N(0, I)`` and, for every parameter with two or more dimensions, rescale
each filter ``d[i]`` (a slice along the first axis: a convolution's output channel, a linear layer's
row) to the norm of the matching weight filter, ``d[i] ← d[i] · ||θ[i]|| / ||d[i]||``. One-dimensional
parameters (biases, BatchNorm weights and biases) are zeroed by default, so the plane does not move
them; with ``include_bn=True`` each is kept and rescaled as a whole to the norm of its parameter (so a
BatchNorm scale moves by the same relative amount as a filter). BatchNorm running statistics are
buffers, not parameters: directions never move them.

Direction files (``save_directions``) are plain ``torch.save`` dicts loadable with
``weights_only=True``: ``{"format": "landscape-directions", "names": [...], "directions": [d1, d2],
"meta": {...}}``; loading checks every name and shape against the model, so two checkpoints of the
same architecture can be compared on one plane.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ..errors import LandscapeError

FORMAT = "landscape-directions"
NORMALISATIONS = ("filter", "layer", "unit", "none")


def _params(model_or_params) -> dict:
    if isinstance(model_or_params, nn.Module):
        return {n: p.detach() for n, p in model_or_params.named_parameters() if p.requires_grad}
    return {n: p.detach() for n, p in dict(model_or_params).items()}


def normalize_direction(direction: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor],
                        norm: str = "filter", include_bn: bool = False) -> dict:
    """Rescale ``direction`` against ``weights``: ``filter`` (per filter), ``layer`` (per parameter
    tensor), ``unit`` (the whole direction to Euclidean norm 1) or ``none``. One-dimensional parameters
    are zeroed unless ``include_bn`` (then rescaled as a whole for ``filter``/``layer``)."""
    if norm not in NORMALISATIONS:
        raise LandscapeError(f"unknown direction normalisation {norm!r}; choose one of {', '.join(NORMALISATIONS)}")
    out = {}
    for k, d in direction.items():
        w = weights[k]
        d = d.clone()
        if d.dim() <= 1:
            if not include_bn:
                d.zero_()
            elif norm in ("filter", "layer"):
                d.mul_(w.norm() / d.norm().clamp_min(1e-12))
        elif norm == "filter":
            dn = d.flatten(1).norm(dim=1).clamp_min(1e-12)
            wn = w.flatten(1).norm(dim=1)
            d.mul_((wn / dn).view((-1,) + (1,) * (d.dim() - 1)))
        elif norm == "layer":
            d.mul_(w.norm() / d.norm().clamp_min(1e-12))
        out[k] = d
    if norm == "unit":
        total = direction_norm(out)
        if total > 0:
            out = {k: v / total for k, v in out.items()}
    return out


def direction_norm(direction: Mapping[str, torch.Tensor]) -> float:
    """The Euclidean norm of a direction over all its tensors."""
    return float(torch.sqrt(sum((v.double() ** 2).sum() for v in direction.values())))


def direction_dot(d1: Mapping[str, torch.Tensor], d2: Mapping[str, torch.Tensor]) -> float:
    return float(sum((d1[k].double() * d2[k].double()).sum() for k in d1))


def random_direction(model_or_params, *, seed: int | None = None, generator: torch.Generator | None = None,
                     norm: str = "filter", include_bn: bool = False) -> dict:
    """A Gaussian direction, normalised with ``norm`` (see :func:`normalize_direction`).

    The draw uses a CPU generator (``seed`` or ``generator``), so the same seed gives the same direction
    on any device; parameters are visited in ``named_parameters`` order.
    """
    weights = _params(model_or_params)
    g = generator if generator is not None else torch.Generator().manual_seed(0 if seed is None else int(seed))
    raw = {k: torch.randn(w.shape, generator=g, dtype=torch.float32).to(w.device, w.dtype) for k, w in weights.items()}
    return normalize_direction(raw, weights, norm=norm, include_bn=include_bn)


def random_directions(model_or_params, k: int = 2, *, seed: int = 0, norm: str = "filter",
                      include_bn: bool = False) -> list[dict]:
    """``k`` independent directions from one seeded generator (the same plane for the same seed)."""
    g = torch.Generator().manual_seed(int(seed))
    return [random_direction(model_or_params, generator=g, norm=norm, include_bn=include_bn) for _ in range(k)]


def hessian_directions(objective, k: int = 2, *, seed: int = 0, scale: str = "weights",
                       tol: float | None = None) -> tuple[list[dict], dict]:
    """The top-``k`` Hessian eigenvectors of ``objective``'s loss at its centre, as directions.

    Uses :mod:`landscape.analysis.hessian` (operator) and Lanczos top-k from
    :mod:`landscape.analysis.estimators`. For the adversarial modes the Hessian is of the loss at the
    perturbations of the centre held fixed (the Hessian of the ``recomputed`` loss is not defined where
    the perturbations jump). Eigenvectors are unit vectors; with ``scale="weights"`` (default) each is
    rescaled to the norm a filter-normalised direction has (``sqrt(Σ ||θ_l||²)`` over the parameters
    with two or more dimensions), so one ``--range`` means the same distance for both kinds of plane;
    ``scale="unit"`` keeps them unit; ``tol`` is Lanczos's relative tolerance (None: its default).
    Returns ``(directions, {"eigenvalues": [...], ...})``.
    """
    try:
        from .estimators import lanczos_topk
        from .hessian import hessian_operator
    except ImportError:
        raise LandscapeError("`directions` hessian needs landscape.analysis.hessian, which is not available") from None
    model = objective.model
    if objective.mode == "clean":
        op = hessian_operator(model, objective.x, objective.y, loss="clean", batch_size=objective.batch_size,
                              targets=objective.targets)
    else:
        objective.seed = seed
        x_adv = objective.fixed_perturbations()
        op = hessian_operator(model, objective.x, objective.y, loss="adversarial", x_adv=x_adv,
                              batch_size=objective.batch_size, targets=objective.targets)
    res = lanczos_topk(op, k=k, seed=seed, tol=tol)
    vecs = np.asarray(res.eigenvectors)
    target = float(np.sqrt(sum(float(w.double().norm() ** 2) for w in objective.center.values() if w.dim() > 1)))
    out = []
    for j in range(k):
        parts = dict(zip(op.names, op.to_list(vecs[:, j])))
        d = {}
        for n, c in objective.center.items():
            d[n] = parts[n].to(c.device, c.dtype) if n in parts else torch.zeros_like(c)
        if scale == "weights":
            nrm = direction_norm(d)
            d = {n: v * (target / max(nrm, 1e-30)) for n, v in d.items()}
        out.append(d)
    return out, {"eigenvalues": [float(v) for v in np.asarray(res.eigenvalues)[:k]],
                 "residuals": [float(v) for v in np.asarray(res.residuals)[:k]],
                 "converged": [bool(v) for v in np.asarray(res.converged)[:k]], "scale": scale}


# ---------------------------------------------------------------------------- files
def save_directions(path: str | Path, directions: list[Mapping[str, torch.Tensor]], meta: dict | None = None) -> Path:
    """Save directions atomically as a ``weights_only``-loadable file with parameter names."""
    from ..checkpoint import atomic_save
    names = list(directions[0])
    obj = {"format": FORMAT, "version": 1, "names": names,
           "directions": [{k: v.detach().cpu().clone() for k, v in d.items()} for d in directions],
           "meta": dict(meta or {})}
    return atomic_save(obj, path)


def load_directions(path: str | Path, model_or_params=None, k: int | None = None) -> tuple[list[dict], dict]:
    """Load a direction file; check every name and shape against ``model_or_params`` if given."""
    from ..checkpoint import read_weights_only
    try:
        data = read_weights_only(path)
    except LandscapeError as e:
        raise LandscapeError(str(e).replace("checkpoint", "directions file")) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LandscapeError(f"{path} is not a landscape directions file (save one with `save_directions`)")
    dirs = data["directions"]
    if k is not None and len(dirs) < k:
        raise LandscapeError(f"{path} holds {len(dirs)} direction(s) but {k} are needed")
    if model_or_params is not None:
        weights = _params(model_or_params)
        saved = set(dirs[0])
        if saved != set(weights):
            missing = sorted(set(weights) - saved)[:3]
            extra = sorted(saved - set(weights))[:3]
            raise LandscapeError(f"{path} does not fit this model: its parameter names differ "
                                 f"(missing {missing or 'none'}, unexpected {extra or 'none'})")
        for d in dirs:
            for name, w in weights.items():
                if tuple(d[name].shape) != tuple(w.shape):
                    raise LandscapeError(f"{path} does not fit this model: {name} has shape {tuple(d[name].shape)} "
                                         f"in the file and {tuple(w.shape)} in the model")
        dirs = [{n: d[n].to(w.device, w.dtype) for n, w in weights.items()} for d in dirs]
    return (dirs[:k] if k else dirs), dict(data.get("meta") or {})
