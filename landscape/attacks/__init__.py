"""Attacks: ``attack(model, x, y) -> x_adv``, inputs in [0,1], always inside the threat model.

See :mod:`landscape.attacks.base` for the protocol. Concrete attacks are registered in
:data:`ATTACKS` by name; an :class:`AttackSpec` (:mod:`landscape.attacks.spec`) names one with its
keyword arguments and builds it for a threat model; :func:`build_attack` does both at once::

    >>> attack = AttackSpec("spgd", steps=300).build(ThreatModel("l0", 20))
    >>> attack = build_attack("spgd", "l0", 20, steps=300)          # the same
    >>> x_adv = attack(model, x, y)

The attack each norm uses in each role (strong evaluation, training, noisy training, monitor, ...)
is in one table, :data:`ROLE_TABLE`, read by :func:`attack_for`.

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

All but ``nfgsm``, ``nspgd1`` and ``nspgd`` (whose ``within_budget`` flag defaults to False, as N-FGSM's
does) return points inside their :class:`~landscape.threat.ThreatModel`.
"""

from __future__ import annotations

from ..threat import parse_norm
from .apgd import APGDL1
from .base import Attack, model_mode, no_param_grad
from .fgsm import FGSM, NFGSM
from .maxloss import ExactL0K1, MaxLoss, StrongMaxLoss, TiledSparsePGD
from .onestep_l1 import OneStepL1
from .pgd import PGD
from .rs import SparseRS
from .saa import Cascade, CascadeResult, SparseAutoAttack
from .spec import ATTACKS, ROLE_TABLE, ROLES, AttackSpec, accepted_arguments, accepts, attack_for
from .spgd import NoisySparsePGD, SparsePGD


def build_attack(name: str, norm: str, eps: float, **kwargs) -> Attack:
    """Build the attack registered as ``name`` for ``norm`` and budget ``eps``:
    ``AttackSpec(name, kwargs).build(ThreatModel(norm, eps))``.

    ``None`` values are dropped so that callers can pass optional CLI options straight through. For
    ``rs``, ``steps`` means ``n_queries``.
    """
    return AttackSpec(name, kwargs).build(parse_norm(norm), eps)


def accepted_options(name: str, kwargs: dict) -> dict:
    """The subset of ``kwargs`` that attack ``name`` takes (None values dropped).

    Used where one budget (``--attack-steps``, ``--attack-queries``) is applied to each checkpoint's
    *default* attack, whose type depends on the checkpoint's norm: PGD has no query budget."""
    return {k: v for k, v in kwargs.items() if v is not None and accepts(name, k)}


def default_attack(norm: str, eps: float, strong: bool = True, **kwargs) -> Attack:
    """The natural evaluation attack for ``norm`` (role ``strong``): saa (l0), pgd (l∞, l2), apgd (l1).

    ``strong=False`` gives a cheaper version for monitoring during training (role ``quick``): sPGD
    (l0, 100 steps), PGD-10 (l∞, l2), APGD-l1 with 20 steps.
    """
    norm = parse_norm(norm)
    return attack_for(norm, "strong" if strong else "quick").with_(**kwargs).build(norm, eps)


def training_attack(norm: str, eps: float, noise: bool = False, **kwargs) -> Attack:
    """The natural one-step training attack (roles ``train``, ``noisy-train``): spgd1/nspgd1 (l0),
    onestep-l1 (l1), fgsm/nfgsm (l2, l∞)."""
    norm = parse_norm(norm)
    return attack_for(norm, "noisy-train" if noise else "train").with_(**kwargs).build(norm, eps)


__all__ = ["APGDL1", "ATTACKS", "Attack", "AttackSpec", "Cascade", "CascadeResult", "ExactL0K1", "FGSM",
           "MaxLoss", "NFGSM", "NoisySparsePGD", "OneStepL1", "PGD", "ROLES", "ROLE_TABLE",
           "SparseAutoAttack", "SparsePGD", "SparseRS", "StrongMaxLoss", "TiledSparsePGD", "accepted_arguments",
           "accepted_options", "accepts", "attack_for", "build_attack", "default_attack", "model_mode",
           "no_param_grad", "training_attack"]
