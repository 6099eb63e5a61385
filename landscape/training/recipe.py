"""A training recipe is data: one :class:`Recipe` dataclass of plain values.

A recipe says everything about *how* a model is trained adversarially, and nothing about which
model or data: the threat model it is evaluated under (``norm``, ``eps``), the budget the training
attack uses (``train_eps``, which may differ: the sAT baseline trains at k=120 for k=20), the
training attack (a registry name of :func:`landscape.attacks.build_attack`, its keyword arguments and
its number of steps), the loss, soft labels, N-FGSM-style noise, the optimiser and the schedule.

Losses (``loss``), with ``t`` the targets (hard labels or soft-label rows) and ``δ`` the attack's
perturbation:

``ce``        adversarial cross-entropy ``CE(f(x+δ), t)`` (sAT, Madry-style AT);
``tradeoff``  ``(1-α)·CE(f(x), t) + α·CE(f(x+δ), t)`` with ``α = tradeoff_alpha``;
``trades``    ``CE(f(x), t) + β·KL(softmax f(x) ‖ softmax f(x+δ))`` with ``β = trades_beta``
              (sTRADES). ``trades_variant`` chooses what the attack maximises:

              ``"F"``  the attack maximises CE(f(x+δ), y), exactly as for sAT; only the training
                       loss is TRADES. This is what the authors' released trainer does (the sPGD
                       repository's ``Trainer`` calls ``attack.perturb(x, y)`` with its usual CE
                       objective and then ``trades_loss``), i.e. their "sTRADES" of the sPGD paper.
              ``"T"``  the attack maximises the TRADES regulariser KL(f(x) ‖ f(x+δ)) itself, as in
                       the original TRADES (Zhang et al. 2019). At δ=0 the KL and its gradient are
                       zero, so this variant needs an attack with a random start or noise
                       (``spgd1``/``nspgd1`` have one).

              We read Table 3's "sTRADES (T)" / "sTRADES (F)" this way (T = TRADES objective in the
              attack, F = the CE objective of sAT). The paper's text available to us does not spell
              the abbreviation out; the reading is recorded here so that it can be changed in one
              place.

Soft labels (``soft_labels=True``) are self-adaptive training (Huang et al. 2020): every training
example keeps a target row ``t_i`` (one-hot at first); from epoch ``sat_start`` on, after each step
``t_i ← m·t_i + (1-m)·softmax(f(x_i))`` with ``m = sat_momentum``, and the losses above use ``t_i``.
``sat_start`` unset (``None``) means a tenth of the epochs, at least one (10 of the paper's 100; 1 of
8): hard labels while the model's predictions are still noise, however soft labels were switched on
(a preset or ``--set soft_labels=true``).
SAT's sample re-weighting is not used.

Budget warm-up (``eps_warmup=E``): the training attack's budget is ``train_eps·min(1, t/E)`` with
``t`` the fractional epoch at the current step (l0 budgets round to whole pixels, at least 1).

Noise (``noise=True``) switches the training attack to its N-FGSM-style noisy version (de Jorge et al.
2022): ``spgd1 -> nspgd1``, ``fgsm -> nfgsm``, and for multi-step sAT/sTRADES (the paper's "+S&N")
``spgd -> nspgd``: random sparse noise on k pixels (k the threat's budget, see ``attack_options``),
then the recipe's sPGD steps from the noisy point, not projected back. An attack that already is noisy stays as it is.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields

from ..errors import LandscapeError
from ..threat import ThreatModel, parse_eps, parse_norm

LOSSES = ("ce", "tradeoff", "trades")
TRADES_VARIANTS = ("T", "F")
SCHEDULES = ("step", "constant", "cosine")
#: the noisy (N-FGSM-style) version of each training attack
NOISY = {"spgd1": "nspgd1", "spgd": "nspgd", "fgsm": "nfgsm"}
NOISY_NAMES = set(NOISY.values())


@dataclass
class Recipe:
    """A complete adversarial training recipe (plain values only; see the module docstring)."""

    name: str = "custom"
    # threat model: evaluation budget, and the training attack's budget (None: the same)
    norm: str = "l0"
    eps: float = 20.0
    train_eps: float | None = None
    # training attack
    attack: str = "spgd1"
    attack_kwargs: dict = field(default_factory=dict)
    steps: int = 1
    # loss
    loss: str = "ce"
    tradeoff_alpha: float = 0.5
    trades_beta: float = 3.0
    trades_variant: str = "F"
    # soft labels (self-adaptive training)
    soft_labels: bool = False
    sat_momentum: float = 0.9
    sat_start: int | None = None      # None: a tenth of the epochs, at least 1 (see sat_start_epoch)
    # N-FGSM-style noise for 1-step attacks
    noise: bool = False
    # budget warm-up: the training budget ramps linearly from 0 to train_eps over this many epochs
    # (0 = off). Small networks on SGD sit on the ln(K) plateau under a full-size l2/l∞ attack from
    # the first step; a ramp lets them leave it.
    eps_warmup: float = 0.0
    # optimisation (PreActResNet18 defaults of the paper)
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: int = 100
    schedule: str = "step"
    milestones: tuple = (0.5, 0.75)   # fractions of the epochs at which the lr is multiplied by lr_decay
    lr_decay: float = 0.1
    augment: bool = True
    # evaluation: the strong attack of the CO monitor and of the final evaluation
    eval_attack: str = "saa"
    eval_attack_kwargs: dict = field(default_factory=dict)
    monitor_attack: str = "spgd"
    monitor_attack_kwargs: dict = field(default_factory=dict)
    monitor_examples: int = 500
    co_gap: float = 0.3
    description: str = ""

    # ------------------------------------------------------------------ validation
    def __post_init__(self):
        self.norm = parse_norm(self.norm)
        self.eps = float(ThreatModel(self.norm, self.eps).eps)
        if self.train_eps is not None:
            self.train_eps = float(ThreatModel(self.norm, self.train_eps).eps)
        if not (self.eps_warmup >= 0):
            raise LandscapeError(f"eps_warmup must be a number of epochs >= 0, got {self.eps_warmup}")
        if self.loss not in LOSSES:
            raise LandscapeError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        self.trades_variant = str(self.trades_variant).upper()
        if self.trades_variant not in TRADES_VARIANTS:
            raise LandscapeError(f"trades_variant must be T or F, got {self.trades_variant!r}")
        if self.schedule not in SCHEDULES:
            raise LandscapeError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.optimizer != "sgd":
            raise LandscapeError(f"unknown optimizer {self.optimizer!r}; only sgd is supported")
        self.milestones = tuple(float(m) for m in self.milestones)
        self.attack_kwargs = dict(self.attack_kwargs or {})
        self.eval_attack_kwargs = dict(self.eval_attack_kwargs or {})
        self.monitor_attack_kwargs = dict(self.monitor_attack_kwargs or {})
        for name, lo in (("steps", 1), ("batch_size", 1), ("epochs", 1), ("monitor_examples", 0),
                         ("sat_start", 0)):
            v = getattr(self, name)
            if name == "sat_start" and v is None:
                continue
            if int(v) != v or v < lo:
                raise LandscapeError(f"{name} must be a whole number >= {lo}, got {v!r}")
            setattr(self, name, int(v))
        for name in ("lr", "momentum", "weight_decay", "tradeoff_alpha", "trades_beta", "sat_momentum",
                     "lr_decay", "co_gap"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < 0:
                raise LandscapeError(f"{name} must be a non-negative number, got {getattr(self, name)!r}")
            setattr(self, name, v)
        if self.lr <= 0:
            raise LandscapeError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.tradeoff_alpha <= 1:
            raise LandscapeError(f"tradeoff_alpha must be in [0, 1], got {self.tradeoff_alpha}")
        if not 0 <= self.sat_momentum < 1:
            raise LandscapeError(f"sat_momentum must be in [0, 1), got {self.sat_momentum}")

    # ------------------------------------------------------------------ derived values
    @property
    def threat(self) -> ThreatModel:
        """The evaluation threat model."""
        return ThreatModel(self.norm, self.eps)

    @property
    def train_threat(self) -> ThreatModel:
        """The threat model of the training attack."""
        return ThreatModel(self.norm, self.eps if self.train_eps is None else self.train_eps)

    @property
    def sat_start_epoch(self) -> int:
        """The first epoch (0-based) whose steps update the soft labels: ``sat_start``, or when unset a
        tenth of the epochs, at least 1."""
        if self.sat_start is not None:
            return self.sat_start
        return max(1, int(self.epochs / 10 + 0.5))

    @property
    def attack_options(self) -> dict:
        """The training attack's keyword arguments: ``attack_kwargs``, plus, for the noisy l0 attacks,
        ``noise_pixels`` = the evaluation budget k unless set. N-FGSM's noise is sized by the threat
        model's ε; with a training budget larger than the threat's (multi-step sAT/sTRADES train at
        6k) noise of the training budget would corrupt 12k pixels in all."""
        kw = dict(self.attack_kwargs)
        if self.norm == "l0" and self.attack_name in ("nspgd", "nspgd1"):
            kw.setdefault("noise_pixels", int(self.eps))
        return kw

    @property
    def attack_name(self) -> str:
        """The registry name of the training attack after applying ``noise``."""
        if self.noise and self.attack not in NOISY_NAMES:
            if self.attack not in NOISY:
                raise LandscapeError(f"noise=True needs a training attack with a noisy version "
                                     f"({', '.join(NOISY)}); {self.attack!r} has none")
            return NOISY[self.attack]
        return self.attack

    @property
    def attack_objective(self) -> str:
        """What the training attack maximises: ``ce`` or ``kl`` (sTRADES (T))."""
        return "kl" if self.loss == "trades" and self.trades_variant == "T" else "ce"

    @property
    def needs_clean_forward(self) -> bool:
        return self.loss in ("tradeoff", "trades")

    def lr_at(self, epoch: int, step: int = 0, steps_per_epoch: int = 1) -> float:
        """The learning rate of a step: a pure function of (epoch, step), so resuming needs no state."""
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "cosine":
            t = (epoch + step / max(1, steps_per_epoch)) / self.epochs
            return self.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
        passed = sum(1 for m in self.milestones if epoch >= int(round(m * self.epochs)))
        return self.lr * self.lr_decay ** passed

    # ------------------------------------------------------------------ plain values
    def to_dict(self) -> dict:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise LandscapeError(f"unknown recipe field(s) {', '.join(sorted(unknown))}")
        return cls(**d)

    def replace(self, **changes) -> "Recipe":
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise LandscapeError(f"unknown recipe field(s) {', '.join(sorted(unknown))}; "
                                 f"fields are {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)

    def with_settings(self, settings: list[str] | tuple[str, ...]) -> "Recipe":
        """Apply ``field=value`` strings (values read as JSON where possible, else as text)."""
        changes = {}
        for item in settings or ():
            if "=" not in item:
                raise LandscapeError(f"--set expects field=value, got {item!r}")
            key, _, raw = item.partition("=")
            key = key.strip().replace("-", "_")
            changes[key] = parse_value(raw.strip())
            if key in ("eps", "train_eps") and isinstance(changes[key], str) and changes[key] not in ("null", "None"):
                changes[key] = parse_eps(changes[key])
            if key == "train_eps" and changes[key] in ("null", "None"):
                changes[key] = None
        # a new attack keeps only the old keyword arguments it takes (saa's n_queries means nothing to
        # spgd1), unless the same call sets its keyword arguments too
        for key in ("attack", "eval_attack", "monitor_attack"):
            kw = key + "_kwargs"
            if key in changes and kw not in changes and isinstance(changes[key], str):
                from ..attacks import ATTACKS, accepted_options
                if changes[key].strip().lower() in ATTACKS:
                    changes[kw] = accepted_options(changes[key], getattr(self, kw))
        return self.replace(**changes)

    def describe(self) -> str:
        """The recipe in full, one field a line (printed in the run's log)."""
        width = max(len(f.name) for f in fields(self))
        lines = [f"recipe {self.name}:"]
        for k, v in self.to_dict().items():
            lines.append(f"  {k:<{width}} = {json.dumps(v) if not isinstance(v, str) else v}")
        lines.append(f"  {'(attack used)':<{width}} = {self.attack_name} at {self.train_threat}, "
                     f"{self.steps} step(s), maximising {self.attack_objective}")
        if self.soft_labels:
            lines.append(f"  {'(soft labels)':<{width}} = updated from epoch {self.sat_start_epoch + 1} "
                         f"of {self.epochs}")
        return "\n".join(lines)


def parse_value(raw: str):
    """Read a ``--set`` value: JSON (numbers, true/false, null, lists, objects) or plain text."""
    low = raw.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        pass
    if "/" in raw:
        try:
            return parse_eps(raw)
        except LandscapeError:
            pass
    return raw
