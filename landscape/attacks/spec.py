"""Attack specifications: the one way to name an attack, and the one table of the roles each norm's
attacks play.

An :class:`AttackSpec` is a registry name and keyword arguments, frozen and checked when it is made
(an unknown name, or a keyword argument the attack does not take, is one :class:`LandscapeError`
naming the attack and the arguments it accepts). A recipe, the command line and the analysis all
hold specs; the attack object is built only when it runs, for a threat model::

    >>> spec = AttackSpec("saa", {"steps": 100, "n_queries": 300})
    >>> str(spec)
    'saa(n_queries=300, steps=100)'
    >>> attack = spec.build(ThreatModel("l0", 20))
    >>> spec.with_(steps=20).to_dict()
    {'name': 'saa', 'kwargs': {'n_queries': 300, 'steps': 20}}

:data:`ROLE_TABLE` says which attack plays each role (:data:`ROLES`) for each norm; :func:`attack_for`
reads it. The training presets, :func:`~landscape.attacks.default_attack`,
:func:`~landscape.attacks.training_attack`, ``landscape eval`` and the analysis take their attacks
from it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import LandscapeError
from ..threat import ThreatModel, parse_norm
from .apgd import APGDL1
from .fgsm import FGSM, NFGSM
from .maxloss import ExactL0K1, StrongMaxLoss
from .onestep_l1 import OneStepL1
from .pgd import PGD
from .rs import SparseRS
from .saa import SparseAutoAttack
from .spgd import NoisySparsePGD, SparsePGD

#: name -> (class, norms it attacks, preset keyword arguments); a spec's keywords override presets
#: except those in :data:`_FORCED` (``projected`` of spgd-projected)
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

#: keyword names some attacks also answer to: ``steps`` of Sparse-RS is its number of queries
_ALIASES = {"rs": {"steps": "n_queries"}}
#: keyword names of earlier versions, still read from stored recipes and checkpoints: the noisy
#: attacks called "project the result back onto the threat model" ``project`` (beside sPGD's
#: ``projected`` gradient, a different thing)
RENAMED_KWARGS = {name: {"project": "within_budget"} for name in ("nfgsm", "nspgd1", "nspgd")}
#: keyword arguments of sparse-AutoAttack passed on to both of its sPGD stages
_FORWARDED = {"saa": ("spgd", {"projected"})}
#: the constructor's own arguments that a spec never sets (the threat model gives them)
_THREAT_ARGS = {"self", "eps", "norm"}


def _key(name) -> str:
    key = str(name).strip().lower()
    if key not in ATTACKS:
        raise LandscapeError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    return key


def accepted_arguments(name: str) -> tuple[str, ...]:
    """The keyword arguments attack ``name`` takes (its constructor's, without ``eps`` and ``norm``;
    sparse-AutoAttack's include those it passes to its sPGD stages), sorted."""
    key = _key(name)
    params = inspect.signature(ATTACKS[key][0].__init__).parameters
    names = {p for p, v in params.items()
             if p not in _THREAT_ARGS and v.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}
    if key in _FORWARDED:
        inner, excluded = _FORWARDED[key]
        names |= set(accepted_arguments(inner)) - excluded
    return tuple(sorted(names))


def accepts(name: str, keyword: str) -> bool:
    """True when attack ``name`` takes ``keyword`` (under its own name, an alias or an earlier name)."""
    key = _key(name)
    return (keyword in accepted_arguments(key) or keyword in _ALIASES.get(key, {})
            or keyword in RENAMED_KWARGS.get(key, {}))


def _canonical(key: str, kwargs: Mapping[str, Any]) -> dict:
    """``kwargs`` with None values dropped and aliases and earlier names translated; an argument the
    attack does not take is an error naming the attack and those it takes."""
    out: dict = {}
    renamed = {**_ALIASES.get(key, {}), **RENAMED_KWARGS.get(key, {})}
    accepted = accepted_arguments(key)
    unknown = []
    for k, v in kwargs.items():
        if v is None:
            continue
        k = renamed.get(str(k), str(k))
        if k not in accepted:
            unknown.append(k)
        out[k] = v
    if unknown:
        raise LandscapeError(f"attack {key} does not take {', '.join(sorted(unknown))}; "
                             f"it takes {', '.join(accepted)}")
    return out


def _frozen(v):
    """A hashable copy of a keyword value read from JSON (lists become tuples, dicts sorted pairs)."""
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _frozen(x)) for k, x in v.items()))
    return v


def _plain(v):
    return list(_plain(x) for x in v) if isinstance(v, tuple) else v


def _show(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclass(frozen=True, init=False)
class AttackSpec:
    """A registry attack (``name``) with keyword arguments (``kwargs``, sorted ``(name, value)`` pairs).

    Made from a name and a mapping (``AttackSpec("spgd", {"steps": 100})``) or keywords
    (``AttackSpec("spgd", steps=100)``); None values are dropped, aliases (``steps`` of ``rs``) and
    earlier names (``project`` of the noisy attacks) are translated, and anything else the attack does
    not take is a :class:`LandscapeError`.
    """

    name: str
    kwargs: tuple = ()

    def __init__(self, name: str, kwargs: Mapping[str, Any] | tuple | None = None, **more):
        if isinstance(name, AttackSpec):
            name, base = name.name, dict(name.kwargs)
        else:
            base = {}
        key = _key(name)
        given = dict(kwargs or {})
        given.update(more)
        canonical = _canonical(key, {**base, **given})
        object.__setattr__(self, "name", key)
        object.__setattr__(self, "kwargs", tuple(sorted((k, _frozen(v)) for k, v in canonical.items())))

    # ------------------------------------------------------------------ reading
    @property
    def options(self) -> dict:
        """The keyword arguments as a plain dict (lists for tuples, as JSON would have them)."""
        return {k: _plain(v) for k, v in self.kwargs}

    def get(self, keyword: str, default=None):
        return dict(self.kwargs).get(keyword, default)

    def accepts(self, keyword: str) -> bool:
        return accepts(self.name, keyword)

    @property
    def norms(self) -> tuple[str, ...]:
        """The norms this attack attacks."""
        return ATTACKS[self.name][1]

    def __str__(self) -> str:
        if not self.kwargs:
            return self.name
        return f"{self.name}({', '.join(f'{k}={_show(v)}' for k, v in self.kwargs)})"

    # ------------------------------------------------------------------ new specs
    def with_(self, **overrides) -> "AttackSpec":
        """This spec with ``overrides`` set (None ones ignored); one the attack does not take is an error."""
        return AttackSpec(self.name, {**dict(self.kwargs), **{k: v for k, v in overrides.items() if v is not None}})

    def with_accepted(self, **overrides) -> "AttackSpec":
        """This spec with those of ``overrides`` that the attack takes (None ones ignored): one budget
        (``steps``, ``n_queries``) applied to whatever attack a role gives, PGD having no queries."""
        return self.with_(**{k: v for k, v in overrides.items() if v is not None and self.accepts(k)})

    def with_defaults(self, **defaults) -> "AttackSpec":
        """This spec with those of ``defaults`` that the attack takes and the spec does not set yet."""
        own = dict(self.kwargs)
        return self.with_accepted(**{k: v for k, v in defaults.items() if k not in own})

    def with_steps(self, steps: int | None) -> "AttackSpec":
        """This spec running ``steps`` iterations unless it sets its own; an attack with a fixed number
        of steps (one-step attacks) refuses more than one."""
        if steps is None:
            return self
        if self.accepts("steps"):
            return self.with_defaults(steps=steps)
        if steps > 1:
            raise LandscapeError(f"attack {self.name} has a fixed number of steps; it cannot run {steps}")
        return self

    # ------------------------------------------------------------------ building
    def build(self, threat: ThreatModel | str, eps: float | None = None):
        """The attack object for ``threat`` (a :class:`ThreatModel`, or a norm and ``eps``)."""
        if not isinstance(threat, ThreatModel):
            if eps is None:
                raise LandscapeError(f"attack {self.name} needs a threat model, or a norm and eps")
            norm, budget = parse_norm(threat), eps
        else:
            norm, budget = threat.norm, threat.eps
        cls, norms, preset = ATTACKS[self.name]
        if norm not in norms:
            raise LandscapeError(f"attack {self.name} is for {'/'.join(norms)} perturbations, not {norm}")
        kw = {**preset, **self.options, **_FORCED.get(self.name, {})}
        try:
            return cls(budget, norm=norm, **kw)
        except TypeError as e:
            raise LandscapeError(f"attack {self.name} does not accept these options ({e})") from None

    # ------------------------------------------------------------------ plain values
    def to_dict(self) -> dict:
        return {"name": self.name, "kwargs": self.options}

    @classmethod
    def from_dict(cls, d: Mapping | str) -> "AttackSpec":
        """A spec from :meth:`to_dict`'s form (or a bare name)."""
        if isinstance(d, str):
            return cls(d)
        if not isinstance(d, Mapping) or "name" not in d:
            raise LandscapeError(f"an attack is a name or {{\"name\": ..., \"kwargs\": {{...}}}}, got {d!r}")
        unknown = set(d) - {"name", "kwargs"}
        if unknown:
            raise LandscapeError(f"an attack has a name and kwargs, not {', '.join(sorted(map(str, unknown)))}")
        kwargs = d.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise LandscapeError(f"the kwargs of attack {d['name']!r} are a mapping, got {kwargs!r}")
        return cls(d["name"], kwargs)


def spec(name: str | AttackSpec, kwargs: Mapping[str, Any] | None = None, **more) -> AttackSpec:
    """``AttackSpec(name, kwargs, **more)``, or ``name`` itself when it is a spec already."""
    if isinstance(name, AttackSpec) and not kwargs and not more:
        return name
    return AttackSpec(name, kwargs, **more)


# ---------------------------------------------------------------------------------------- roles
#: what each role is for
ROLES = {
    "strong": "the strongest evaluation attack at the authors' budget (final evaluation at paper scale)",
    "reduced": "the strong attack at a reduced budget (final evaluation at small scale)",
    "monitor": "the strong attack of the catastrophic-overfitting monitor, run every epoch",
    "quick": "a cheaper evaluation attack for monitoring (default_attack(strong=False))",
    "train": "the one-step training attack",
    "noisy-train": "the one-step training attack with N-FGSM-style noise",
    "multi-step": "the multi-step training attack of the baselines",
}

_S = AttackSpec
#: norm -> role -> the attack that plays it
ROLE_TABLE: dict[str, dict[str, AttackSpec]] = {
    # l0: the monitor and the small-scale evaluation use the whole sparse-AutoAttack cascade at a
    # reduced budget: unprojected sPGD alone misses catastrophic overfitting (on fashion-mnist-mini a
    # 1-step sAT model keeps 19% under sPGD-300 and 0% under the projected stage and Sparse-RS)
    "l0": {"strong": _S("saa"), "reduced": _S("saa", steps=100, n_queries=300),
           "monitor": _S("saa", steps=20, n_queries=100), "quick": _S("spgd", steps=100),
           "train": _S("spgd1"), "noisy-train": _S("nspgd1"), "multi-step": _S("spgd")},
    "l1": {"strong": _S("apgd"), "reduced": _S("apgd", steps=50), "monitor": _S("apgd", steps=10),
           "quick": _S("apgd", steps=20), "train": _S("onestep-l1"), "noisy-train": _S("onestep-l1"),
           "multi-step": _S("apgd")},
    "l2": {"strong": _S("pgd", steps=50), "reduced": _S("pgd", steps=20), "monitor": _S("pgd", steps=10),
           "quick": _S("pgd", steps=10), "train": _S("fgsm"), "noisy-train": _S("nfgsm"),
           "multi-step": _S("pgd")},
    "linf": {"strong": _S("pgd", steps=50), "reduced": _S("pgd", steps=20), "monitor": _S("pgd", steps=10),
             "quick": _S("pgd", steps=10), "train": _S("fgsm"), "noisy-train": _S("nfgsm"),
             "multi-step": _S("pgd")},
}
del _S


#: the noisy training attacks: their results may leave the threat model (N-FGSM-style noise)
NOISY_ATTACKS = ("nfgsm", "nspgd1", "nspgd")
#: the attacks an evaluation may use: every other one, their results inside the threat model
EVALUATION_ATTACKS = tuple(n for n in ATTACKS if n not in NOISY_ATTACKS)
#: the evaluation attacks whose search may run in bf16 (``precision``; sparse-PGD alone and in sAA).
#: Sparse-RS takes the option too, but its bf16 queries were weaker (benchmarks/RESULTS.md), so an
#: evaluation keeps it in float32
BF16_SEARCH_ATTACKS = ("spgd", "spgd-projected", "saa")
#: one-step training attack -> its noisy version, from the role table (l1's has none)
NOISY_VERSION = {t["train"].name: t["noisy-train"].name for t in ROLE_TABLE.values()
                 if t["train"].name != t["noisy-train"].name}


def attack_for(norm: str, role: str) -> AttackSpec:
    """The attack that plays ``role`` (:data:`ROLES`) for ``norm``."""
    norm = parse_norm(norm)
    if role not in ROLES:
        raise LandscapeError(f"unknown attack role {role!r}; choose one of {', '.join(ROLES)}")
    return ROLE_TABLE[norm][role]


__all__ = ["ATTACKS", "AttackSpec", "BF16_SEARCH_ATTACKS", "EVALUATION_ATTACKS", "NOISY_ATTACKS", "NOISY_VERSION", "RENAMED_KWARGS", "ROLES", "ROLE_TABLE", "accepted_arguments", "accepts",
           "attack_for", "spec"]
