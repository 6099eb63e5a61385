"""Threat models: the geometry of l0, l1, l2 and l∞ bounded perturbations.

A :class:`ThreatModel` owns everything about the feasible set

    S(x) = { x' : ||x' - x||_p <= eps,  0 <= x' <= 1 }

the norm of a perturbation, the exact Euclidean projection onto the ball intersected with the box,
and the validity check that every evaluation runs on every adversarial example it reports.

Conventions (DESIGN.md):

* inputs are NCHW in [0, 1];
* the l0 budget counts **pixels**: a pixel whose channels change counts once, whatever the number of
  channels that change (as sparse-PGD and Sparse-RS do);
* l1, l2 and l∞ budgets are in [0, 1] units; ``parse_eps("8/255")`` is accepted everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

from .errors import LandscapeError

NORMS = ("l0", "l1", "l2", "linf")
_ALIASES = {
    "l0": "l0", "0": "l0",
    "l1": "l1", "1": "l1",
    "l2": "l2", "2": "l2",
    "linf": "linf", "l∞": "linf", "inf": "linf", "li": "linf", "l_inf": "linf", "linfty": "linf",
}


def parse_norm(norm: str) -> str:
    """Canonical norm name (``l0``, ``l1``, ``l2``, ``linf``) for a user's spelling of it."""
    key = str(norm).strip().lower()
    if key not in _ALIASES:
        raise LandscapeError(f"unknown norm {norm!r}; choose one of l0, l1, l2, linf")
    return _ALIASES[key]


def parse_eps(eps: str | float | int) -> float:
    """Parse a budget such as ``20``, ``0.5`` or ``8/255``."""
    if isinstance(eps, (int, float)):
        value = float(eps)
    else:
        text = str(eps).strip()
        try:
            value = float(Fraction(text)) if "/" in text else float(text)
        except (ValueError, ZeroDivisionError):
            raise LandscapeError(f"cannot read eps {eps!r}; give a number such as 20, 0.5 or 8/255") from None
    if not math.isfinite(value) or value <= 0:
        raise LandscapeError(f"eps must be a positive number, got {eps!r}")
    return value


def _bisect(fn, lo: torch.Tensor, hi: torch.Tensor, iters: int = 64) -> torch.Tensor:
    """Per-example bisection for the smallest t in [lo, hi] with fn(t) <= 0 (fn decreasing)."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        feasible = fn(mid) <= 0
        hi = torch.where(feasible, mid, hi)
        lo = torch.where(feasible, lo, mid)
    return hi


@dataclass(frozen=True)
class ThreatModel:
    """A perturbation budget ``eps`` in the ``norm`` ball, intersected with the [0,1] box.

    Example::

        >>> tm = ThreatModel("l0", 20)
        >>> x_adv = tm.project(x, x_adv)        # exact projection onto ball ∩ box
        >>> tm.norm_of(x_adv - x)               # pixels changed, per example
        >>> tm.is_valid(x, x_adv)               # bool per example
    """

    norm: str
    eps: float

    def __post_init__(self):
        object.__setattr__(self, "norm", parse_norm(self.norm))
        object.__setattr__(self, "eps", parse_eps(self.eps))
        if self.norm == "l0":
            if abs(self.eps - round(self.eps)) > 1e-9:
                raise LandscapeError(f"an l0 budget counts pixels and must be a whole number, got {self.eps}")
            object.__setattr__(self, "eps", float(round(self.eps)))
        if self.norm == "linf" and self.eps > 1:
            raise LandscapeError(f"an linf budget of {self.eps} is larger than the image range [0,1]")

    # ------------------------------------------------------------------ construction helpers
    @property
    def k(self) -> int:
        """The l0 budget as an integer number of pixels."""
        return int(self.eps)

    def to_dict(self) -> dict:
        return {"norm": self.norm, "eps": float(self.eps)}

    @classmethod
    def from_dict(cls, d: dict) -> "ThreatModel":
        return cls(d["norm"], d["eps"])

    def __str__(self) -> str:
        eps = int(self.eps) if self.norm == "l0" else (
            f"{round(self.eps * 255)}/255" if self.norm == "linf" and abs(self.eps * 255 - round(self.eps * 255)) < 1e-6
            else f"{self.eps:g}")
        return f"{self.norm}(eps={eps})"

    def max_eps(self, shape) -> float:
        """The largest meaningful budget for images of ``shape`` (C, H, W)."""
        c, h, w = shape[-3:]
        return {"l0": h * w, "l1": c * h * w, "l2": math.sqrt(c * h * w), "linf": 1.0}[self.norm]

    def check_shape(self, shape) -> "ThreatModel":
        """Raise a :class:`LandscapeError` if the budget is larger than the image allows."""
        limit = self.max_eps(shape)
        if self.eps > limit:
            c, h, w = shape[-3:]
            what = f"{h}x{w} = {h * w} pixels" if self.norm == "l0" else f"the largest {self.norm} norm ({limit:g})"
            raise LandscapeError(f"eps {self.eps:g} is larger than the image allows: images of shape {c}x{h}x{w} have {what}")
        return self

    # ------------------------------------------------------------------ geometry
    def norm_of(self, delta: torch.Tensor) -> torch.Tensor:
        """Per-example norm of a perturbation ``delta`` of shape (N, C, H, W)."""
        flat = delta.flatten(1)
        if self.norm == "l0":
            return (delta != 0).any(dim=1).flatten(1).sum(dim=1).to(delta.dtype)
        if self.norm == "l1":
            return flat.abs().sum(dim=1)
        if self.norm == "l2":
            return flat.norm(p=2, dim=1)
        return flat.abs().amax(dim=1)

    def project(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Exact Euclidean projection of ``x_adv`` onto ``{x' : ||x'-x|| <= eps, 0 <= x' <= 1}``.

        * l∞ and the box are separable: clip twice.
        * l0 (pixels): for each pixel the best in-box value is the clipped one; keeping pixel j saves
          ``||v_j||² - ||v_j - c_j||²`` of squared distance, so keep the ``eps`` pixels that save most.
        * l1 and l2: the KKT conditions give ``d_i = clip(shrink(v_i, λ), -x_i, 1-x_i)`` with
          soft-thresholding (l1) or scaling ``v/(1+λ)`` (l2); λ is found per example by bisection to
          machine precision, and the returned point is always feasible.
        """
        x = x.detach()
        v = (x_adv.detach() - x)
        lo, hi = -x, 1 - x
        if self.norm == "linf":
            d = torch.minimum(torch.maximum(v.clamp(-self.eps, self.eps), lo), hi)
            return x + d
        if self.norm == "l0":
            c = torch.minimum(torch.maximum(v, lo), hi)
            gain = (v.square() - (v - c).square()).sum(dim=1)  # N, H, W
            n, h, w = gain.shape
            k = min(self.k, h * w)
            keep = torch.zeros(n, h * w, dtype=torch.bool, device=x.device)
            top = gain.flatten(1).topk(k, dim=1).indices
            keep.scatter_(1, top, True)
            keep &= (c != 0).any(dim=1).flatten(1)
            return x + c * keep.view(n, 1, h, w)
        vd = v.double()
        lod, hid = lo.double(), hi.double()
        shape = (-1,) + (1,) * (v.dim() - 1)
        if self.norm == "l1":
            def d_of(lam):
                s = vd.sign() * (vd.abs() - lam.view(shape)).clamp_min(0)
                return torch.minimum(torch.maximum(s, lod), hid)

            def excess(lam):
                return d_of(lam).flatten(1).abs().sum(1) - self.eps

            upper = vd.flatten(1).abs().amax(1)
        else:
            def d_of(lam):
                return torch.minimum(torch.maximum(vd / (1 + lam.view(shape)), lod), hid)

            def excess(lam):
                return d_of(lam).flatten(1).norm(dim=1) - self.eps

            upper = (vd.flatten(1).norm(dim=1) / self.eps).clamp_min(1.0)
        zero = torch.zeros_like(upper)
        inside = excess(zero) <= 0
        lam = _bisect(excess, zero.clone(), upper.clone())
        lam = torch.where(inside, zero, lam)
        d = d_of(lam).to(v.dtype)
        # float32 rounding can push the norm a hair over eps: shrink the last ulp away
        over = self.norm_of(d) > self.eps
        if over.any():
            d[over] = d[over] * (self.eps / self.norm_of(d[over])).view((-1,) + (1,) * (v.dim() - 1)) * (1 - 1e-6)
        return x + d

    def is_valid(self, x: torch.Tensor, x_adv: torch.Tensor, rtol: float = 1e-5) -> torch.Tensor:
        """Bool per example: ``x_adv`` is in [0,1] and within the budget (l0 exactly, others to rtol)."""
        in_box = ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(dim=1)
        finite = torch.isfinite(x_adv).flatten(1).all(dim=1)
        size = self.norm_of(x_adv - x)
        if self.norm == "l0":
            within = size <= self.eps
        else:
            within = size <= self.eps * (1 + rtol) + 1e-7
        return in_box & within & finite

    def assert_valid(self, x: torch.Tensor, x_adv: torch.Tensor, what: str = "adversarial examples") -> None:
        """Raise if any example leaves the threat model: a result that breaks it must never be counted."""
        ok = self.is_valid(x, x_adv)
        if not bool(ok.all()):
            bad = int((~ok).sum())
            worst = float(self.norm_of(x_adv - x).max())
            raise LandscapeError(
                f"{bad} of {len(ok)} {what} are outside {self} or the [0,1] box (largest norm {worst:g}); "
                "they are not counted")
