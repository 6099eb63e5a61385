"""Attacks: ``attack(model, x, y) -> x_adv``, inputs in [0,1], always inside the threat model.

See :mod:`landscape.attacks.base` for the protocol. Concrete attacks are registered in
:data:`ATTACKS` by name and built with :func:`build_attack`::

    >>> attack = build_attack("spgd", "l0", 20, steps=300)
    >>> x_adv = attack(model, x, y)

Registry names

    =================  =====================  ==========================================================
    name               norms                  what
    =================  =====================  ==========================================================
    spgd               l0                     sparse-PGD, unprojected gradient (300 steps)
    spgd-projected     l0                     sparse-PGD, projected gradient (300 steps)
    rs                 l0                     Sparse-RS random search (10,000 queries)
    saa                l0                     sparse-AutoAttack cascade (spgd, spgd-projected, rs)
    pgd                linf, l2               PGD with restarts (50 steps)
    apgd               l1                     APGD-l1 (100 steps)
    fgsm               linf, l2               FGSM (one step, projected)
    nfgsm              linf, l2               N-FGSM (noise 2 eps, step eps, NOT projected: training)
    onestep-l1         l1                     one-step l1 attack (Fast-EG-l1 style)
    spgd1              l0                     one-step sparse-PGD with random start (training)
    nspgd1             l0                     random sparse noise + one sPGD step (NOT projected: training)
    =================  =====================  ==========================================================

All but ``nfgsm`` and ``nspgd1`` (whose ``project`` flag defaults to False, as N-FGSM's does) return
points inside their :class:`~landscape.threat.ThreatModel`.
"""

from __future__ import annotations

from ..errors import LandscapeError
from ..threat import parse_norm
from .apgd import APGDL1
from .base import Attack, model_mode, no_param_grad
from .fgsm import FGSM, NFGSM
from .onestep_l1 import OneStepL1
from .pgd import PGD
from .rs import SparseRS
from .saa import Cascade, CascadeResult, SparseAutoAttack
from .spgd import NoisySparsePGD, SparsePGD


def _spgd1(eps, norm="l0", **kw):
    kw.setdefault("steps", 1)
    kw.setdefault("early_stop", False)
    kw.setdefault("track_best", False)
    kw.setdefault("random_start", True)
    return SparsePGD(eps, norm=norm, **kw)


def _spgd_projected(eps, norm="l0", **kw):
    kw["projected"] = True
    return SparsePGD(eps, norm=norm, **kw)


#: name -> (factory(eps, norm=..., **kwargs), norms it attacks)
ATTACKS = {
    "spgd": (lambda eps, norm="l0", **kw: SparsePGD(eps, norm=norm, **kw), ("l0",)),
    "spgd-projected": (_spgd_projected, ("l0",)),
    "rs": (lambda eps, norm="l0", **kw: SparseRS(eps, norm=norm, **kw), ("l0",)),
    "saa": (lambda eps, norm="l0", **kw: SparseAutoAttack(eps, norm=norm, **kw), ("l0",)),
    "pgd": (lambda eps, norm="linf", **kw: PGD(eps, norm, **kw), ("linf", "l2")),
    "apgd": (lambda eps, norm="l1", **kw: APGDL1(eps, norm=norm, **kw), ("l1",)),
    "fgsm": (lambda eps, norm="linf", **kw: FGSM(eps, norm, **kw), ("linf", "l2")),
    "nfgsm": (lambda eps, norm="linf", **kw: NFGSM(eps, norm, **kw), ("linf", "l2")),
    "onestep-l1": (lambda eps, norm="l1", **kw: OneStepL1(eps, norm=norm, **kw), ("l1",)),
    "spgd1": (_spgd1, ("l0",)),
    "nspgd1": (lambda eps, norm="l0", **kw: NoisySparsePGD(eps, norm=norm, **kw), ("l0",)),
}

#: keyword names that some attacks call differently; build_attack translates them
_ALIASES = {"rs": {"steps": "n_queries"}}


def build_attack(name: str, norm: str, eps: float, **kwargs) -> Attack:
    """Build the attack registered as ``name`` for ``norm`` and budget ``eps``.

    Keyword arguments go to the attack's constructor; ``None`` values are dropped so that callers
    can pass optional CLI options straight through. For ``rs``, ``steps`` means ``n_queries``.
    """
    key = str(name).strip().lower()
    if key not in ATTACKS:
        raise LandscapeError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    factory, norms = ATTACKS[key]
    norm = parse_norm(norm)
    if norm not in norms:
        raise LandscapeError(f"attack {key} is for {'/'.join(norms)} perturbations, not {norm}")
    kw = {k: v for k, v in kwargs.items() if v is not None}
    for a, b in _ALIASES.get(key, {}).items():
        if a in kw:
            kw[b] = kw.pop(a)
    try:
        return factory(eps, norm=norm, **kw)
    except TypeError as e:
        raise LandscapeError(f"attack {key} does not accept these options ({e})") from None


def default_attack(norm: str, eps: float, strong: bool = True, **kwargs) -> Attack:
    """The natural evaluation attack for ``norm``: saa (l0), pgd (l∞, l2), apgd (l1).

    ``strong=False`` gives a cheaper version for monitoring during training: sPGD (l0, 100 steps),
    PGD-10 (l∞, l2), APGD-l1 with 20 steps.
    """
    norm = parse_norm(norm)
    if strong:
        name = {"l0": "saa", "l1": "apgd", "l2": "pgd", "linf": "pgd"}[norm]
        return build_attack(name, norm, eps, **kwargs)
    name, steps = {"l0": ("spgd", 100), "l1": ("apgd", 20), "l2": ("pgd", 10), "linf": ("pgd", 10)}[norm]
    kwargs.setdefault("steps", steps)
    return build_attack(name, norm, eps, **kwargs)


def training_attack(norm: str, eps: float, noise: bool = False, **kwargs) -> Attack:
    """The natural one-step training attack: spgd1/nspgd1 (l0), onestep-l1 (l1), fgsm/nfgsm (l2, l∞)."""
    norm = parse_norm(norm)
    if norm == "l0":
        name = "nspgd1" if noise else "spgd1"
    elif norm == "l1":
        name = "onestep-l1"
    else:
        name = "nfgsm" if noise else "fgsm"
    return build_attack(name, norm, eps, **kwargs)


__all__ = ["APGDL1", "ATTACKS", "Attack", "Cascade", "CascadeResult", "FGSM", "NFGSM", "NoisySparsePGD",
           "OneStepL1", "PGD", "SparseAutoAttack", "SparsePGD", "SparseRS", "build_attack", "default_attack",
           "model_mode", "no_param_grad", "training_attack"]
