"""Cascades of attacks run on the survivors, and sparse-AutoAttack (sAA) for l0.

:class:`Cascade` runs its stages in order; each stage attacks only the examples that are still
correctly classified after the clean pass and all earlier stages. An example counts as robust only if
it survives every stage; :meth:`Cascade.run` reports the survivors after each stage.

sparse-AutoAttack (Zhong & Liu 2024) is the cascade

    1. sparse-PGD, unprojected gradient (white box),
    2. sparse-PGD, projected gradient (white box),
    3. Sparse-RS (black box), minimising cross-entropy (``rs_loss="ce"``),

all at the same budget k. Defaults follow the authors' sAA configuration: ``steps=10000``
sPGD iterations per white-box stage and ``n_queries=10000`` Sparse-RS queries with ``p_init=0.8``
and the cross-entropy loss. The authors' ``saa.py`` runs the projected stage first; the order does
not change which examples a cascade can break (each stage attacks the survivors of the others), but
the unprojected stage breaks far more, so running it first leaves fewer survivors for the
projected stage's full budget (measured in ``benchmarks/RESULTS.md``, "against the references").
These are expensive on a CPU; pass smaller ``steps``/``n_queries`` for quick looks and say so.

Example::

    >>> saa = SparseAutoAttack(eps=20, steps=10000, n_queries=10000)
    >>> x_adv = saa(model, x, y)                     # worst case over the three stages
    >>> res = saa.run(model, x, y)                   # per-stage survivors, times
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..errors import LandscapeError
from .base import Attack, attack_model, model_mode, no_param_grad, watch
from .rs import SparseRS
from .spgd import SparsePGD


@dataclass
class CascadeResult:
    """What a cascade found on one batch."""

    x_adv: torch.Tensor                     # worst case: the first successful example, else the last try
    clean_correct: torch.Tensor             # bool (N,)
    survivors: list[torch.Tensor] = field(default_factory=list)   # bool (N,) after each stage
    stage_names: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


class Cascade(Attack):
    """Run ``attacks`` in order, each on the survivors of the previous ones (all share one threat model)."""

    name = "cascade"

    def __init__(self, attacks: list[tuple[str, Attack]], *, mode: str = "eval"):
        if not attacks:
            raise LandscapeError("a cascade needs at least one attack")
        first = attacks[0][1].threat
        for nm, a in attacks:
            if a.threat != first:
                raise LandscapeError(f"every stage of a cascade must share one threat model; {nm} has {a.threat}, not {first}")
        super().__init__(first.eps, first.norm, mode=mode)
        self.stages = list(attacks)

    def run(self, model, x, y) -> CascadeResult:
        self.threat.check_shape(x.shape)
        x, y = x.detach(), y.detach()
        with model_mode(model, self.mode), no_param_grad(model):
            model = attack_model(model, x, self.mode)  # one channels_last copy for every stage (CPU)
            with torch.no_grad():
                alive = model(x).argmax(1) == y
            res = CascadeResult(x_adv=x.clone(), clean_correct=alive.clone())
            for i, (nm, attack) in enumerate(self.stages, 1):
                t0 = time.perf_counter()
                idx = alive.nonzero().squeeze(1)
                if idx.numel() > 0:
                    with watch(model, attack, nm, i, len(self.stages)):  # progress of each stage
                        xa = attack.perturb(model, x[idx], y[idx]).detach()
                    self.threat.assert_valid(x[idx], xa, what=f"{nm} adversarial examples")
                    with torch.no_grad():
                        fooled = model(xa).argmax(1) != y[idx]
                    res.x_adv[idx] = xa                  # survivors keep the latest try
                    alive[idx[fooled]] = False
                if x.is_cuda:
                    torch.cuda.synchronize(x.device)
                res.survivors.append(alive.clone())
                res.stage_names.append(nm)
                res.seconds.append(time.perf_counter() - t0)
        return res

    def perturb(self, model, x, y):
        return self.run(model, x, y).x_adv

    def __call__(self, model, x, y):
        return self.run(model, x, y).x_adv

    def config(self) -> dict:
        out = {"attack": self.name, "norm": self.norm, "eps": self.eps}
        out["stages"] = {nm: a.config() for nm, a in self.stages}
        return out


class SparseAutoAttack(Cascade):
    """sparse-AutoAttack: sPGD (unprojected) -> sPGD (projected) -> Sparse-RS, on survivors."""

    name = "saa"

    def __init__(self, eps: float = 20, steps: int = 10000, n_queries: int = 10000, *, p_init: float = 0.8,
                 rs_loss: str = "ce", seed: int | None = None, norm: str = "l0", mode: str = "eval", **spgd_kwargs):
        s = lambda i: None if seed is None else seed + i  # noqa: E731
        stages = [
            ("spgd", SparsePGD(eps, steps, projected=False, seed=s(0), norm=norm, mode=mode, **spgd_kwargs)),
            ("spgd-projected", SparsePGD(eps, steps, projected=True, seed=s(1), norm=norm, mode=mode, **spgd_kwargs)),
            ("rs", SparseRS(eps, n_queries, p_init=p_init, loss=rs_loss, seed=s(2), norm=norm, mode=mode)),
        ]
        super().__init__(stages, mode=mode)
        self.steps = int(steps)
        self.n_queries = int(n_queries)
        self.seed = seed
