"""A training recipe is data: one :class:`Recipe` dataclass of plain values.

A recipe says everything about *how* a model is trained adversarially, and nothing about which
model or data: the threat model it is evaluated under (``norm``, ``eps``), the budget the training
attack uses (``train_eps``, which may differ: the paper trains every l0 model at k=120 for k=20), the
training attack (a registry name, its keyword arguments and its number of steps), the loss, soft labels, N-FGSM-style noise, the optimiser and the schedule.
``recipe_version`` says which semantics a stored recipe has (see :data:`RECIPE_VERSION`). (A
:class:`landscape.reproduce.ReproductionRecipe` is something else: the commands of one claim of the
paper, at the reproduction scales quick/fmnist/paper.)

Attacks are stored as plain fields, a name and its keyword arguments (``attack``/``attack_kwargs``,
``eval_attack``/``eval_attack_kwargs``, ``monitor_attack``/``monitor_attack_kwargs``), so that
``--set eval_attack_kwargs={"steps": 5}`` and stored recipes stay plain values; the recipe holds them
as :class:`~landscape.attacks.spec.AttackSpec` objects (:attr:`Recipe.attack_spec`,
:attr:`~Recipe.eval_spec`, :attr:`~Recipe.monitor_spec`), checked when the recipe is made.

Losses (``loss``), with ``t`` the targets (hard labels or soft-label rows), ``w`` the soft-label
weights (1 without soft labels) and ``δ`` the attack's perturbation:

``ce``        adversarial cross-entropy ``CE_w(f(x+δ), t)`` (sAT, Madry-style AT);
``tradeoff``  ``(1-λ)·CE_w(f(x), t) + λ·CE_w(f(x+δ), t)`` with ``λ = tradeoff_alpha`` (0.75);
``trades``    ``CE_w(f(x), t) + β·KL(softmax f(x) ‖ softmax f(x+δ))`` with ``β = trades_beta`` (6)
              (sTRADES). ``CE_w = Σ_i w_i CE_i / Σ_i w_i``. ``trades_variant`` chooses what the
              attack maximises, as the authors' README defines it:

              ``"T"``  ("training mode", ``--attack_loss ce``): the attack maximises CE(f(x+δ), y),
                       exactly as for sAT; only the training loss is TRADES. Fast-LS-l0 and the
                       multi-step sTRADES baselines are (T).
              ``"F"``  ("full mode", ``--attack_loss trades``): the attack maximises the TRADES
                       regulariser KL(f(x) ‖ f(x+δ)) itself. At δ=0 the KL and its gradient vanish;
                       the 1-step sPGD's random start moves it off zero.

              (Recipe version 1 had the two letters the other way round; old checkpoints are read
              with the letters swapped so that they describe what was trained.)

Soft labels (``soft_labels=True``) are self-adaptive training (Huang et al. 2020) as the paper's
Algorithms 1 and 3 write it: every training example keeps a target row ``t_i`` (one-hot at first).
In every step from epoch ``sat_start_epoch`` on (0-based), *after* the attack and *before* the loss,
``t_i ← μ·t_i + (1-μ)·softmax(f(x_i))`` with ``μ = sat_momentum`` and ``x_i`` the (noisy) clean
input; then ``w_i = max_j t_ij`` and the loss uses the updated ``t_i`` and ``w_i``. ``sat_start``
unset (``None``) means half the epochs (the authors' ``--sat_epoch 0.5``: epoch 50 of 100).
``sat_weights=False`` drops the weights; ``sat_weighted_kl`` also weights the KL term (the paper
leaves it open; default no).

Noise (``noise=True``), l0: before anything else in a step, ``x`` is *replaced* by ``x + η`` with
``η`` a random sparse perturbation of a uniformly drawn number of pixels in ``[0, noise_max·k_train]``
(Alg. 3: up to 2k), each chosen pixel set to uniform random values in the box; the attack starts
from the noisy ``x``, the clean/TRADES term and the soft-label update use it, and nothing projects
back. For l2/l∞ ``noise`` switches FGSM to N-FGSM (de Jorge et al. 2022), whose noise lives inside the
attack.

Training attack gradient (``train_mode``, l0 sPGD only): ``unproj`` or ``proj`` gradient, or
``rand``: a fair coin per mini-batch picks one (the authors' ``--train_mode rand``).

Schedule: ``milestones`` are fractions of the training; with ``lr_unit="iteration"`` the learning
rate drops at iteration ``⌊m·E·|loader|⌋`` (the authors' per-iteration ``MultiStepLR``), with
``"epoch"`` at epoch ``round(m·E)``.

Budget warm-up (``eps_warmup=E``): the training attack's budget is ``train_eps·min(1, t/E)`` with
``t`` the fractional epoch at the current step (l0 budgets round to whole pixels, at least 1).

Catastrophic overfitting (the CO monitor): the strong attack's accuracy ``a_s`` fell to near zero
(``a_s ≤ co_floor``) while the accuracy under the training attack ``a_w`` stayed high
(``a_w - a_s ≥ co_gap``).
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
LR_UNITS = ("iteration", "epoch")
TRAIN_MODES = ("unproj", "proj", "rand")
#: the semantics of the fields (1: before the protocol fixes of issue 12; 2: the authors' protocol)
RECIPE_VERSION = 2


@dataclass
class Recipe:
    """A complete adversarial training recipe (plain values only; see the module docstring)."""

    name: str = "custom"
    recipe_version: int = RECIPE_VERSION
    # threat model: evaluation budget, and the training attack's budget (None: the same)
    norm: str = "l0"
    eps: float = 20.0
    train_eps: float | None = None
    # training attack
    attack: str = "spgd1"
    attack_kwargs: dict = field(default_factory=dict)
    steps: int = 1
    train_mode: str = "unproj"        # l0 sPGD gradient: unproj, proj, or rand (a coin per batch)
    # loss
    loss: str = "ce"
    tradeoff_alpha: float = 0.75
    trades_beta: float = 6.0
    trades_variant: str = "T"
    # soft labels (self-adaptive training)
    soft_labels: bool = False
    sat_momentum: float = 0.9
    sat_start: int | None = None      # None: half the epochs (see sat_start_epoch)
    sat_weights: bool = True          # w_i = max_j t_ij, CE terms normalised by sum(w)
    sat_weighted_kl: bool = False     # the paper leaves open whether the KL term carries w_i
    # N-FGSM-style noise
    noise: bool = False
    noise_max: float = 2.0            # l0: up to noise_max * k_train random pixels (Alg. 3: 2k)
    # budget warm-up: the training budget ramps linearly from 0 to train_eps over this many epochs
    # (0 = off). Small networks on SGD sit on the ln(K) plateau under a full-size l2/l∞ attack from
    # the first step; a ramp lets them leave it.
    eps_warmup: float = 0.0
    # optimisation (PreActResNet18 settings of the paper)
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    epochs: int = 100
    schedule: str = "step"
    milestones: tuple = (0.25, 0.75)  # fractions of the training at which the lr is multiplied by lr_decay
    lr_decay: float = 0.1
    lr_unit: str = "iteration"        # milestones counted in iterations (the authors) or epochs
    augment: bool = True
    # evaluation: the strong attack of the CO monitor and of the final evaluation
    eval_attack: str = "saa"
    eval_attack_kwargs: dict = field(default_factory=dict)
    monitor_attack: str = "spgd"
    monitor_attack_kwargs: dict = field(default_factory=dict)
    monitor_examples: int = 500
    co_gap: float = 0.3
    co_floor: float = 0.05
    description: str = ""

    # ------------------------------------------------------------------ validation
    def __post_init__(self):
        try:
            self._check()
        except (TypeError, ValueError) as e:  # a value of the wrong type from a dict or a notebook
            raise LandscapeError(f"recipe: {_first_line(e)}") from None

    def _check(self):
        self.norm = parse_norm(self.norm)
        self.eps = float(ThreatModel(self.norm, self.eps).eps)
        if self.train_eps is not None:
            self.train_eps = float(ThreatModel(self.norm, self.train_eps).eps)
        self._check_types()
        self._check_choices()
        self._check_numbers()
        self._check_attacks()

    def _check_types(self):
        for name in ("soft_labels", "noise", "augment"):
            if not isinstance(getattr(self, name), bool):
                raise LandscapeError(f"{name} is true or false, got {getattr(self, name)!r}")
        for name in ("attack_kwargs", "eval_attack_kwargs", "monitor_attack_kwargs"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, dict):
                raise LandscapeError(f"{name} is a mapping of keyword arguments, got {v!r}")
        for name in ("name", "attack", "eval_attack", "monitor_attack", "optimizer", "schedule", "loss"):
            if not isinstance(getattr(self, name), str):
                raise LandscapeError(f"{name} is a name, got {getattr(self, name)!r}")
    def _check_choices(self):
        self.eps_warmup = _finite("eps_warmup", self.eps_warmup)
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
        if isinstance(self.milestones, (str, bytes)) or not hasattr(self.milestones, "__iter__"):
            raise LandscapeError(f"milestones is a list of fractions of the epochs, got {self.milestones!r}")
        self.milestones = tuple(_finite("milestones", m) for m in self.milestones)
        if any(not 0 <= m <= 1 for m in self.milestones):
            raise LandscapeError(f"milestones are fractions of the epochs in [0, 1], got {list(self.milestones)}")
    def _check_numbers(self):
        self.attack_kwargs = dict(self.attack_kwargs or {})
        self.eval_attack_kwargs = dict(self.eval_attack_kwargs or {})
        self.monitor_attack_kwargs = dict(self.monitor_attack_kwargs or {})
        for name, lo in (("steps", 1), ("batch_size", 1), ("epochs", 1), ("monitor_examples", 0),
                         ("sat_start", 0)):
            v = getattr(self, name)
            if name == "sat_start" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or int(v) != v or v < lo:
                raise LandscapeError(f"{name} must be a whole number >= {lo}, got {v!r}")
            setattr(self, name, int(v))
        for name in ("lr", "momentum", "weight_decay", "tradeoff_alpha", "trades_beta", "sat_momentum",
                     "lr_decay", "co_gap"):
            v = _finite(name, getattr(self, name))
            if v < 0:
                raise LandscapeError(f"{name} must be a non-negative number, got {getattr(self, name)!r}")
            setattr(self, name, v)
        if self.lr <= 0:
            raise LandscapeError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.tradeoff_alpha <= 1:
            raise LandscapeError(f"tradeoff_alpha must be in [0, 1], got {self.tradeoff_alpha}")
        if not 0 <= self.sat_momentum < 1:
            raise LandscapeError(f"sat_momentum must be in [0, 1), got {self.sat_momentum}")
        if self.lr_unit not in LR_UNITS:
            raise LandscapeError(f"lr_unit must be one of {', '.join(LR_UNITS)}, got {self.lr_unit!r}")
        if self.train_mode not in TRAIN_MODES:
            raise LandscapeError(f"train_mode must be one of {', '.join(TRAIN_MODES)}, got {self.train_mode!r}")
        for name in ("noise_max", "co_floor"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise LandscapeError(f"{name} must be a non-negative number, got {v!r}")
            setattr(self, name, float(v))
        if not all(0 <= m <= 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise LandscapeError(f"milestones must be increasing fractions of the training in [0, 1], "
                                 f"got {list(self.milestones)}")
        for name in ("soft_labels", "noise", "augment", "sat_weights", "sat_weighted_kl"):
            if not isinstance(getattr(self, name), bool):
                raise LandscapeError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if int(self.recipe_version) not in (1, RECIPE_VERSION):
            raise LandscapeError(f"recipe_version must be 1 or {RECIPE_VERSION}, got {self.recipe_version!r}")
        self.recipe_version = int(self.recipe_version)
    def _check_attacks(self):
        # every attack is a valid spec (a known name, arguments it takes; earlier argument names read
        # as today's): an error now, not at the end of a training run
        from ..attacks.spec import AttackSpec, attack_for
        field_default = {f.name: f.default for f in fields(self)}
        roles = {"attack": "train", "eval_attack": "strong", "monitor_attack": "monitor"}
        for key, role in roles.items():
            try:
                spec = AttackSpec(getattr(self, key))
                if (self.norm not in spec.norms and spec.name == field_default[key]
                        and not getattr(self, key + "_kwargs")):
                    # a recipe of another norm that names no attack: the role table's attack of its norm
                    spec = attack_for(self.norm, role)
                    setattr(self, key + "_kwargs", dict(spec.options))
                if self.norm not in spec.norms:
                    raise LandscapeError(f"attack {spec.name} is for {'/'.join(spec.norms)} perturbations, "
                                         f"not {self.norm}")
                setattr(self, key, spec.name)
                # the training attack's arguments are those of the attack that runs: noise may make
                # FGSM N-FGSM, which takes a noise size FGSM does not
                runs = self._running_attack() if key == "attack" else getattr(self, key)
                setattr(self, key + "_kwargs", AttackSpec(runs, getattr(self, key + "_kwargs")).options)
            except LandscapeError as e:
                raise LandscapeError(f"{key}: {e}") from None

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
        """The first epoch (0-based) whose steps update the soft labels: ``sat_start``, or when unset
        half the epochs (the authors' ``int(max_epoch * 0.5)``: 50 of 100, 4 of 8)."""
        if self.sat_start is not None:
            return self.sat_start
        return int(self.epochs * 0.5)

    # ------------------------------------------------------------------ attacks as specs
    def _spec(self, key: str):
        from ..attacks.spec import AttackSpec
        try:
            return AttackSpec(getattr(self, key), getattr(self, key + "_kwargs"))
        except LandscapeError as e:
            raise LandscapeError(f"{key}: {e}") from None

    def _running_attack(self) -> str:
        try:
            return self.attack_name
        except LandscapeError:          # noise without a noisy version: the trainer says why
            return self.attack

    @staticmethod
    def spec_fields(key: str, spec) -> dict:
        """The recipe fields ``key`` and ``key_kwargs`` that store ``spec`` (``key`` is ``attack``,
        ``eval_attack`` or ``monitor_attack``)."""
        return {key: spec.name, key + "_kwargs": spec.options}

    @property
    def attack_spec(self):
        """The training attack as an :class:`~landscape.attacks.spec.AttackSpec`: :attr:`attack_name`
        (``noise`` applied) with ``attack_kwargs`` and the recipe's ``steps`` (for attacks that take
        a number of steps; ``attack_kwargs`` wins)."""
        from ..attacks.spec import AttackSpec
        return AttackSpec(self.attack_name, self.attack_kwargs).with_steps(self.steps)

    @property
    def eval_spec(self):
        """The final evaluation's attack as an :class:`~landscape.attacks.spec.AttackSpec`."""
        return self._spec("eval_attack")

    @property
    def monitor_spec(self):
        """The CO monitor's strong attack as an :class:`~landscape.attacks.spec.AttackSpec`."""
        return self._spec("monitor_attack")

    @property
    def attack_options(self) -> dict:
        """The training attack's keyword arguments (``attack_kwargs``)."""
        return dict(self.attack_kwargs)

    @property
    def input_noise(self) -> bool:
        """True when the trainer replaces x by x + sparse noise before each step (l0 ``noise``)."""
        from ..attacks.spec import NOISY_ATTACKS
        return self.noise and self.norm == "l0" and self.attack not in NOISY_ATTACKS

    def noise_pixels(self, k_train: float | None = None) -> int:
        """The largest number of noise pixels: ``noise_max`` times the training budget ``k_train``
        (default: ``train_threat``'s k)."""
        k = self.train_threat.eps if k_train is None else k_train
        return int(round(self.noise_max * k))

    @property
    def attack_name(self) -> str:
        """The registry name of the training attack after applying ``noise`` (l2/l∞: FGSM becomes
        N-FGSM, the role table's noisy version; l0 noise is applied to the input by the trainer and
        leaves the attack as it is; the ``nspgd1``/``nspgd`` attacks remain for library users)."""
        from ..attacks.spec import NOISY_ATTACKS, NOISY_VERSION
        if self.noise and self.attack not in NOISY_ATTACKS and not self.input_noise:
            if self.attack not in NOISY_VERSION:
                raise LandscapeError(f"noise=True needs a training attack with a noisy version "
                                     f"({', '.join(NOISY_VERSION)}) or an l0 threat; {self.attack!r} has none")
            return NOISY_VERSION[self.attack]
        return self.attack

    @property
    def attack_objective(self) -> str:
        """What the training attack maximises: ``ce``, or ``kl`` for sTRADES (F)."""
        return "kl" if self.loss == "trades" and self.trades_variant == "F" else "ce"

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
        if self.lr_unit == "iteration":
            it = epoch * steps_per_epoch + step
            total = self.epochs * steps_per_epoch
            passed = sum(1 for m in self.milestones if it >= int(m * total))
        else:
            passed = sum(1 for m in self.milestones if epoch >= int(round(m * self.epochs)))
        return self.lr * self.lr_decay ** passed

    # ------------------------------------------------------------------ plain values
    def to_dict(self) -> dict:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """A recipe from plain values. A dict without ``recipe_version`` was stored by version 1:
        it is read with the fields that version did not have set to what it did (so that a
        version-1 checkpoint describes its own training), and ``recipe_version=1``."""
        d = dict(d)
        if "recipe_version" not in d:
            d = upgrade_v1(d)
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
        """Apply ``field=value`` strings, each value read by the field's type (:func:`parse_setting`):
        ``trades_beta=abc``, ``noise=maybe`` or ``attack_kwargs={bad`` are errors, not strings."""
        changes = {}
        known = {f.name: f for f in fields(self)}
        for item in settings or ():
            if "=" not in item:
                raise LandscapeError(f"`settings` expects field=value items, got {item!r}")
            key, _, raw = item.partition("=")
            key = key.strip().replace("-", "_")
            if key not in known:
                raise LandscapeError(f"unknown recipe field {key!r}; fields are {', '.join(sorted(known))}")
            changes[key] = parse_setting(key, known[key].type, raw.strip())
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
        for key, text in self.explain():
            lines.append(f"  {'(' + key + ')':<{width}} = {text}")
        return "\n".join(lines)

    def explain(self) -> list[tuple[str, str]]:
        """What the fields mean together, and where the paper leaves the choice to us."""
        out = []
        grad = {"unproj": "unprojected gradient", "proj": "projected gradient",
                "rand": "projected or unprojected gradient by a coin per batch"}[self.train_mode]
        extra = f", {grad}" if self.norm == "l0" and self.attack in ("spgd", "spgd1") else ""
        out.append(("attack used", f"{self._attack_text()} at {self.train_threat}, {self.steps} step(s), "
                                   f"maximising {self.attack_objective} against the hard labels{extra}"))
        if self.input_noise:
            out.append(("noise", f"x replaced by x + η, η on 0..{self.noise_pixels()} random pixels (uniform "
                                 f"count; uniform values in the box); the attack, the clean term and the soft "
                                 f"labels use the noisy x"))
        if self.soft_labels:
            out.append(("soft labels", f"updated before the loss from epoch {self.sat_start_epoch + 1} of "
                                       f"{self.epochs}, μ={self.sat_momentum:g}, "
                                       + ("weights w=max_j t_j" + (" on every term" if self.sat_weighted_kl
                                                                   else " on the CE terms, KL unweighted")
                                          if self.sat_weights else "no weights")))
        monitor = (f"CO monitor {self.monitor_spec} on {self.monitor_examples} examples" if self.monitor_examples
                   else "no CO monitor")
        out.append(("evaluated by", f"{self.eval_spec} at {self.threat}; {monitor}"))
        if self.schedule == "step":
            out.append(("lr schedule", f"{self.lr:g}, x{self.lr_decay:g} at "
                                       + ", ".join(f"{m:g}" for m in self.milestones)
                                       + f" of the training, stepped per {self.lr_unit}"))
        if self.recipe_version < RECIPE_VERSION:
            out.append(("version", f"recipe version {self.recipe_version}: trained before the protocol "
                                   f"fixes (sTRADES letters swapped when read, soft labels updated after "
                                   f"the step without weights, noise of exactly k pixels)"))
        return out


    def _attack_text(self) -> str:
        from ..attacks.spec import AttackSpec
        return str(AttackSpec(self._running_attack(), self.attack_kwargs))


def stored_version(d: dict) -> int:
    """The version of a stored recipe dict (one without ``recipe_version`` was written by version 1)."""
    return int(d.get("recipe_version", 1))


def upgrade_v1(d: dict) -> dict:
    """A version-1 recipe dict in version-2 terms: the sTRADES letters swapped (version 1 called the
    CE-attack variant F), and the fields version 1 did not have set to its behaviour."""
    d = dict(d)
    if str(d.get("trades_variant", "F")).upper() in TRADES_VARIANTS:
        d["trades_variant"] = {"T": "F", "F": "T"}[str(d.get("trades_variant", "F")).upper()]
    d.setdefault("tradeoff_alpha", 0.5)
    d.setdefault("trades_beta", 3.0)
    d.setdefault("milestones", [0.5, 0.75])
    if d.get("sat_start") is None:
        d["sat_start"] = max(1, int(d.get("epochs", 100) / 10 + 0.5))
    d.update(recipe_version=1, sat_weights=False, lr_unit="epoch", train_mode="unproj")
    if d.get("attack") == "spgd" and d.get("noise"):
        d["attack"] = "nspgd"
    elif d.get("attack") == "spgd1" and d.get("noise"):
        d["attack"] = "nspgd1"
    return d


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _first_line(e) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _finite(name: str, v) -> float:
    """``float(v)``, refusing text, booleans, NaN and infinities with one clear error."""
    given = v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        try:
            v = float(v) if isinstance(v, str) else None
        except ValueError:
            v = None
        if v is None:
            raise LandscapeError(f"{name} must be a finite number, got {given!r}")
    v = float(v)
    if not math.isfinite(v):
        raise LandscapeError(f"{name} must be a finite number, got {v}")
    return v


def parse_setting(name: str, kind, raw: str):
    """Read the text ``raw`` of ``--set name=raw`` as the recipe field's type ``kind`` (its
    annotation: ``bool``, ``int``, ``float``, ``str``, ``dict``, ``tuple``, optionally ``| None``)."""
    kind = str(getattr(kind, "__name__", kind)).replace(" ", "")
    optional = kind.endswith("|None") or kind.startswith("None|")
    base = kind.replace("|None", "").replace("None|", "")
    low = raw.strip().lower()
    if optional and low in ("none", "null", ""):
        return None
    if base == "bool":
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise LandscapeError(f"{name} is true or false, got {raw!r}")
    if base == "int":
        try:
            v = float(raw)
        except ValueError:
            v = float("nan")
        if not math.isfinite(v) or v != int(v):
            raise LandscapeError(f"{name} is a whole number, got {raw!r}")
        return int(v)
    if base == "float":
        if name in ("eps", "train_eps"):
            return parse_eps(raw)
        try:
            v = float(raw)
        except ValueError:
            v = float("nan") if low != "nan" else None
        if v is None or not math.isfinite(v):
            raise LandscapeError(f"{name} is a finite number, got {raw!r}")
        return v
    if base == "dict":
        try:
            v = json.loads(raw) if raw.strip() else {}
        except ValueError:
            v = None
        if not isinstance(v, dict):
            raise LandscapeError(f"{name} is a JSON object such as {{\"steps\": 5}}, got {raw!r}")
        return v
    if base == "tuple":
        text = raw.strip()
        try:
            v = json.loads(text) if text.startswith("[") else [float(p) for p in text.split(",") if p.strip()]
        except ValueError:
            v = None
        if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            raise LandscapeError(f"{name} is a list of numbers such as [0.5, 0.75], got {raw!r}")
        return tuple(v)
    if base == "str":
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1]
        return raw
    return parse_value(raw)


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
