r"""The checkpoint-level analysis layer: from a checkpoint and options to examples, threat model,
perturbations, and every analysis as ``(DataFrame, meta)``.

Every ``landscape`` analysis command is a call of one function here; a notebook calls the same
functions with the same argument names::

    >>> from landscape.analysis import api
    >>> df, meta = api.hessian_spectrum(["runs/a/checkpoint.pt"], topk=10)
    >>> df, meta = api.loss_surface(["runs/a/checkpoint.pt"], grid=31, span=(-0.1, 0.1))
    >>> api.write_results(df, meta, "out.csv", "out.json")
    >>> df, meta = api.pixel_overlap("runs/a/checkpoint.pt", split="train")

**One rule for the threat model** (:func:`resolve_threat`): with neither ``norm`` nor ``eps`` the
checkpoint's threat model is used; ``eps`` alone changes the budget of the checkpoint's norm;
``norm`` alone is accepted only when it is the checkpoint's norm (a budget does not carry across
norms: l0 ε=20 means nothing for l2), otherwise it is an error asking for ``eps``; both give that
threat model. With ``scale_budget=True`` the budget is read as a CIFAR-10 (3×32×32) budget and
mapped to the checkpoint's image size by :func:`scale_budget`; both numbers are in the metadata.

**Examples** (:func:`load_examples`): a seeded, class-balanced subset of ``split`` of the
checkpoint's dataset (found under ``data_dir`` first), with its indices into the split (used to
line up soft-label tables). The Hessian, surfaces and gradient distances default to the **training**
split, as the paper; evaluations default to the test split.

**Perturbations**: :func:`make_attack` builds the attack of a role: ``train`` (the norm's natural
1-step attack), ``strong`` (the evaluation attack: sparse-AutoAttack, PGD, APGD), ``maxloss`` (the
strong attack that keeps the highest-loss result for every norm, exact for l0 k=1: the Hessian's
default) and ``surface`` (a strong attack that is a deterministic function of the weights given its
seed: the loss drawn on surfaces). :func:`fixed_perturbations` runs one on a sample once, seeded,
and checks every result against the threat model.

Library errors name the arguments in backquotes (`` `n_examples` must be positive``); the CLI
turns them into its flags (``--n-examples``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .. import validate as _validate
from ..distributed import rank_world
from ..errors import LandscapeError
from ..progress import note as _note
from ..results import checkpoint_label, checkpoint_labels, write_results
from ..threat import ThreatModel, parse_eps, parse_norm

#: the image shape the paper's budgets are given for (CIFAR-10)
REFERENCE_SHAPE = (3, 32, 32)
SPLITS = ("train", "test")
ROLES = ("train", "strong", "maxloss", "surface")


# ------------------------------------------------------------------------------------ validation
def _positive_int(value, name: str, *, allow_none: bool = False):
    if value is None and allow_none:
        return None
    try:
        fv = float(value)
        iv = int(fv)
    except (TypeError, ValueError, OverflowError):
        raise LandscapeError(f"`{name}` must be a positive whole number, got {value!r}") from None
    if isinstance(value, bool) or fv != iv or iv < 1:
        raise LandscapeError(f"`{name}` must be a positive whole number, got {value!r}")
    return iv


def _split(split: str) -> str:
    if split not in SPLITS:
        raise LandscapeError(f"`split` must be train or test, got {split!r}")
    return split


def _load(checkpoint):
    from ..checkpoint import Checkpoint
    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    return Checkpoint.load(checkpoint)


# ------------------------------------------------------------------------------------ threat model
def resolve_threat(ck_threat: ThreatModel | None, norm=None, eps=None, *, where: str = "the checkpoint") -> ThreatModel | None:
    """The threat model an analysis uses (the one rule of the module docstring)."""
    if norm is None and eps is None:
        return ck_threat
    norm = parse_norm(norm) if norm is not None else None
    eps = parse_eps(eps) if eps is not None else None
    if norm is None:
        if ck_threat is None:
            raise LandscapeError(f"{where} has no threat model; give `norm` with `eps`")
        return ThreatModel(ck_threat.norm, eps)
    if eps is None:
        if ck_threat is not None and ck_threat.norm == norm:
            return ck_threat
        raise LandscapeError(f"give `eps` for {norm}: {where}'s threat model is {ck_threat or 'none'}, "
                             "and a budget does not carry across norms")
    return ThreatModel(norm, eps)


def scale_budget(threat: ThreatModel, shape, reference=REFERENCE_SHAPE) -> ThreatModel:
    r"""Map a budget given for ``reference`` images (CIFAR-10, 3×32×32, d = 3072) to images of
    ``shape`` (C, H, W), keeping the perturbation's size *per coordinate* the same:

    * l0 (pixels): :math:`k' = \max(1, \mathrm{round}(k \cdot HW / H_rW_r))` (the same share of pixels);
    * l1: :math:`\varepsilon' = \varepsilon \cdot d / d_r` (the same mean |δ_i|);
    * l2: :math:`\varepsilon' = \varepsilon \sqrt{d / d_r}` (the same root-mean-square δ_i);
    * l∞: unchanged.

    For 28×28×1 images (d = 784): l1 24 → 6.125, l2 0.5 → 0.2526, l0 20 → 15, l0 1 → 1.
    """
    c, h, w = (int(v) for v in tuple(shape)[-3:])
    rc, rh, rw = (int(v) for v in reference)
    d, rd = c * h * w, rc * rh * rw
    if threat.norm == "l0":
        return ThreatModel("l0", max(1, round(threat.k * (h * w) / (rh * rw))))
    if threat.norm == "l1":
        return ThreatModel("l1", threat.eps * d / rd)
    if threat.norm == "l2":
        return ThreatModel("l2", threat.eps * math.sqrt(d / rd))
    return threat


# ------------------------------------------------------------------------------------ examples
@dataclass
class Examples:
    """A fixed sample: ``x`` in [0,1] NCHW and ``y`` on the device, ``index`` into ``split`` of ``dataset``."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    dataset: object
    split: str
    seed: int

    def __len__(self) -> int:
        return int(self.y.shape[0])


def load_examples(ck, *, split: str = "train", n_examples: int | None = 1000, seed: int = 0, device="cpu",
                  data_dir=None) -> Examples:
    """A seeded, class-balanced subset of ``n_examples`` (``None``: all) of the checkpoint's ``split``."""
    ck = _load(ck)
    split = _split(split)
    n = _positive_int(n_examples, "n_examples", allow_none=True)
    ds = ck.load_dataset(split, data_dir=data_dir)
    sub = ds.subset(n, seed=seed)  # more than the split holds is an error, not a smaller sample
    idx = ds.subset_indices(n, seed=seed)
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    return Examples(sub.images.float().div(255).to(dev), sub.labels.to(dev), idx, ds, split, int(seed))


@dataclass
class Setup:
    """A checkpoint ready for analysis: model on the device, threat model, fixed examples."""

    checkpoint: object
    model: torch.nn.Module
    threat: ThreatModel | None
    examples: Examples
    device: torch.device
    seed: int
    budget: dict = field(default_factory=dict)

    @property
    def x(self):
        return self.examples.x

    @property
    def y(self):
        return self.examples.y

    @property
    def label(self) -> str:
        return checkpoint_label(self.checkpoint.path) if self.checkpoint.path else "model"

    def meta(self) -> dict:
        ck = self.checkpoint
        return {"checkpoint": str(ck.path) if ck.path else None, "summary": ck.summary(), "arch": ck.arch,
                "dataset": ck.dataset.get("name"), "split": self.examples.split, "n_examples": len(self.examples),
                "seed": self.seed, "threat": self.threat.to_dict() if self.threat else None,
                "ckpt_threat": ck.threat.to_dict() if ck.threat else None, **self.budget}


def setup(checkpoint, *, norm=None, eps=None, scale_budget: bool = False, split: str = "train",
          n_examples: int | None = 1000, seed: int = 0, device="cpu", data_dir=None,
          need_threat: bool = False) -> Setup:
    """Load ``checkpoint`` (a path or a :class:`~landscape.checkpoint.Checkpoint`) for an analysis."""
    from ..device import resolve_device
    ck = _load(checkpoint)
    where = str(ck.path) if ck.path else "the checkpoint"
    threat = resolve_threat(ck.threat, norm, eps, where=where)
    if need_threat and threat is None:
        raise LandscapeError(f"{where} has no threat model; give `norm` and `eps`")
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    ex = load_examples(ck, split=split, n_examples=n_examples, seed=seed, device=dev, data_dir=data_dir)
    budget = {}
    if threat is not None:
        shape = tuple(ex.x.shape[1:])
        if scale_budget:
            scaled = scale_budget_fn(threat, shape)
            budget = {"budget_scaled": True, "eps_reference": threat.eps, "reference_shape": list(REFERENCE_SHAPE),
                      "eps_scaled": scaled.eps}
            threat = scaled
        threat.check_shape(shape)
    return Setup(ck, ck.model(dev), threat, ex, dev, int(seed), budget)


scale_budget_fn = scale_budget   # the name `scale_budget` is also a keyword of setup()


# ------------------------------------------------------------------------------------ attacks
def make_attack(threat: ThreatModel, role: str = "strong", name: str | None = None, *, steps: int | None = None,
                n_queries: int | None = None, seed: int | None = None):
    """The attack of ``role`` (see the module docstring) for ``threat``, or the registry attack ``name``.

    ``steps``/``n_queries`` configure it; a default attack ignores options it does not take (PGD has
    no query budget), an attack named by the user rejects them.
    """
    from .. import attacks as A
    if threat is None:
        raise LandscapeError("an adversarial loss needs a threat model; give `norm` and `eps`")
    if role not in ROLES:
        raise LandscapeError(f"`role` must be one of {', '.join(ROLES)}, got {role!r}")
    for nm, v in (("steps", steps), ("n_queries", n_queries)):
        if v is not None:
            _positive_int(v, nm)
    kw = {"steps": steps, "n_queries": n_queries, "seed": seed}
    if name:
        spec = A.AttackSpec(name)
        if spec.name in ("maxloss", "exact-l0"):
            return spec.with_accepted(**kw).build(threat)
        return spec.with_(**kw).build(threat)
    if role == "maxloss":
        return A.StrongMaxLoss(threat.eps, threat.norm, steps=steps, n_queries=n_queries, seed=seed)
    if role == "surface":
        return surface_attack(threat, steps=steps, seed=seed)
    return A.attack_for(threat.norm, "train" if role == "train" else "strong").with_accepted(**kw).build(threat)


def surface_attack(threat: ThreatModel, *, steps: int | None = None, seed: int | None = 0):
    """The attack re-run at every grid point of a surface: strong (``steps``, default 20), keeping
    the highest cross-entropy (clean point included), and a deterministic function of the weights for
    a fixed ``seed`` (so neighbouring points differ because the weights differ, not the noise):

    * l0: sPGD with one seeded random start, no early stop, no mask redraws (tileable);
    * l1: APGD-l1 (seeded);
    * l2, l∞: PGD from the clean image (no random start).
    """
    from .. import attacks as A
    s = int(steps or 20)
    seed = 0 if seed is None else int(seed)
    if threat.norm == "l0":
        stage = A.TiledSparsePGD(threat.eps, s, seed=seed)
    elif threat.norm == "l1":
        stage = A.APGDL1(threat.eps, s, loss="ce", seed=seed)
    else:
        stage = A.PGD(threat.eps, threat.norm, s, loss="ce", random_start=False, seed=seed)
        stage.deterministic = True
    atk = A.MaxLoss([stage])
    atk.name = "surface-maxloss"
    return atk


def fixed_perturbations(model, x: torch.Tensor, y: torch.Tensor, attack, *, batch_size: int = 256, seed: int = 0,
                        progress: bool | None = None) -> torch.Tensor:
    """``attack`` run once over ``(x, y)`` in batches, seeded with ``seed`` (torch's global generator is
    restored afterwards), every result checked against the attack's threat model."""
    from ..attacks.base import budget_text, run_attack
    from ..progress import note
    batch_size = _positive_int(batch_size, "batch_size")
    note(f"fixed perturbations: {budget_text(attack)} on {len(x)} examples", progress)
    return run_attack(attack, model, x, y, batch_size, seed=seed, keep_rng=True, progress=progress,
                      desc=f"attack {attack.threat}")


def attack_config(attack) -> dict:
    return attack.config() if hasattr(attack, "config") else {"attack": type(attack).__name__}


# ------------------------------------------------------------------------------------ distributed
def init_distributed(device: str = "auto") -> tuple[int, str, bool]:
    """Join the process group torchrun set up (if any): ``(rank, device, started_here)``
    (:func:`landscape.distributed.join`)."""
    from ..distributed import join
    return join(device)


# ------------------------------------------------------------------------------------ soft labels
def soft_labels(ck, split: str, index: torch.Tensor) -> torch.Tensor | None:
    """The checkpoint's self-adaptive-training targets of the training examples ``index`` (None when
    it has none or ``split`` is not train)."""
    ts = ck.train_state or {}
    soft = None
    for key in ("soft_labels", "soft_targets", "targets"):
        v = ts.get(key) if isinstance(ts, dict) else None
        if isinstance(v, dict):  # SoftLabels.state_dict(): {"table": (N, C), "momentum", "start"}
            v = v.get("table", v.get("targets"))
        if isinstance(v, torch.Tensor) and v.dim() == 2:
            soft = v
            break
    if soft is None or split != "train":
        return None
    return soft[index.cpu()].float()


# ==================================================================================== Hessian
def hessian_operator_for(checkpoint, *, loss: str | None = None, norm=None, eps=None, scale_budget: bool = False,
                         attack: str | None = None, attack_steps: int | None = None,
                         attack_queries: int | None = None, n_examples: int = 1000, batch_size: int = 256,
                         split: str = "train", params=None, dtype="float32", mode: str = "eval", device="cpu",
                         seed: int = 0, data_dir=None, progress: bool | None = None, partial=None):
    """The Hessian operator of a checkpoint's loss on a fixed sample: ``(setup, operator, meta)``.

    ``loss``: ``adversarial`` (default with a threat model: cross-entropy at perturbations found once
    at the checkpoint by ``attack``, default the ``maxloss`` attack, and held fixed), ``clean``, or
    ``recipe`` (the checkpoint's training loss, with its soft labels on the training split; its threat
    model is the recipe's training budget unless ``norm``/``eps`` are given).

    ``partial``: a folder where the perturbations are kept batch by batch as they are found (one
    subfolder per rank; :class:`landscape.partial.BatchStore`), so that the same call again finds
    them instead of attacking again; the caller removes it when its analysis is complete.
    """
    from .hessian import LOSSES, HessianOperator, LossSpec, make_batches, shard
    ck = _load(checkpoint)
    if loss is not None and loss not in LOSSES:
        raise LandscapeError(f"unknown `loss` {loss!r}; choose one of {', '.join(LOSSES)}")
    if loss == "recipe" and not ck.recipe:
        raise LandscapeError(f"{ck.path or 'the checkpoint'} stores no training recipe; use `loss` clean or adversarial")
    r_norm, r_eps = norm, eps
    if loss == "recipe" and norm is None and eps is None:
        r = ck.recipe or {}
        t = r.get("threat") if isinstance(r.get("threat"), dict) else None
        if t is None and r.get("norm") is not None and r.get("eps") is not None:
            t = {"norm": r["norm"], "eps": r.get("train_eps") or r["eps"]}
        if t:
            r_norm, r_eps = t["norm"], t["eps"]
    batch_size = _positive_int(batch_size, "batch_size")
    st = setup(ck, norm=r_norm, eps=r_eps, scale_budget=scale_budget, split=split, n_examples=n_examples,
               seed=seed, device=device, data_dir=data_dir)
    if loss is None:
        loss = "adversarial" if st.threat is not None else "clean"
    if loss in ("adversarial", "recipe") and st.threat is None:
        raise LandscapeError("the adversarial loss needs a threat model: give `norm` and `eps` (this checkpoint has none)")
    targets = soft_labels(ck, split, st.examples.index) if loss == "recipe" else None
    meta = st.meta()
    meta.update({"batch_size": batch_size, "soft_labels": targets is not None,
                 "recipe_name": (ck.recipe or {}).get("name") if isinstance(ck.recipe, dict) else None})
    if loss == "clean":
        meta["threat"] = None
    x_adv = None
    if loss in ("adversarial", "recipe"):
        atk = make_attack(st.threat, "maxloss", attack, steps=attack_steps, n_queries=attack_queries, seed=seed)
        rank, world = rank_world()
        # every rank attacks only the batches it owns
        x_adv = torch.empty_like(st.x)
        starts = list(range(0, len(st.x), batch_size))[rank::world]
        store, kept = None, {}
        if partial is not None:
            from ..partial import BatchStore, digest, model_digest
            store = BatchStore(Path(partial) / (f"rank{rank}" if world > 1 else "perturbations"),
                               {"attack": attack_config(atk), "weights": model_digest(st.model), "images": digest(st.x),
                                "labels": digest(st.y), "batch_size": batch_size, "seed": seed, "rank": rank,
                                "world": world, "device": str(st.device)}, what="Hessian perturbation search")
            kept = store.load_map()
        for s in starts:
            sl = slice(s, s + batch_size)
            if s in kept:               # found by an earlier, interrupted run of the same call
                x_adv[sl] = kept[s]["x_adv"].to(x_adv.device)
                continue
            x_adv[sl] = fixed_perturbations(st.model, st.x[sl], st.y[sl], atk, batch_size=batch_size,
                                            seed=seed + s, progress=progress)
            if store is not None:
                store.save({"start": s, "n": len(st.x[sl]), "x_adv": x_adv[sl].cpu()})
        if kept:
            meta["perturbation_batches_read_back"] = len([s for s in starts if s in kept])
        meta["attack"] = attack_config(atk)
        meta["perturbation_mode"] = "fixed"
        own = torch.cat([torch.arange(s, min(s + batch_size, len(st.x))) for s in starts]) if starts else None
        if own is not None:   # the strength of the perturbations, on this rank's examples
            from .objective import predict_stats
            own = own.to(st.x.device)
            meta["clean_ce"] = predict_stats(st.model, st.x[own], st.y[own], batch_size)[0]
            meta["adversarial_ce"] = predict_stats(st.model, x_adv[own], st.y[own], batch_size)[0]
    batches = make_batches(st.x, st.y, batch_size, x_adv=x_adv, targets=targets.to(st.device) if targets is not None else None)
    rank, world = rank_world()
    batches = shard(batches, rank, world)
    spec = LossSpec(loss, recipe=ck.recipe if loss == "recipe" else None)
    op = HessianOperator(st.model, spec, batches, params=params, mode=mode, dtype=dtype, device=st.device,
                         n_total=len(st.examples))
    meta.update(op.describe())
    return st, op, meta


def _done_with(part) -> None:
    """A checkpoint's analysis is complete: its kept perturbations go (and the parent folder, once empty)."""
    if part is not None:
        from ..partial import clear_stores, remove_empty
        clear_stores(part)
        remove_empty(Path(part).parent)


def _hessian_label(st: Setup, meta: dict) -> str:
    parts = [st.label]
    t = meta.get("threat") or meta.get("ckpt_threat")
    if t:
        parts.append(str(ThreatModel(t["norm"], t["eps"])))
    if meta.get("recipe_name"):
        parts.append(str(meta["recipe_name"]))
    return " · ".join(parts) + f" [{meta['loss']}]"


def hessian_spectrum(checkpoints: Sequence, *, topk: int = 10, method: str = "lanczos", tol: float | None = None,
                     maxiter: int | None = None, trace: bool = False, trace_samples: int = 100,
                     solver: str = "auto", precision: str = "float32",
                     **operator_options) -> tuple[pd.DataFrame, dict]:
    """Top-``topk`` eigenvalues (with residuals, converged flags and, with ``trace``, the Hutchinson
    trace) of the Hessian of each checkpoint's loss (see :func:`hessian_operator_for` for the options;
    the paper: top-10, training split, the adversarial loss). One row per checkpoint and rank.
    ``solver`` and ``precision`` are Lanczos's (:func:`~landscape.analysis.estimators.lanczos_topk`:
    auto, full or arpack; float32, or bfloat16 for a Krylov space from bf16 products settled in float32)."""
    from .estimators import PRECISIONS, SOLVERS, hutchinson_trace, lanczos_topk, power_iteration_pyhessian
    topk = _positive_int(topk, "topk")
    if method not in ("lanczos", "power"):
        raise LandscapeError(f"`method` must be lanczos or power, got {method!r}")
    if solver not in SOLVERS:
        raise LandscapeError(f"`solver` must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if precision not in PRECISIONS:
        raise LandscapeError(f"`precision` must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    _validate.hessian_precision(precision, method, operator_options.get("dtype", "float32"))
    if trace:
        _positive_int(trace_samples, "trace_samples")
    _validate.solver_options(tol=tol, maxiter=maxiter, trace_samples=trace_samples if trace else None)
    if not checkpoints:
        raise LandscapeError("give at least one checkpoint")
    for path in checkpoints:  # every checkpoint readable before the first one's work
        _load(path)
    seed = operator_options.get("seed", 0)
    partial = operator_options.pop("partial", None)
    frames, metas, traces = [], [], {}
    _note(f"hessian: {len(checkpoints)} checkpoint(s); top-{topk} eigenvalues by "
          f"{method + (f' ({solver} solver' + (', bf16 products' if precision != 'float32' else '') + ')' if method == 'lanczos' else '')} (tol "
          f"{'default' if tol is None else tol}, maxiter {'default' if maxiter is None else maxiter})"
          + (f" and the trace from {trace_samples} samples" if trace else "")
          + f"; {operator_options.get('loss') or 'default'} loss on {operator_options.get('n_examples', 1000)} "
          f"{operator_options.get('split', 'train')} examples")
    for j, path in enumerate(checkpoints):
        part = None if partial is None else Path(partial) / str(j)
        st, op, meta = hessian_operator_for(path, partial=part, **operator_options)
        if topk >= op.n_params:
            raise LandscapeError(f"`topk` {topk} must be smaller than the number of parameters ({op.n_params})")
        if method == "lanczos":
            res = lanczos_topk(op, topk, tol=tol, maxiter=maxiter, seed=seed, solver=solver, precision=precision)
        else:
            res = power_iteration_pyhessian(op, topk, tol=1e-3 if tol is None else tol,
                                            maxiter=100 if maxiter is None else maxiter, seed=seed)
        label = _hessian_label(st, meta)
        df = res.to_frame()
        t = meta.get("threat") or {}
        for i, (k, v) in enumerate((("label", label), ("checkpoint", str(path)), ("loss", meta["loss"]),
                                    ("norm", t.get("norm")), ("eps", t.get("eps")))):
            df.insert(i, k, v)
        meta.update(label=label, **res.summary(), hvp_time_s=round(op.hvp_time, 4))
        if trace:
            tr = hutchinson_trace(op, trace_samples, seed=seed)
            df["trace"], df["trace_stderr"] = tr.trace, tr.stderr
            traces[label] = [tr.trace, tr.stderr]
            meta.update(tr.summary())
        frames.append(df)
        metas.append(meta)
        _done_with(part)
    return pd.concat(frames, ignore_index=True), {"analysis": "hessian", "method": method, "topk": topk,
                                                  "checkpoints": metas, "traces": traces}


def hessian_density(checkpoints: Sequence, *, n_v: int = 10, n_steps: int = 80, sigma: float | None = None,
                    grid: int = 1000, **operator_options) -> tuple[pd.DataFrame, dict]:
    """Spectral density of each checkpoint's Hessian by stochastic Lanczos quadrature."""
    from .estimators import slq_density
    _positive_int(n_v, "n_v")
    _positive_int(n_steps, "n_steps")
    if _positive_int(grid, "grid") < 2:
        raise LandscapeError("`grid` must be at least 2")
    _validate.number("sigma", sigma, positive=True, allow_none=True)
    for path in checkpoints:  # every checkpoint readable before the first one's work
        _load(path)
    _note(f"density: {len(checkpoints)} checkpoint(s); {n_v} start vectors x {n_steps} Lanczos steps; "
          f"{operator_options.get('loss') or 'default'} loss on {operator_options.get('n_examples', 1000)} examples")
    frames, metas = [], []
    partial = operator_options.pop("partial", None)
    for j, path in enumerate(checkpoints):
        part = None if partial is None else Path(partial) / str(j)
        st, op, meta = hessian_operator_for(path, partial=part, **operator_options)
        res = slq_density(op, n_v=n_v, n_steps=n_steps, grid=grid, sigma=sigma, seed=operator_options.get("seed", 0))
        label = _hessian_label(st, meta)
        df = res.to_frame()
        df.insert(0, "label", label)
        frames.append(df)
        meta.update(label=label, **res.summary(), hvp_time_s=round(op.hvp_time, 4))
        metas.append(meta)
        _done_with(part)
    return pd.concat(frames, ignore_index=True), {"analysis": "density", "checkpoints": metas}


# ==================================================================================== surfaces
def parse_span(span) -> tuple[float, float]:
    """``"-0.1:0.1"`` or ``(-0.1, 0.1)`` -> ``(-0.1, 0.1)``."""
    if isinstance(span, str):
        try:
            lo, hi = (float(p) for p in span.split(":"))
        except ValueError:
            raise LandscapeError(f"cannot read `span` {span!r}; use LOW:HIGH, e.g. -0.1:0.1") from None
    else:
        try:
            lo, hi = (float(v) for v in span)
        except (TypeError, ValueError):
            raise LandscapeError(f"cannot read `span` {span!r}; give (low, high)") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or not hi > lo:
        raise LandscapeError(f"`span` {span!r}: HIGH must be above LOW")
    return lo, hi


DEFAULT_SPAN = {"hessian": (-0.05, 0.05), "random": (-1.0, 1.0), "file": (-1.0, 1.0)}


def loss_surface(checkpoints: Sequence, *, loss: str | None = None, directions: str = "hessian",
                 directions_from=None, save_directions=None, include_bn: bool = False, dims: int = 2,
                 grid: int = 31, span=None, attack: str | None = None, attack_steps: int | None = None,
                 norm=None, eps=None, scale_budget: bool = False, n_examples: int = 256, split: str = "train",
                 batch_size: int = 256, points_per_batch: int = 1, chunk_size: int | None = None,
                 partial=None, max_chunks: int | None = None, device="cpu", seed: int = 0, data_dir=None,
                 progress: bool | None = None, labels: Sequence[str] | None = None,
                 tol: float | None = None) -> tuple[pd.DataFrame | None, dict]:
    r"""Loss surfaces :math:`L(\theta_0 + a d_1 + b d_2)` of each checkpoint, with cragginess numbers.

    ``loss``: ``recomputed`` (default with a threat model: the :func:`surface_attack` re-run at every
    point with the same ``seed``), ``fixed`` (perturbations of the centre held) or ``clean``.
    ``directions``: ``hessian`` (default: the top-2 eigenvectors of the Hessian of the loss drawn,
    with the perturbations of the centre; range ±0.05 of the weights' norm) or ``random``
    (filter-normalised Gaussian, range ±1); ``directions_from`` a saved direction file.
    ``points_per_batch`` > 1 evaluates that many grid points in one forward pass (stacked weights,
    :mod:`landscape.analysis.batched`); results equal the one-point-at-a-time ones. It pays off where
    per-call overhead dominates (small kernels on a GPU); on the CPU one point per forward was
    1.5-2x faster for small-cnn (benchmarks/RESULTS.md, "Surface cost per grid point").
    ``partial``: a path prefix for resumable partial results (one file per checkpoint). ``tol``: the
    Lanczos tolerance of the Hessian directions (None: the solver's default).
    Returns ``(df, meta)``; ``meta["complete"]`` is False when ``max_chunks`` stopped early; on a
    non-zero rank of a process group ``df`` is None.
    """
    from ..attacks.base import budget_text
    from ..partial import tensor_digest
    from .surface import compute_surface
    if not checkpoints:
        raise LandscapeError("give at least one checkpoint")
    kind, (lo, hi), coeffs, b_coeffs = _surface_grid(directions, directions_from, loss, dims, grid, span)
    points_per_batch = _positive_int(points_per_batch, "points_per_batch")
    batch_size = _positive_int(batch_size, "batch_size")
    _validate.solver_options(tol=tol)
    if chunk_size is not None:
        _positive_int(chunk_size, "chunk_size")
    labels = list(labels) if labels else checkpoint_labels(checkpoints)
    rank = rank_world()[0]
    frames, metas = [], []
    for j, path in enumerate(checkpoints):
        st = setup(path, norm=norm, eps=eps, scale_budget=scale_budget, split=split, n_examples=n_examples,
                   seed=seed, device=device, data_dir=data_dir)
        obj, atk, ppb = _surface_objective(st, path, loss, attack, attack_steps, batch_size, points_per_batch, seed,
                                           progress)
        _note(f"surface {labels[j]}: {len(coeffs)}x{len(b_coeffs)} points on [{lo:g}, {hi:g}], {kind} directions, "
              f"{obj.mode} loss" + (f" under {budget_text(atk)}" if atk is not None else "")
              + f", {len(st.examples)} {split} examples", progress)
        dirs, dinfo = _surface_directions(obj, kind, directions_from, dims, include_bn, seed, tol)
        if save_directions and j == 0 and rank == 0:
            from .directions import save_directions as _save
            _save(save_directions, dirs, {"checkpoint": str(path), **{k: v for k, v in dinfo.items() if k != "saved"}})
        config = {"checkpoint": str(Path(str(path)).resolve()), "weights": tensor_digest(obj.center), "split": split,
                  "threat": st.threat.to_dict() if st.threat else None, "n_examples": len(st.examples)}
        ppath = None
        if partial is not None:
            p = Path(str(partial))
            ppath = p.with_name(f"{p.name}{j if len(checkpoints) > 1 else ''}.json")
        df, meta = compute_surface(obj, dirs, coeffs, b_coeffs, chunk_size=chunk_size, partial=ppath, config=config,
                                   seed=seed, max_chunks=max_chunks, progress=progress,
                                   points_per_batch=ppb)
        if df is None:
            continue
        meta.update({"label": labels[j], "points_per_batch": ppb, "directions": dinfo, "loss_mode": obj.mode,
                     "range": [lo, hi],
                     "attack": attack_config(atk) if atk is not None else None, **st.meta()})
        metas.append(meta)
        if not meta["complete"]:
            return None, {"analysis": "surface", "complete": False, "surfaces": metas}
        frames.append(df.assign(checkpoint=labels[j]))
    if rank != 0 or not frames:
        return None, {"analysis": "surface", "complete": True, "surfaces": metas}
    table = pd.concat(frames, ignore_index=True)[["checkpoint", "a", "b", "loss", "acc"]]
    return table, {"analysis": "surface", "complete": True, "surfaces": metas,
                   "cragginess": {m["label"]: m["cragginess"] for m in metas}}


def _surface_grid(directions: str, directions_from, loss, dims, grid, span):
    """The surface's options checked before any work: ``(kind of directions, (lo, hi), a values, b values)``."""
    from . import directions as D
    from .objective import MODES
    if directions not in ("hessian", "random"):
        raise LandscapeError(f"`directions` must be hessian or random, got {directions!r}")
    if loss is not None and loss not in MODES:
        raise LandscapeError(f"`loss` must be one of {', '.join(MODES)}, got {loss!r}")
    if dims not in (1, 2):
        raise LandscapeError(f"`dims` must be 1 or 2, got {dims!r}")
    grid = _positive_int(grid, "grid")
    if grid < 2:
        raise LandscapeError("`grid` must be at least 2")
    if directions_from is not None and not Path(directions_from).exists():
        raise LandscapeError(f"directions file not found: {directions_from}")
    kind = "file" if directions_from else directions
    if span is None and directions_from:   # the range its directions were made for
        span = DEFAULT_SPAN.get(D.load_directions(directions_from)[1].get("kind"), DEFAULT_SPAN["file"])
    lo, hi = parse_span(span) if span is not None else DEFAULT_SPAN[kind]
    coeffs = [float(v) for v in np.linspace(lo, hi, grid)]
    return kind, (lo, hi), coeffs, (coeffs if dims == 2 else [0.0])


def _surface_objective(st, path, loss, attack, attack_steps, batch_size, points_per_batch, seed, progress=None):
    """The loss a surface draws for one checkpoint: ``(LossObjective, attack or None, points per
    forward)``. An attack that cannot share a forward pass between grid points (APGD's random start
    per example, for l1) gets one point per pass for this checkpoint, said in a note and the metadata:
    the values are the same either way, only the speed differs."""
    from .objective import LossObjective
    mode = loss or ("recomputed" if st.threat is not None else "clean")
    atk = None
    if mode != "clean":
        if st.threat is None:
            raise LandscapeError(f"{path} is a clean checkpoint; give `norm` and `eps` for an adversarial loss")
        atk = make_attack(st.threat, "surface", attack, steps=attack_steps, seed=seed)
    obj = LossObjective(st.model, st.x, st.y, mode, atk, batch_size, seed=seed)
    if points_per_batch > 1:
        from .batched import batchable
        why = batchable(obj)
        if why:
            _note(f"surface {path}: {why}, so its grid points are evaluated one per forward pass", progress)
            points_per_batch = 1
    return obj, atk, points_per_batch


def _surface_directions(obj, kind: str, directions_from, dims: int, include_bn: bool, seed: int,
                        tol: float | None = None):
    """The plane's directions and their description: from a file, the Hessian of ``obj`` or random."""
    from . import directions as D
    dinfo = {"kind": kind, "include_bn": include_bn, "seed": seed}
    if kind == "file":
        dirs, saved_meta = D.load_directions(directions_from, obj.model, k=dims)
        dinfo.update({"file": str(directions_from), "saved": saved_meta})
    elif kind == "hessian":
        dirs, hinfo = D.hessian_directions(obj, k=dims, seed=seed, tol=tol)
        dinfo.update(hinfo)
        dinfo["of"] = (f"the {obj.mode} loss's Hessian at the centre"
                       + (" (perturbations of the centre held)" if obj.mode != "clean" else ""))
    else:
        dirs = D.random_directions(obj.model, k=dims, seed=seed, include_bn=include_bn)
    return dirs, dinfo


def surface_panels(df: pd.DataFrame, meta: dict) -> list[dict]:
    """The panels :func:`landscape.plots.surface.plot_surfaces` draws from a :func:`loss_surface` result."""
    from .surface import grid_array
    panels = []
    for m in meta["surfaces"]:
        a, b = m["a_values"], m["b_values"]
        z = grid_array(df[df["checkpoint"] == m["label"]], a, b)
        t = m.get("threat")
        title = f"{m['label']}: {m['loss_mode']} loss" + (f", {ThreatModel.from_dict(t)}" if t and m["loss_mode"] != "clean" else "")
        panels.append({"a": a, "b": b, "z": z if m["dims"] == 2 else z[:, 0], "title": title,
                       "cragginess": m["cragginess"], "directions": m["directions"]["kind"]})
    return panels


# ==================================================================================== overlap etc.
def pixel_overlap(checkpoint, *, norm=None, eps=None, scale_budget: bool = False, attack: str | None = None,
                     attack_steps: int | None = None, strong_attack: str | None = None,
                     strong_steps: int | None = None, strong_queries: int | None = None, n_examples: int = 500,
                     split: str = "test", batch_size: int = 256, device="cpu", seed: int = 0,
                     data_dir=None, partial=None) -> tuple[pd.DataFrame, dict]:
    """Per-image overlap of the pixels the training attack (default the norm's 1-step attack) and
    the strong attack (default sparse-AutoAttack) perturb: IoU and the paper's overlap rate.
    ``partial``: a folder for both attacks' finished batches; the same call again resumes from them."""
    from .overlap import location_overlap as _overlap
    st = setup(checkpoint, norm=norm, eps=eps, scale_budget=scale_budget, split=split, n_examples=n_examples,
               seed=seed, device=device, data_dir=data_dir, need_threat=True)
    a = make_attack(st.threat, "train", attack, steps=attack_steps, seed=seed)
    b = make_attack(st.threat, "strong", strong_attack, steps=strong_steps, n_queries=strong_queries, seed=seed)
    from ..attacks.base import budget_text
    _note(f"overlap: {len(st.y)} {split} examples; {budget_text(a)} against {budget_text(b)}")
    df, meta = _overlap(st.model, st.x, st.y, a, b, batch_size=_positive_int(batch_size, "batch_size"), seed=seed,
                        partial=partial)
    meta.update({"analysis": "overlap", **st.meta(), "label": st.label})
    return df, meta


def interpolation(checkpoint, *, alphas: Sequence[float], norm=None, eps=None, scale_budget: bool = False,
                  attack: str | None = None, strong_attack: str | None = None, strong_steps: int | None = None,
                  strong_queries: int | None = None, strong: bool = True, between=None, bn_recalibrate: bool = False,
                  adversarial: bool = False, n_examples: int = 1000, split: str = "test", batch_size: int = 256,
                  device="cpu", seed: int = 0, data_dir=None, partial=None) -> tuple[pd.DataFrame, dict]:
    """Accuracy along ``x + α·δ`` of the 1-step perturbation (Table 3 of the paper), or along the
    straight line between the weights of ``checkpoint`` and ``between``. ``partial``: a folder for the
    attacks' finished batches along ``x + α·δ``; the same call again resumes from them."""
    from ..attacks.base import budget_text
    from .interp import interpolate_perturbations, interpolate_weights
    alphas = _validate.values("alpha", alphas)  # finite, at most MAX_POINTS: before any work
    batch_size = _positive_int(batch_size, "batch_size")
    st = setup(checkpoint, norm=norm, eps=eps, scale_budget=scale_budget, split=split, n_examples=n_examples,
               seed=seed, device=device, data_dir=data_dir)
    if between is not None:
        other = _load(between)
        ck = st.checkpoint
        if other.arch != ck.arch or other.model_kwargs != ck.model_kwargs:
            raise LandscapeError(f"{between} is a different architecture ({other.arch}) from {checkpoint} ({ck.arch})")
        atk = make_attack(st.threat, "train", attack, seed=seed) if adversarial else None
        x_train = None
        if bn_recalibrate:
            x_train = load_examples(ck, split="train", n_examples=max(int(n_examples), 1000), seed=seed,
                                    device=st.device, data_dir=data_dir).x
        _note(f"interp --between: {len(alphas)} values of alpha on {len(st.y)} {split} examples"
              + (f", adversarial under {budget_text(atk)}" if atk is not None else ""))
        df, meta = interpolate_weights(st.model, other.model(st.device), st.x, st.y, alphas, attack=atk,
                                       bn="recalibrate" if bn_recalibrate else "interpolate", x_train=x_train,
                                       batch_size=batch_size, seed=seed)
        meta.update({"analysis": "interp-weights", "between": str(between), "title":
                     f"{st.label} → {checkpoint_label(between)}"})
    else:
        if st.threat is None:
            raise LandscapeError(f"{checkpoint} has no threat model; give `norm` and `eps`")
        atk = make_attack(st.threat, "train", attack, seed=seed)
        sa = (make_attack(st.threat, "strong", strong_attack, steps=strong_steps, n_queries=strong_queries, seed=seed)
              if strong else None)
        _note(f"interp: {len(alphas)} values of alpha on {len(st.y)} {split} examples; perturbation from "
              f"{budget_text(atk)}" + (f"; strong attack {budget_text(sa)}" if sa is not None else ""))
        df, meta = interpolate_perturbations(st.model, st.x, st.y, atk, alphas, strong_attack=sa,
                                             batch_size=batch_size, seed=seed, partial=partial)
        name = meta["attack"].get("attack", attack) if isinstance(meta["attack"], dict) else attack
        meta.update({"analysis": "interp", "x_interp": "clip(x + alpha * delta, 0, 1)",
                     "title": f"{st.label}: x + α·δ, δ from {name} at {st.threat}"})
    meta.update(st.meta())
    return df, meta


def lipschitz(checkpoint, *, radii: Sequence[float], compare: Sequence[str] = ("labels", "loss"),
              direction: str = "filter", n_directions: int = 1, smoothing: float = 0.1,
              tradeoff_alpha: float | None = None, norm=None, eps=None, scale_budget: bool = False,
              attack: str | None = None, attack_steps: int | None = None, n_examples: int = 128,
              split: str = "test", batch_size: int = 256, device="cpu", seed: int = 0,
              data_dir=None) -> tuple[pd.DataFrame, dict]:
    """Empirical Lipschitz constants of the recomputed adversarial loss and its gradient
    (:mod:`landscape.analysis.lipschitz`), hard against soft labels and CE against the trade-off loss."""
    from ..attacks.base import budget_text
    from .lipschitz import build_variants, lipschitz_estimates
    radii = _validate.values("radii", radii, positive=True)  # finite, positive: before any work
    if any(float(r) <= 0 for r in radii):
        raise LandscapeError(f"`radii` {list(radii)!r}: every radius must be positive")
    st = setup(checkpoint, norm=norm, eps=eps, scale_budget=scale_budget, split=split, n_examples=n_examples,
               seed=seed, device=device, data_dir=data_dir, need_threat=True)
    soft, soft_source = None, f"label smoothing {smoothing:g}"
    if split == "train" and "labels" in compare:
        s = soft_labels(st.checkpoint, "train", st.examples.index)
        if s is not None:
            soft, soft_source = s.to(st.device), "self-adaptive-training targets of the checkpoint"
    recipe = st.checkpoint.recipe or {}
    alpha = tradeoff_alpha if tradeoff_alpha is not None else float(recipe.get("tradeoff_alpha", 0.5) or 0.5)
    variants = build_variants(list(compare), st.y, st.examples.dataset.num_classes, smoothing=smoothing,
                              soft_targets=soft, tradeoff_alpha=alpha)
    atk = make_attack(st.threat, "train", attack, steps=attack_steps, seed=seed)
    _note(f"lipschitz: {len(variants)} variant(s) x {n_directions} direction(s) x {len(radii)} radii on "
          f"{len(st.y)} {split} examples; {budget_text(atk)} recomputed at every point")
    df, meta = lipschitz_estimates(st.model, st.x, st.y, atk, radii, variants=variants, n_directions=n_directions,
                                   direction=direction, seed=seed, batch_size=_positive_int(batch_size, "batch_size"),
                                   norm=st.threat.norm)
    meta.update({"analysis": "lipschitz", "soft_labels": soft_source, **st.meta()})
    return df, meta


def evaluate_checkpoint(checkpoint, *, attack: str | None = None, norm=None, eps=None, scale_budget: bool = False,
                        steps: int | None = None, queries: int | None = None, restarts: int | None = None,
                        n_examples: int | None = 1000, batch_size: int = 256, split: str = "test",
                        save_adv: bool = False, device="cpu", seed: int = 0, data_dir=None,
                        precision: str | None = None, partial=None) -> tuple[pd.DataFrame, dict]:
    """Robust accuracy of a checkpoint on a fixed subset of ``split`` under ``attack`` (default: the
    norm's strong attack), every adversarial example checked against the threat model.
    ``meta["adv"]`` holds the adversarial examples and the split indices with ``save_adv``.
    ``precision='bfloat16'`` runs sparse-PGD's search (spgd, spgd-projected, and sAA's two sPGD
    stages) under bf16 autocast, every verdict near the decision boundary settled in float32
    (:class:`~landscape.attacks.SparsePGD`); the robust accuracy is always counted in float32.
    ``partial``: a folder for the finished batches; the same call again resumes from them
    (:func:`landscape.evaluation.evaluate`; the CLI uses ``.<out>.partial`` beside its results)."""
    from ..attacks import AttackSpec, attack_for
    from ..evaluation import evaluate
    batch_size = _positive_int(batch_size, "batch_size")
    for nm, v in (("steps", steps), ("queries", queries), ("restarts", restarts)):
        if v is not None:
            _positive_int(v, nm)
    if n_examples == 0:
        n_examples = None
    st = setup(checkpoint, norm=norm, eps=eps, scale_budget=scale_budget, split=split, n_examples=n_examples,
               seed=seed, device=device, data_dir=data_dir, need_threat=True)
    threat = st.threat
    spec = AttackSpec(attack) if attack else attack_for(threat.norm, "strong")
    name = spec.name
    if queries is not None and not spec.accepts("n_queries"):
        raise LandscapeError(f"`queries` applies to rs and saa, not {name}")
    if precision is not None:
        from ..attacks.base import search_precision
        from ..attacks.spec import BF16_SEARCH_ATTACKS
        precision = search_precision(precision)
        if name not in BF16_SEARCH_ATTACKS:
            if precision != "float32":
                raise LandscapeError(f"`precision` applies to {', '.join(BF16_SEARCH_ATTACKS[:-1])} and "
                                     f"{BF16_SEARCH_ATTACKS[-1]}, not {name}")
            precision = None
    atk = spec.with_(seed=seed, n_queries=queries, steps=steps, restarts=restarts, precision=precision).build(threat)
    torch.manual_seed(seed)
    df, meta = evaluate(st.model, st.x, st.y, atk, batch_size=batch_size, device=st.device, save_adv=save_adv,
                        partial=partial, config={"checkpoint": str(st.checkpoint.path), "split": split,
                                                 "subset_seed": seed, "seed": seed})
    df.insert(0, "attack", name)
    df.insert(1, "norm", threat.norm)
    df.insert(2, "eps", threat.eps)
    if save_adv and "adv" in meta:
        meta["adv"]["indices"] = st.examples.index
    meta.update({"checkpoint": str(st.checkpoint.path), "checkpoint_summary": st.checkpoint.summary(),
                 "dataset": st.examples.dataset.name, "split": split, "subset_seed": seed,
                 "n_examples": len(st.examples), "seed": seed, "attack_name": name, **st.budget})
    return df, meta


# ==================================================================================== gradients
def gradient_distance(checkpoints: Sequence, *, norm=None, eps=None, scale_budget: bool = False,
                      multi_steps: int | None = None, n_examples: int = 256, split: str = "train",
                      batch_size: int = 256, device="cpu", seed: int = 0, data_dir=None) -> tuple[pd.DataFrame, dict]:
    r"""The l2 distance between the parameter gradients of the adversarial loss induced by the 1-step
    and by a multi-step attack (Table 6 of the paper), one row per checkpoint (its own threat model
    unless ``norm``/``eps`` are given):

    .. math:: D = \big\| \nabla_\theta \tfrac1N \textstyle\sum_i \ell(x_i + \delta^{(1)}_i)
              - \nabla_\theta \tfrac1N \sum_i \ell(x_i + \delta^{(T)}_i) \big\|_2 ,

    :math:`\delta^{(1)}` from the norm's 1-step training attack, :math:`\delta^{(T)}` from the
    multi-step attack (sPGD for l0, APGD for l1, PGD for l2/l∞; ``multi_steps``, default 100, CE,
    best iterate kept, no early stop), both seeded, on the same fixed sample of ``split`` (training by
    default, as the paper), BatchNorm in eval mode. Also reported: ``‖∇θ L‖`` under each attack and
    the distance relative to the multi-step gradient's norm.
    """
    from .. import attacks as A
    from .objective import LossObjective
    if not checkpoints:
        raise LandscapeError("give at least one checkpoint")
    T = _positive_int(multi_steps, "multi_steps", allow_none=True) or 100
    batch_size = _positive_int(batch_size, "batch_size")
    rows, metas = [], []
    labels = checkpoint_labels(checkpoints)
    for lab, path in zip(labels, checkpoints):
        st = setup(path, norm=norm, eps=eps, scale_budget=scale_budget, split=split, n_examples=n_examples,
                   seed=seed, device=device, data_dir=data_dir, need_threat=True)
        threat = st.threat
        one = make_attack(threat, "train", seed=seed)
        if threat.norm == "l0":
            multi = A.SparsePGD(threat.eps, T, early_stop=False, track_best=True, loss="ce", seed=seed)
        elif threat.norm == "l1":
            multi = A.APGDL1(threat.eps, T, loss="ce", seed=seed)
        else:
            multi = A.PGD(threat.eps, threat.norm, T, loss="ce", seed=seed)
        obj = LossObjective(st.model, st.x, st.y, "clean", None, batch_size)
        res = {}
        for tag, atk in (("onestep", one), ("multistep", multi)):
            xa = fixed_perturbations(st.model, st.x, st.y, atk, batch_size=batch_size, seed=seed)
            loss, acc, grads, _ = obj.loss_and_grad(x_adv=xa)
            res[tag] = (loss, acc, torch.cat([g.reshape(-1) for g in grads.values()]).double())
        g1, gT = res["onestep"][2], res["multistep"][2]
        dist = float((g1 - gT).norm())
        rows.append({"checkpoint": lab, "norm": threat.norm, "eps": threat.eps, "onestep_attack": one.name,
                     "multistep_attack": multi.name, "multistep_steps": T, "grad_distance": dist,
                     "grad_norm_onestep": float(g1.norm()), "grad_norm_multistep": float(gT.norm()),
                     "relative_distance": dist / max(float(gT.norm()), 1e-30),
                     "loss_onestep": res["onestep"][0], "loss_multistep": res["multistep"][0],
                     "acc_onestep": res["onestep"][1], "acc_multistep": res["multistep"][1]})
        metas.append({**st.meta(), "label": lab, "onestep": attack_config(one), "multistep": attack_config(multi)})
    meta = {"analysis": "gradients", "checkpoints": metas,
            "definition": "l2 distance between the mean-loss parameter gradients at the 1-step and at the multi-step "
                          "perturbations (both fixed, same sample, same seed, BatchNorm in eval mode)"}
    return pd.DataFrame(rows), meta


__all__ = ["Examples", "REFERENCE_SHAPE", "Setup", "evaluate_checkpoint", "fixed_perturbations", "gradient_distance",
           "hessian_density", "hessian_operator_for", "hessian_spectrum", "init_distributed", "interpolation",
           "lipschitz", "load_examples", "loss_surface", "pixel_overlap", "make_attack", "parse_span",
           "resolve_threat", "scale_budget", "setup", "soft_labels", "surface_attack", "surface_panels",
           "write_results"]
