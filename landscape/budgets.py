"""Budgets of the analysis and evaluation commands: one table, chosen by device, said out loud.

Three budgets:

``full``
    The authors' budgets: sparse-AutoAttack with 10,000 sPGD steps per stage and 10,000 Sparse-RS
    queries, PGD-50, APGD-100, and the commands' full samples. The default on CUDA.
``reduced``
    The budgets the small-scale (Fashion-MNIST, small-cnn) recipes already use for their final
    evaluation (``landscape.training.presets``: sAA with 100 steps per stage and 300 queries,
    APGD-50, PGD-20) and smaller samples where a command's cost grows with them. The default on the
    CPU: every command finishes in minutes on two cores.
``smoke``
    Seconds, numbers meaningless: for tests and ``reproduce --quick``-style checks that a command
    runs end to end.

``--budget NAME`` picks one; else ``LANDSCAPE_BUDGET``; else the device decides. Options given
explicitly (``--steps``, ``--n-examples``, ...) override the budget's values and results record
both the budget and the overrides (:meth:`Plan.record`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from . import validate as _validate
from .errors import LandscapeError

NAMES = ("full", "reduced", "smoke")

#: attack keyword arguments by budget and attack (``{}``: the attack's own defaults, the authors')
ATTACKS: dict[str, dict[str, dict]] = {
    "full": {"saa": {}, "spgd": {}, "spgd-projected": {}, "rs": {}, "pgd": {}, "apgd": {}, "maxloss": {}},
    "reduced": {"saa": {"steps": 100, "n_queries": 300}, "spgd": {"steps": 100}, "spgd-projected": {"steps": 100},
                "rs": {"n_queries": 300}, "pgd": {"steps": 20}, "apgd": {"steps": 50},
                "maxloss": {"steps": 100, "n_queries": 300}},
    "smoke": {"saa": {"steps": 3, "n_queries": 5}, "spgd": {"steps": 3}, "spgd-projected": {"steps": 3},
              "rs": {"n_queries": 5}, "pgd": {"steps": 2}, "apgd": {"steps": 2}, "maxloss": {"steps": 3, "n_queries": 5}},
}

#: per command and budget: sample size and the command's other cost knobs
COMMANDS: dict[str, dict[str, dict]] = {
    "eval": {"full": {"n_examples": 1000}, "reduced": {"n_examples": 1000}, "smoke": {"n_examples": 32}},
    "hessian": {"full": {"n_examples": 1000}, "reduced": {"n_examples": 200}, "smoke": {"n_examples": 16}},
    "density": {"full": {"n_examples": 1000, "n_v": 10, "n_steps": 80},
                "reduced": {"n_examples": 200, "n_v": 4, "n_steps": 40},
                "smoke": {"n_examples": 16, "n_v": 1, "n_steps": 5}},
    "surface": {"full": {"n_examples": 256, "grid": 31}, "reduced": {"n_examples": 256, "grid": 11},
                "smoke": {"n_examples": 16, "grid": 3}},
    "interp": {"full": {"n_examples": 1000}, "reduced": {"n_examples": 300}, "smoke": {"n_examples": 16}},
    "lipschitz": {"full": {"n_examples": 128}, "reduced": {"n_examples": 128}, "smoke": {"n_examples": 16}},
    "gradients": {"full": {"n_examples": 256, "multi_steps": 100}, "reduced": {"n_examples": 256, "multi_steps": 100},
                  "smoke": {"n_examples": 16, "multi_steps": 3}},
    "overlap": {"full": {"n_examples": 500}, "reduced": {"n_examples": 300}, "smoke": {"n_examples": 16}},
}

#: how :meth:`Plan.describe` names the knobs
KNOB_LABELS = {"multi_steps": "multi-step attack steps", "n_v": "start vectors", "n_steps": "Lanczos steps per vector", "grid": "points per axis",
               "points": "grid points"}

#: cost of one Sparse-RS query (a forward pass) relative to one forward+backward pass
_FORWARD = 0.4


def choose(budget: str | None, device) -> tuple[str, str]:
    """``(name, why)``: ``budget`` if given, else ``LANDSCAPE_BUDGET``, else full on CUDA, reduced on the CPU."""
    if budget:
        why = "--budget"
    elif os.environ.get("LANDSCAPE_BUDGET", "").strip():
        budget, why = os.environ["LANDSCAPE_BUDGET"].strip(), "LANDSCAPE_BUDGET"
    else:
        cuda = str(getattr(device, "type", device)).startswith("cuda")
        budget, why = ("full", "default on CUDA") if cuda else ("reduced", "default on the CPU")
    name = str(budget).strip().lower()
    if name not in NAMES:
        raise LandscapeError(f"unknown budget {budget!r} ({why}); choose one of {', '.join(NAMES)}")
    return name, why


def settings(command: str, budget: str) -> dict:
    """The budget's settings of ``command`` (``n_examples`` and the command's own knobs)."""
    return dict(COMMANDS[command][budget])


def attack_kwargs(name: str, budget: str, **given) -> dict:
    """Keyword arguments for attack ``name``: the budget's, overridden by the ``given`` ones that are
    not None (``steps``, ``n_queries``, ``seed``, ...), keeping only those the attack takes."""
    from .attacks import accepted_options
    kw = dict(ATTACKS[budget].get(str(name).strip().lower(), {}))
    kw.update({k: v for k, v in given.items() if v is not None})
    return accepted_options(name, kw)


def describe_attack(attack) -> str:
    """A short phrase naming an attack and its budget, e.g. ``sparse-AutoAttack (100 sPGD steps per
    stage, 300 Sparse-RS queries)``."""
    name = getattr(attack, "name", type(attack).__name__)
    steps, queries = getattr(attack, "steps", None), getattr(attack, "n_queries", None)
    restarts = getattr(attack, "restarts", 1) or 1
    if hasattr(attack, "stages") and steps is not None and queries is not None:
        return f"sparse-AutoAttack ({steps:,} sPGD steps per stage, {queries:,} Sparse-RS queries)"
    if hasattr(attack, "stages"):
        parts = [describe_attack(a) for a in _stages(attack)]
        if len(parts) == 1:
            return parts[0]
        kind = "the highest loss of " if name == "maxloss" else "the cascade "
        return kind + ", ".join(parts[:-1]) + " and " + parts[-1]
    if name == "rs" or (queries is not None and steps is None):
        return f"Sparse-RS ({queries:,} queries)"
    shown = DISPLAY_NAMES.get(name, name)
    if name == "spgd" and getattr(attack, "projected", False):
        shown = "projected sPGD"
    if name in ("fgsm", "onestep-l1"):
        return shown
    if steps == 1:
        return f"1-step {shown}"
    if steps is None and getattr(attack, "k", None) is not None:
        return f"{shown} (exhaustive)"
    parts = f"{steps:,} steps" if steps is not None else "default budget"
    if restarts > 1:
        parts += f", {restarts} restarts"
    return f"{shown} ({parts})"


#: attacks' names as papers write them
DISPLAY_NAMES = {"spgd": "sPGD", "spgd-projected": "projected sPGD", "pgd": "PGD", "apgd": "APGD-l1", "fgsm": "FGSM", "nfgsm": "N-FGSM",
                 "onestep-l1": "1-step l1 attack", "nspgd": "noisy sPGD", "saa": "sparse-AutoAttack"}


def _stages(attack) -> list:
    """The stages of a cascade, whether stored as ``(name, attack)`` pairs or as attacks."""
    return [st[1] if isinstance(st, tuple) else st for st in (getattr(attack, "stages", None) or [])]


def attack_record(attack) -> dict:
    """An attack's configuration for metadata, its budget (steps, queries) and seed always included."""
    cfg = dict(attack.config()) if hasattr(attack, "config") else {"attack": repr(attack)}
    for k in ("steps", "n_queries", "restarts", "seed"):
        if hasattr(attack, k):
            cfg.setdefault(k, getattr(attack, k))
    seeds = [getattr(a, "seed", None) for a in _stages(attack)]
    if cfg.get("seed") is None and any(v is not None for v in seeds):
        cfg["seed"] = next(v for v in seeds if v is not None)  # a cascade's seed is its first stage's
    cfg["described"] = describe_attack(attack)
    return cfg


def attack_passes(attack) -> float:
    """Forward+backward passes per example an attack costs, a forward alone counting ``_FORWARD``:
    its steps (or queries, forwards only) and the forward that checks its last iterate; a loss-keeping
    cascade (:class:`~landscape.attacks.maxloss.MaxLoss`) adds the clean forward and one per stage
    that leaves no logits of its own to compare (``Attack.keeps_logits``). Attacks that stop early on
    broken examples cost less."""
    if attack is None:
        return 0.0
    stages = getattr(attack, "stages", None)
    if stages:
        inner = sum(attack_passes(a) for a in _stages(attack))
        from .attacks.maxloss import MaxLoss
        if isinstance(attack, MaxLoss):
            inner += _FORWARD * (1 + sum(not getattr(a, "keeps_logits", False) for a in _stages(attack)))
        return inner
    restarts = getattr(attack, "restarts", 1) or 1
    queries = getattr(attack, "n_queries", None)
    if queries is not None and getattr(attack, "name", "") == "rs":
        return _FORWARD * queries * restarts
    steps = getattr(attack, "steps", None)
    return float(((steps or 1) + _FORWARD) * restarts)


def seconds_per_pass(model, x, batch_size: int = 256) -> float:
    """Measured seconds of one forward+backward pass per example (one timed batch after a warm-up)."""
    import torch
    xb = x[: max(1, min(len(x), batch_size))].detach().clone().requires_grad_(True)
    from .attacks.base import attack_model, model_mode
    model = attack_model(model, xb)      # the layout the attacks run in (a channels_last copy on the CPU)
    with model_mode(model, "eval"):
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            out = model(xb)
            grad, = torch.autograd.grad(out.logsumexp(1).sum(), xb)
            if xb.is_cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    return best / len(xb)


def format_seconds(s: float) -> str:
    if s < 60:
        return f"{max(1, round(s))} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


@dataclass
class Plan:
    """What a command will run: its budget, sample, attacks and other knobs, and the user's overrides."""

    command: str
    budget: str
    why: str
    n_examples: int | None = None
    attacks: dict = field(default_factory=dict)   # role -> attack object
    knobs: dict = field(default_factory=dict)     # grid, n_v, topk, ...
    overrides: list = field(default_factory=list)
    passes: float = 0.0                            # forward+backward passes per example (upper bound)
    seconds: float | None = None
    precision: str = "float32"                     # sPGD's search (eval) or Lanczos's products (hessian); the estimate prices float32
    budget_n_examples: int | None = None           # the budget's sample, where the split holds fewer (then all of it)
    sample_note: str = ""

    def estimate(self, model, x, batch_size: int = 256) -> float:
        """Estimate the time (seconds) from one timed batch and :attr:`passes`."""
        self.seconds = self.passes * (self.n_examples or len(x)) * seconds_per_pass(model, x, batch_size)
        return self.seconds

    def describe(self) -> str:
        parts = [f"{role}: {describe_attack(a)}" for role, a in self.attacks.items() if a is not None]
        if self.n_examples is not None:
            parts.append(f"{self.n_examples:,} examples" + (f" ({self.sample_note})" if self.sample_note else ""))
        parts += [f"{KNOB_LABELS.get(k, k.replace('_', ' '))} {v}" for k, v in self.knobs.items()]
        text = f"landscape {self.command}: {self.budget} budget ({self.why}"
        if self.budget != "full":
            text += "; --budget full for the authors'"
        text += ")"
        if self.overrides:
            text += f", with {', '.join(self.overrides)} as given"
        text += "; " + "; ".join(parts)
        if self.seconds is not None:
            from .threads import CHOSEN
            thr = f" on {CHOSEN['threads']} thread(s)" if CHOSEN else ""
            text += f"; estimated {format_seconds(self.seconds)}{thr}"
            if self.precision != "float32":
                what = "products run" if self.command == "hessian" else "search runs"
                text += f" at float32 speed (the {self.precision} {what} faster)"
        return text

    def announce(self, stream=None) -> None:
        """Print :meth:`describe` (stderr by default)."""
        print(self.describe(), file=stream or sys.stderr, flush=True)

    def record(self) -> dict:
        """The plan for results' metadata."""
        from .threads import CHOSEN
        rec = {"budget": self.budget, "budget_source": self.why, "overrides": list(self.overrides),
               "n_examples": self.n_examples, "precision": self.precision,
               **({"budget_n_examples": self.budget_n_examples} if self.budget_n_examples is not None else {}),
               "attacks": {r: attack_record(a) for r, a in self.attacks.items() if a is not None},
               **{k: v for k, v in self.knobs.items()}}
        if self.seconds is not None:
            rec["estimated_seconds"] = round(self.seconds, 1)
        if CHOSEN:
            rec["threads"] = CHOSEN["threads"]
        return rec


def smoke_training(recipe, settings=()):
    """Under ``LANDSCAPE_BUDGET=smoke`` (the test suite, ``reproduce --quick``) a training recipe's CO
    monitor and final evaluation run at the smoke budget too: at most 16 monitor examples and the
    smoke budget of its monitor and evaluation attacks. Fields given with ``--set`` keep their values;
    any other budget leaves the recipe alone (training budgets are the recipe's)."""
    if os.environ.get("LANDSCAPE_BUDGET", "").strip().lower() != "smoke":
        return recipe
    given = {str(s).split("=", 1)[0].strip() for s in settings}
    changes = {}
    if "monitor_examples" not in given:
        changes["monitor_examples"] = min(int(recipe.monitor_examples), 16)
    for f in ("monitor_attack", "eval_attack"):
        if f + "_kwargs" not in given and getattr(recipe, f, None):
            kw = dict(getattr(recipe, f + "_kwargs") or {})
            kw.update(ATTACKS["smoke"].get(getattr(recipe, f), {}))
            changes[f + "_kwargs"] = kw
    return recipe.replace(**changes)


def plan(command: str, budget: str | None, device, *, n_examples: int | None = None, **given_knobs) -> Plan:
    """A :class:`Plan` for ``command`` with the budget's sample size and knobs, the given ones
    (not None) overriding them. Attacks are added by the caller (``plan.attacks[role] = attack``)."""
    name, why = choose(budget, device)
    base = settings(command, name)
    overrides = []
    n = base.pop("n_examples", None)
    if n_examples is not None:
        if n_examples != n:
            overrides.append(f"--n-examples {n_examples}")
        n = n_examples
    knobs = {}
    for k, v in base.items():
        if given_knobs.get(k) is not None:
            if given_knobs[k] != v:
                overrides.append(f"--{k.replace('_', '-')} {given_knobs[k]}")
            knobs[k] = given_knobs[k]
        else:
            knobs[k] = v
    return Plan(command, name, why, n_examples=n, knobs=knobs, overrides=overrides)




#: per command: the attacks it runs, as (label in the plan, role for landscape.analysis.api.make_attack,
#: option naming the attack, option of its steps, option of its queries, when it runs)
SPECS = {
    "eval": [("attack", "strong", "attack", "steps", "queries", lambda o: True)],
    "hessian": [("perturbations", "maxloss", "attack", "attack_steps", "attack_queries",
                 lambda o: o.get("loss") != "clean")],
    "density": [("perturbations", "maxloss", "attack", "attack_steps", "attack_queries",
                 lambda o: o.get("loss") != "clean")],
    "interp": [("perturbation", "train", "attack", None, None, lambda o: True),
               ("strong attack", "strong", "strong_attack", "strong_steps", "strong_queries",
                lambda o: o.get("strong", True) and not o.get("between"))],
    "overlap": [("first attack", "train", "attack", "attack_steps", None, lambda o: True),
                ("second attack", "strong", "strong_attack", "strong_steps", "strong_queries", lambda o: True)],
    "lipschitz": [("attack", "train", "attack", "attack_steps", None, lambda o: True)],
    "surface": [("attack", "surface", "attack", "attack_steps", None, lambda o: o.get("loss") != "clean")],
}


def _passes(command: str, plan: "Plan", opts: dict) -> float:
    """Forward+backward passes per example (upper bound) of ``command`` with ``plan``'s attacks."""
    a = {k: attack_passes(v) for k, v in plan.attacks.items()}
    if command == "eval":
        return a.get("attack", 0) + 1
    if command == "hessian":
        topk = int(opts.get("topk") or 10)
        hvps = (topk + 3 * max(2 * topk + 1, 20)) * (1 if opts.get("method", "lanczos") == "lanczos" else 3)
        hvps += int(opts.get("trace_samples") or 0) if opts.get("trace") else 0
        return a.get("perturbations", 0) + 2.5 * hvps
    if command == "density":
        return a.get("perturbations", 0) + 2.5 * plan.knobs["n_v"] * plan.knobs["n_steps"]
    if command == "interp":
        n_alpha = len(opts.get("alphas") or [0] * 11)
        return a.get("perturbation", 0) + a.get("strong attack", 0) + n_alpha + 1
    if command == "overlap":
        return a.get("first attack", 0) + a.get("second attack", 0)
    if command == "lipschitz":
        radii = len(opts.get("radii") or [0] * 3)
        return radii * 3 * int(opts.get("n_directions") or 1) * 2 * (a.get("attack", 0) + 1)
    if command == "gradients":
        return plan.knobs["multi_steps"] + 4
    if command == "surface":
        points = plan.knobs["grid"] ** int(opts.get("dims") or 2)
        if opts.get("loss") == "fixed":                       # the attack once, then a forward per point
            return a.get("attack", 0) + points * _FORWARD
        # the attack at every point, then the loss: a forward, unless the attack's own logits give it
        loss = 0.0 if getattr(plan.attacks.get("attack"), "keeps_logits", False) else _FORWARD
        return points * (a.get("attack", 0) + loss)
    return 1.0


def _announce_enabled() -> bool:
    # the progress switch silences the plan line too (the test suite, which checks one-line errors)
    return os.environ.get("LANDSCAPE_NO_PROGRESS", "") in ("", "0")


#: options of the analysis functions that must be positive whole numbers when given
POSITIVE_OPTIONS = ("topk", "n_examples", "batch_size", "n_v", "n_steps", "grid", "steps", "queries",
                    "attack_steps", "attack_queries", "strong_steps", "strong_queries", "multi_steps",
                    "points_per_batch", "chunk_size", "trace_samples", "maxiter")


def prepare(command: str, checkpoints, opts: dict, *, budget: str | None = None, announce: bool = True) -> Plan:
    """Resolve ``command``'s budget into ``opts`` (the keyword arguments of its
    :mod:`landscape.analysis.api` function): the sample size, the command's knobs and the steps and
    queries of its attacks, wherever ``opts`` leaves them None. Builds the plan (attacks with their
    seeds, a time estimate from one timed batch of the first checkpoint), prints it on stderr unless
    ``announce`` is False or progress is off, and returns it; ``plan.record()`` goes into the results'
    metadata. Bad input a user can cause (a missing checkpoint, an unknown norm) fails here, before
    anything is printed."""
    from .analysis import api
    from .attacks import attack_for
    from .device import resolve_device
    if isinstance(checkpoints, (str, os.PathLike)):
        checkpoints = [checkpoints]
    for k in POSITIVE_OPTIONS:   # before the timed batch and the plan line, under the caller's names
        if opts.get(k) is not None:
            api._positive_int(opts[k], k)
    if opts.get("grid") is not None and int(opts["grid"]) < 2:
        raise LandscapeError("`grid` must be at least 2")
    if opts.get("span") is not None:
        api.parse_span(opts["span"])
    if opts.get("radii") is not None:
        _validate.values("radii", opts["radii"], positive=True)
    _validate.number("sigma", opts.get("sigma"), positive=True, allow_none=True)
    if opts.get("smoothing") is not None:
        from .analysis.lipschitz import check_smoothing
        check_smoothing(opts["smoothing"])
    if opts.get("compare") is not None:
        from .analysis.lipschitz import check_compare
        check_compare(opts["compare"])
    _validate.solver_options(tol=opts.get("tol"))
    ck = api._load(checkpoints[0])
    if opts.get("directions_from") is not None:   # surface: the saved plane fits every checkpoint (before the plan)
        from .analysis.directions import load_directions
        path = opts["directions_from"]
        if not os.path.exists(path):
            raise LandscapeError(f"directions file not found: {path}")
        for i, c in enumerate(checkpoints):
            load_directions(path, (ck if i == 0 else api._load(c)).model(), k=int(opts.get("dims") or 2))
    dev = resolve_device(opts.get("device", "auto"))
    knob_names = [k for k in COMMANDS[command][NAMES[0]] if k != "n_examples"]
    p = plan(command, budget, dev, n_examples=opts.get("n_examples"), **{k: opts.get(k) for k in knob_names})
    split = opts.get("split", "test")
    data = ck.load_dataset(split, data_dir=opts.get("data_dir"))
    if p.n_examples is not None and p.n_examples > len(data):
        if opts.get("n_examples") is not None:   # asked for: an error, before the plan line
            data.subset_indices(int(opts["n_examples"]))  # raises: more than the split holds
        # the budget's sample is more than the split holds (a small dataset): all of the split, said so
        p.budget_n_examples, p.n_examples = p.n_examples, len(data)
        p.sample_note = f"the whole {split} split; the budget's {p.budget_n_examples:,} is more than it holds"
    if "n_examples" in opts or command in COMMANDS:
        opts["n_examples"] = p.n_examples
    for k in knob_names:
        opts[k] = p.knobs[k]
    threat = api.resolve_threat(ck.threat, opts.get("norm"), opts.get("eps"))
    if threat is not None and opts.get("scale_budget"):
        ds = ck.dataset
        threat = api.scale_budget(threat, (ds.get("channels"), ds.get("height"), ds.get("width")))
    seed = opts.get("seed", 0)
    for label, role, name_opt, steps_opt, queries_opt, when in SPECS.get(command, []):
        if threat is None or not when(opts):
            continue
        name = opts.get(name_opt)
        default = attack_for(threat.norm, role).name if role in ("strong", "train") else role
        reg = str(name or default)
        for opt, key in ((steps_opt, "steps"), (queries_opt, "n_queries")):
            if opt is None:
                continue
            if opts.get(opt) is not None:
                p.overrides.append(f"--{opt.replace('_', '-')} {opts[opt]}")
            elif key in ATTACKS[p.budget].get(reg, {}):
                opts[opt] = ATTACKS[p.budget][reg][key]
        p.attacks[label] = api.make_attack(threat, role, name, steps=opts.get(steps_opt) if steps_opt else None,
                                           n_queries=opts.get(queries_opt) if queries_opt else None, seed=seed)
    if command == "hessian" and opts.get("topk") is not None:
        from .analysis.hessian import select_parameters
        n_params = sum(q.numel() for _, q in select_parameters(ck.model(), opts.get("params")))
        if int(opts["topk"]) >= n_params:
            raise LandscapeError(f"`topk` {opts['topk']} is too large: the Hessian has {n_params} parameters, so at "
                                 f"most {n_params - 1} eigenvalues can be computed this way")
    p.passes = _passes(command, p, opts)
    if opts.get("precision") not in (None, "float32"):
        from .attacks.base import search_precision
        p.precision = search_precision(opts["precision"])
        if command == "hessian":
            _validate.hessian_precision(p.precision, opts.get("method", "lanczos"), opts.get("dtype", "float32"))
        p.overrides.append(f"--precision {p.precision}")
    model = ck.model(device=dev)
    sample = data.subset(min(int(opts.get("batch_size") or 256), 64, len(data)), seed=0)
    p.estimate(model, sample.images.float().div(255).to(dev), int(opts.get("batch_size") or 256))
    p.seconds *= len(checkpoints)
    from .distributed import from_env
    if announce and _announce_enabled() and from_env().is_main:
        p.announce()
    return p


__all__ = ["ATTACKS", "COMMANDS", "NAMES", "Plan", "attack_kwargs", "attack_passes", "choose", "describe_attack",
           "plan", "prepare", "seconds_per_pass", "settings", "smoke_training"]
