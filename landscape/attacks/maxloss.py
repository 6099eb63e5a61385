"""Attacks that maximise the loss rather than stop at the first success: what a Hessian or a loss
surface of the *adversarial loss* needs.

:class:`ExactL0K1` (l0, k = 1)
    Exhaustive search: every pixel set to every corner of the colour cube ``{0,1}^C`` (784 × 2
    candidates for a 28×28 grey image, 1024 × 8 for CIFAR-10), keeping per example the candidate of
    highest cross-entropy (or the clean image when no candidate raises the loss). For a model whose
    loss is convex in one pixel's values (a linear model; in practice close to it for small nets)
    the maximum over the cube is at a corner, so the search is exact; for other models it is the
    exact maximum over the extreme values the sPGD/RS attacks also end at (magnitude 1 clips to 0 or 1).

:class:`MaxLoss` (any norm)
    Runs each stage on **every** example (no cascade on survivors, no early stop) and keeps per
    example the result of highest cross-entropy, the clean image included as a candidate, so the
    loss it reaches is at least the clean loss and at least every stage's. The stages are built
    with their loss-keeping options (sPGD: ``early_stop=False, track_best=True, loss="ce"``; PGD and
    APGD keep the best iterate of their run).

:class:`TiledSparsePGD`
    sPGD whose random start is drawn for the first ``n / tile`` examples and repeated ``tile`` times,
    and whose mask redraws (patience) are off: run on ``tile`` stacked copies of one batch (a batch of
    grid points, :mod:`landscape.analysis.batched`) it gives each copy exactly the perturbation the
    same seeded attack gives that batch alone.

Example::

    >>> x_adv = ExactL0K1()(model, x, y)                     # the highest-loss single pixel
    >>> x_adv = MaxLoss([SparsePGD(1, 100, early_stop=False, loss="ce")])(model, x, y)
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from ..errors import LandscapeError
from .base import Attack, attack_logits, attack_model, model_mode, no_param_grad, watch
from .spgd import SparsePGD


@torch.no_grad()
def _ce(model, x, y) -> torch.Tensor:
    return F.cross_entropy(model(x), y, reduction="none")


class ExactL0K1(Attack):
    """Exhaustive l0 attack at k = 1 (see the module docstring). ``chunk`` candidate images per
    forward (a few hundred keep a CPU's caches warm; thousands were 1.5-2x slower per image). A
    candidate that leaves its image unchanged (the pixel already at that corner: most of a
    Fashion-MNIST background) is skipped: its loss is the clean loss, which the search starts from."""

    name = "exact-l0"
    norms = ("l0",)
    deterministic = True

    def __init__(self, eps: float = 1, *, chunk: int = 512, norm: str = "l0", mode: str = "eval"):
        super().__init__(eps, norm, mode=mode)
        if self.threat.k != 1:
            raise LandscapeError(f"the exhaustive l0 attack searches single pixels (eps 1), got eps {self.threat.k}")
        self.chunk = int(chunk)

    @torch.no_grad()
    def perturb(self, model, x, y):
        n, c, h, w = x.shape
        corners = torch.tensor(list(itertools.product([0.0, 1.0], repeat=c)), dtype=x.dtype, device=x.device)
        flat = x.reshape(n, c, h * w)
        unchanged = (flat.transpose(1, 2).unsqueeze(2) == corners.view(1, 1, -1, c)).all(-1)  # (n, pixels, corners)
        img, pix, cor = (~unchanged).nonzero(as_tuple=True)   # image-major, then pixel, then corner
        best, best_loss = x.clone(), _ce(model, x, y)
        for s in range(0, len(img), self.chunk):
            i, p, q = img[s:s + self.chunk], pix[s:s + self.chunk], cor[s:s + self.chunk]
            xs = flat[i].clone()
            xs[torch.arange(len(i), device=x.device), :, p] = corners[q]
            loss = F.cross_entropy(model(xs.view(-1, c, h, w)), y[i], reduction="none")
            top = torch.full_like(best_loss, -float("inf")).scatter_reduce(0, i, loss, "amax")
            hit = (loss == top[i]) & (loss > best_loss[i])
            if not hit.any():
                continue
            order = torch.arange(len(i), device=x.device)
            first = torch.full((n,), len(i), device=x.device).scatter_reduce(0, i[hit], order[hit], "amin")
            won = (first < len(i)).nonzero().squeeze(1)       # the first best candidate of each image
            best[won] = xs[first[won]].view(-1, c, h, w)
            best_loss[won] = loss[first[won]]
        return best

    def config(self) -> dict:
        return {**super().config(), "search": "every pixel x every colour-cube corner"}


class MaxLoss(Attack):
    """Run every stage on every example; keep per example the highest cross-entropy (clean included).

    After a run, ``last_logits`` holds the model's logits on the examples returned (from the
    forwards the cascade ran anyway), so that a loss surface needs no forward of its own there."""

    name = "maxloss"
    keeps_logits = True

    def __init__(self, stages: list[Attack], *, mode: str = "eval"):
        if not stages:
            raise LandscapeError("MaxLoss needs at least one attack")
        t = stages[0].threat
        for a in stages:
            if a.threat != t:
                raise LandscapeError(f"every stage must share one threat model; {a.name} has {a.threat}, not {t}")
        super().__init__(t.eps, t.norm, mode=mode)
        self.stages = list(stages)
        self.norms = (t.norm,)

    @property
    def deterministic(self) -> bool:
        return all(getattr(a, "deterministic", False) for a in self.stages)

    def perturb(self, model, x, y):
        best = x.clone()
        with torch.no_grad():
            best_logits = model(x)
        best_loss = F.cross_entropy(best_logits, y, reduction="none")
        for i, a in enumerate(self.stages, 1):
            a.last_logits = None
            with watch(model, a, a.name, i, len(self.stages)):  # progress of each stage
                xa = a.perturb(model, x, y).detach()
            self.threat.assert_valid(x, xa, what=f"{a.name} examples")
            logits = attack_logits(a, len(x))
            if logits is None:
                with torch.no_grad():
                    logits = model(xa)
            loss = F.cross_entropy(logits, y, reduction="none")
            better = loss > best_loss
            best[better] = xa[better]
            best_loss = torch.where(better, loss, best_loss)
            best_logits = torch.where(better.view(-1, 1), logits, best_logits)
        self.last_logits = best_logits
        return best

    def __call__(self, model, x, y):
        self.threat.check_shape(x.shape)
        with model_mode(model, self.mode), no_param_grad(model):
            net = attack_model(model, x, self.mode)  # one channels_last copy for every stage (CPU)
            return self.perturb(net, x.detach(), y.detach()).detach()

    def config(self) -> dict:
        return {"attack": self.name, "norm": self.norm, "eps": self.eps, "keeps": "highest cross-entropy per example",
                "stages": [a.config() if hasattr(a, "config") else a.name for a in self.stages]}


class StrongMaxLoss(MaxLoss):
    """The strong, loss-keeping attack of each norm, for the Hessian and for surfaces of the adversarial loss.

    ===========  =====================================================================================
    l0, k = 1    :class:`ExactL0K1` (exhaustive; ``steps``/``n_queries`` unused)
    l0, k > 1    sPGD unprojected and projected (``steps``, default 300, no early stop, CE, best
                 iterate kept) and Sparse-RS (``n_queries``, default 1000)
    l1           APGD-l1 (``steps``, default 100, CE)
    l2, l∞       PGD (``steps``, default 50, CE, best iterate kept)
    ===========  =====================================================================================

    every stage run on every example, the highest cross-entropy kept (the clean image included).
    """

    def __init__(self, eps: float, norm: str = "l0", *, steps: int | None = None, n_queries: int | None = None,
                 seed: int | None = None, mode: str = "eval"):
        from ..threat import ThreatModel
        from .apgd import APGDL1
        from .pgd import PGD
        from .rs import SparseRS
        t = ThreatModel(norm, eps)
        if t.norm == "l0" and t.k == 1:
            stages = [ExactL0K1(1, mode=mode)]
        elif t.norm == "l0":
            s = int(steps or 300)
            stages = [SparsePGD(t.eps, s, early_stop=False, track_best=True, loss="ce", seed=seed, mode=mode),
                      SparsePGD(t.eps, s, projected=True, early_stop=False, track_best=True, loss="ce",
                                seed=None if seed is None else seed + 1, mode=mode),
                      SparseRS(t.eps, n_queries=int(n_queries or 1000), seed=seed, mode=mode)]
        elif t.norm == "l1":
            stages = [APGDL1(t.eps, int(steps or 100), loss="ce", seed=seed, mode=mode)]
        else:
            stages = [PGD(t.eps, t.norm, int(steps or 50), loss="ce", seed=seed, mode=mode)]
        super().__init__(stages, mode=mode)
        self.name = "maxloss"


class TiledSparsePGD(SparsePGD):
    """sPGD for ``tile`` stacked copies of one batch: the random start of the first ``n/tile`` examples
    repeated, no mask redraws (``patience`` off), no early stop (see the module docstring)."""

    tileable = True

    def __init__(self, eps: float = 20, steps: int = 100, *, tile: int = 1, **kwargs):
        kwargs.setdefault("early_stop", False)
        kwargs.setdefault("track_best", True)
        kwargs.setdefault("loss", "ce")
        kwargs["patience"] = int(steps) + 2
        super().__init__(eps, steps, **kwargs)
        self.tile = int(tile)

    def _tiled(self, x, draw):
        if self.tile <= 1:
            return draw(x)
        n = x.shape[0]
        if n % self.tile:
            raise LandscapeError(f"a tiled batch of {n} examples does not split into {self.tile} copies")
        first = draw(x[: n // self.tile])
        return first.repeat(self.tile, *([1] * (first.dim() - 1)))

    def _init_p(self, x, gen):
        if self.tile <= 1:
            return super()._init_p(x, gen)
        base = self._tiled(x, lambda xs: super(TiledSparsePGD, self)._init_p(xs, gen))
        return base

    def _init_m(self, x, gen):  # an instance method here (a staticmethod in SparsePGD)
        return self._tiled(x, lambda xs: SparsePGD._init_m(xs, gen))

    def config(self) -> dict:
        return {**super().config(), "patience": "off", "tile": self.tile}


__all__ = ["ExactL0K1", "MaxLoss", "StrongMaxLoss", "TiledSparsePGD"]
