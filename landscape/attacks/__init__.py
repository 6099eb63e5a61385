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
    spgd1              l0                     one-step sparse-PGD, random start, α=β=1 (the authors' training attack)
    nspgd1             l0                     noise on 0..2k random pixels + one sPGD step (NOT projected: training)
    nspgd              l0                     the same noise + 10-step sPGD with early stop (NOT projected: training)
    exact-l0           l0 (k=1)               exhaustive: every pixel x every colour-cube corner, max CE
    maxloss            all                    strong attack keeping the highest-CE result (Hessian, surfaces)
    =================  =====================  ==========================================================

All but ``nfgsm``, ``nspgd1`` and ``nspgd`` (whose ``project`` flag defaults to False, as N-FGSM's does) return
points inside their :class:`~landscape.threat.ThreatModel`.
"""

from __future__ import annotations

from ..errors import LandscapeError
from ..threat import parse_norm
from .apgd import APGDL1
from .base import Attack, model_mode, no_param_grad
from .fgsm import FGSM, NFGSM
from .maxloss import ExactL0K1, MaxLoss, StrongMaxLoss, TiledSparsePGD
from .onestep_l1 import OneStepL1
from .pgd import PGD
from .rs import SparseRS
from .saa import Cascade, CascadeResult, SparseAutoAttack
from .spgd import NoisySparsePGD, SparsePGD


#: name -> (class, norms it attacks, preset keyword arguments); the user's keywords override presets
#: except ``projected`` of spgd-projected
ATTACKS = {
    "spgd": (SparsePGD, ("l0",), {}),
    "spgd-projected": (SparsePGD, ("l0",), {"projected": True}),
    "rs": (SparseRS, ("l0",), {}),
    "saa": (SparseAutoAttack, ("l0",), {}),
    "pgd": (PGD, ("linf", "l2"), {}),
    "apgd": (APGDL1, ("l1",), {}),
    "fgsm": (FGSM, ("linf", "l2"), {}),
    "nfgsm": (NFGSM, ("linf", "l2"), {}),
    "onestep-l1": (OneStepL1, ("l1",), {}),
    "spgd1": (SparsePGD, ("l0",), {"steps": 1, "early_stop": False, "track_best": False, "random_start": True,
                                   "alpha": 1.0, "beta": 1.0}),
    "nspgd1": (NoisySparsePGD, ("l0",), {"alpha": 1.0, "beta": 1.0}),
    "nspgd": (NoisySparsePGD, ("l0",), {"steps": 10}),
    "exact-l0": (ExactL0K1, ("l0",), {}),
    "maxloss": (StrongMaxLoss, ("l0", "l1", "l2", "linf"), {}),
}
_FORCED = {"spgd-projected": {"projected": True}}

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
    cls, norms, preset = ATTACKS[key]
    norm = parse_norm(norm)
    if norm not in norms:
        raise LandscapeError(f"attack {key} is for {'/'.join(norms)} perturbations, not {norm}")
    kw = {k: v for k, v in kwargs.items() if v is not None}
    for a, b in _ALIASES.get(key, {}).items():
        if a in kw:
            kw[b] = kw.pop(a)
    kw = {**preset, **kw, **_FORCED.get(key, {})}
    try:
        return cls(eps, norm=norm, **kw)
    except TypeError as e:
        raise LandscapeError(f"attack {key} does not accept these options ({e})") from None


#: the natural strong (evaluation) attack of each norm
STRONG_ATTACK = {"l0": "saa", "l1": "apgd", "l2": "pgd", "linf": "pgd"}
#: the natural one-step training attack of each norm, and its noisy (N-FGSM-style) version
TRAINING_ATTACK = {"l0": "spgd1", "l1": "onestep-l1", "l2": "fgsm", "linf": "fgsm"}
NOISY_TRAINING_ATTACK = {"l0": "nspgd1", "l1": "onestep-l1", "l2": "nfgsm", "linf": "nfgsm"}


def accepted_options(name: str, kwargs: dict) -> dict:
    """The subset of ``kwargs`` that attack ``name`` takes (None values dropped).

    Used where one budget (``--attack-steps``, ``--attack-queries``) is applied to each checkpoint's
    *default* attack, whose type depends on the checkpoint's norm: PGD has no query budget."""
    import inspect
    cls = ATTACKS[str(name).strip().lower()][0]
    params = inspect.signature(cls.__init__).parameters
    kw = {k: v for k, v in kwargs.items() if v is not None}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kw
    aliases = _ALIASES.get(str(name).strip().lower(), {})
    return {k: v for k, v in kw.items() if k in params or k in aliases}


def default_attack(norm: str, eps: float, strong: bool = True, **kwargs) -> Attack:
    """The natural evaluation attack for ``norm``: saa (l0), pgd (l∞, l2), apgd (l1).

    ``strong=False`` gives a cheaper version for monitoring during training: sPGD (l0, 100 steps),
    PGD-10 (l∞, l2), APGD-l1 with 20 steps.
    """
    norm = parse_norm(norm)
    if strong:
        return build_attack(STRONG_ATTACK[norm], norm, eps, **kwargs)
    name, steps = {"l0": ("spgd", 100), "l1": ("apgd", 20), "l2": ("pgd", 10), "linf": ("pgd", 10)}[norm]
    kwargs.setdefault("steps", steps)
    return build_attack(name, norm, eps, **kwargs)


def training_attack(norm: str, eps: float, noise: bool = False, **kwargs) -> Attack:
    """The natural one-step training attack: spgd1/nspgd1 (l0), onestep-l1 (l1), fgsm/nfgsm (l2, l∞)."""
    norm = parse_norm(norm)
    return build_attack((NOISY_TRAINING_ATTACK if noise else TRAINING_ATTACK)[norm], norm, eps, **kwargs)


__all__ = ["APGDL1", "ATTACKS", "Attack", "Cascade", "CascadeResult", "ExactL0K1", "MaxLoss", "StrongMaxLoss",
           "TiledSparsePGD", "FGSM", "NFGSM", "NoisySparsePGD",
           "OneStepL1", "PGD", "STRONG_ATTACK", "TRAINING_ATTACK", "accepted_options", "SparseAutoAttack", "SparsePGD", "SparseRS", "build_attack", "default_attack",
           "model_mode", "no_param_grad", "training_attack"]
