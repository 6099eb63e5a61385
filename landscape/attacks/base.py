"""The attack protocol: a configuration called as ``attack(model, x, y) -> x_adv``.

An attack is a small class: hyperparameters in ``__init__``, the work in :meth:`Attack.perturb`.
Calling it puts the model in eval mode (or the mode the attack was configured with), freezes nothing,
touches no parameter gradient, and restores the mode it found. Inputs and outputs are in [0,1], NCHW;
the output always lies in the attack's :class:`~landscape.threat.ThreatModel`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from ..partial import BatchStore, digest, model_digest, rng_state, set_rng_state
from ..threat import ThreatModel


@contextmanager
def model_mode(model: nn.Module, mode: str = "eval"):
    """Put ``model`` in ``mode`` ('eval' or 'train') and restore every submodule's mode afterwards."""
    saved = [(m, m.training) for m in model.modules()]
    model.train(mode == "train")
    try:
        yield model
    finally:
        for m, was in saved:
            m.training = was


@contextmanager
def no_param_grad(model: nn.Module):
    """Disable ``requires_grad`` on parameters while attacking (saves memory and keeps .grad clean)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


#: the precisions an attack's search may run in (sPGD, Sparse-RS); float32 always decides
PRECISIONS = ("float32", "bfloat16")
#: bf16 verdicts nearer the decision boundary than this fraction of the largest |logit| are settled
#: in float32 (bf16 autocast moved small-cnn's margins by at most 1.7% of it: benchmarks/bf16_margins.py)
BF16_BAND = 0.05


def search_precision(precision) -> str:
    """``precision`` checked: 'float32' or 'bfloat16' (also 'fp32', 'bf16')."""
    key = str(precision).strip().lower()
    key = {"fp32": "float32", "bf16": "bfloat16"}.get(key, key)
    if key not in PRECISIONS:
        from ..errors import LandscapeError
        raise LandscapeError(f"`precision` must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return key


def search_context(precision: str, device: torch.device):
    """The context an attack's search forwards run in: bf16 autocast for 'bfloat16', else nothing."""
    if precision == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def settle_verdicts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor):
    """``(logits, rows)`` after a bf16 search forward: ``logits`` (float32, detached) with every row
    whose bf16 verdict could be wrong (misclassified, or correct by a margin within
    :data:`BF16_BAND` of the largest |logit|) replaced by a float32 forward of that row, and those
    rows' indices. The float32 forward is part of the search step, not an iteration of the attack
    (:func:`landscape.progress.uncounted`). So bf16 rounding neither decides a success nor hides one."""
    from ..progress import uncounted
    from .losses import margin
    logits = logits.detach().float()
    rows = (margin(logits, y) <= BF16_BAND * logits.abs().amax(1)).nonzero().squeeze(1)
    if rows.numel():
        with uncounted():
            exact = model(x[rows]).float()
        logits = logits.clone()
        logits[rows] = exact
    return logits, rows


#: whether eval-mode attacks on the CPU run on a channels_last copy of the model (:func:`attack_model`)
CHANNELS_LAST_COPY = True
#: how that copy is rewritten for speed, computing the same function (names of
#: :data:`landscape.attacks.cpu_copy.REWRITES`: the first layer's input gradient by a GEMM,
#: max-pooling before the ReLU; ``()`` for none)
REWRITE_COPY = ("input_grad", "pool_before_relu")


def attack_model(model: nn.Module, x: torch.Tensor, mode: str = "eval") -> nn.Module:
    """The model an attack's forward and backward passes run on: for an eval-mode attack on NCHW
    images on the CPU, a ``channels_last`` copy of a convolutional ``model`` (the same function to
    float rounding; its forward and input-gradient backward were 1.3x faster for small-cnn on this
    project's CPU, benchmarks/RESULTS.md), else ``model`` itself. The caller's model is never
    changed: its layout, its weights and its buffers stay as they were. A model that is already
    channels_last, cannot be copied, or holds no ``Conv2d`` is used as it is; so is every model under
    ``LANDSCAPE_CHANNELS_LAST=0`` (:func:`landscape.device.channels_last_default`). The copy is then
    rewritten for speed (:func:`landscape.attacks.cpu_copy.prepare`; ``REWRITE_COPY = ()`` turns it
    off): a convolution with at most 4 input channels (the first layer) computes its input gradient
    by one GEMM and shifted additions, 1.5-7x faster than oneDNN's there, and a ReLU followed by a
    max-pool runs after it instead, on a quarter of the values (the same function)."""
    from ..device import channels_last_default
    if not CHANNELS_LAST_COPY or mode != "eval" or x.dim() != 4 or x.device.type != "cpu" \
            or not channels_last_default(x.device):
        return model
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs or all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs):
        return model
    import copy
    try:
        twin = copy.deepcopy(model)
    except Exception:  # a module that cannot be copied (open handles, a wrapper): attack it as it is
        return model
    twin = twin.to(memory_format=torch.channels_last)
    if REWRITE_COPY:
        from .cpu_copy import prepare
        prepare(twin, REWRITE_COPY)
    return twin


def iteration_budget(attack) -> int | None:
    """Iterations ``attack`` may run: its ``steps`` (sPGD counts one more for the final check) or
    ``n_queries``, times its ``restarts``; None when it has no such budget."""
    per = getattr(attack, "steps", None)
    if per is None:
        per = getattr(attack, "n_queries", None)
    if not isinstance(per, int) or per <= 0:
        return None
    return per * max(1, int(getattr(attack, "restarts", 1) or 1))


def budget_text(attack) -> str:
    """The attack and its budget in words: ``saa at l0(eps=20): spgd 10000 steps, spgd-projected
    10000 steps, rs 10000 queries``."""
    def one(a) -> str:
        if getattr(a, "steps", None):
            txt = f"{a.steps} step" + ("s" if a.steps != 1 else "")
        elif getattr(a, "n_queries", None):
            txt = f"{a.n_queries} queries"
        else:
            return "one step"
        restarts = int(getattr(a, "restarts", 1) or 1)
        return txt + (f" x {restarts} restarts" if restarts > 1 else "")
    name = getattr(attack, "name", type(attack).__name__)
    where = f" at {attack.threat}" if getattr(attack, "threat", None) is not None else ""
    stages = getattr(attack, "stages", None)
    if stages:
        pairs = [st if isinstance(st, tuple) else (getattr(st, "name", type(st).__name__), st) for st in stages]
        return f"{name}{where}: " + ", ".join(f"{nm} {one(a)}" for nm, a in pairs)
    return f"{name}{where}, {one(attack)}"


@contextmanager
def watch(model: nn.Module, attack, stage: str | None = None, index: int | None = None,
          stages: int | None = None):
    """While the block runs ``attack`` on ``model``, report its iterations (every forward pass of
    the model is one) to the open progress bar or listeners (:mod:`landscape.progress`). Nothing
    is hooked when nobody is watching."""
    from ..progress import attack_reporter
    rep = attack_reporter(stage or getattr(attack, "name", "attack"), iteration_budget(attack), index, stages)
    if rep is None:
        yield
        return
    handle = model.register_forward_hook(rep.hook)
    try:
        yield
    finally:
        handle.remove()
        rep.close()


def attack_logits(attack, n: int) -> torch.Tensor | None:
    """The logits ``attack`` left from its last run on the ``n`` examples it returned
    (``last_logits``: sPGD keeping its best iterate and :class:`~landscape.attacks.maxloss.MaxLoss`
    have them from forwards they ran anyway, in the attack's model mode), or None when it has none
    for all of them. A caller that would evaluate the model on those examples next can use them
    instead of running that forward again."""
    logits = getattr(attack, "last_logits", None)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n \
            or not bool(torch.isfinite(logits).all()):
        return None
    return logits.detach()


@dataclass
class AttackedBatch:
    """One batch of :func:`attack_batches`: where it starts, its inputs and labels (after ``prepare``),
    the adversarial examples, what the runner returned (a cascade's result) and its seconds."""
    start: int
    x: torch.Tensor
    y: torch.Tensor
    x_adv: torch.Tensor
    result: object
    seconds: float


def attack_batches(attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256, *,
                   check: bool = True, run: Callable | None = None, prepare: Callable | None = None,
                   what: str | None = None, start: int = 0) -> Iterator[AttackedBatch]:
    """The one batched attack loop: run ``attack`` over ``(x, y)`` in batches of ``batch_size`` and
    yield an :class:`AttackedBatch` per batch, from example ``start`` on (a resumed evaluation).

    ``prepare(xb, yb) -> (xb, yb)`` turns a slice into the attack's input (device, dtype); ``run``
    replaces ``attack(model, xb, yb)`` (a cascade's ``run``, whose result has ``x_adv``). With ``check``
    (the default) every batch passes ``attack.threat.assert_valid`` before it is yielded: an example
    outside the threat model is never counted. Only training attacks that deliberately leave it
    (N-FGSM, noisy sPGD) are run with ``check=False``.
    """
    runner = run if run is not None else attack
    threat = getattr(attack, "threat", None)
    what = what or f"{getattr(attack, 'name', 'attack')} examples"
    for i in range(int(start), len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        if prepare is not None:
            xb, yb = prepare(xb, yb)
        t0 = time.perf_counter()
        out = runner(model, xb, yb)
        seconds = time.perf_counter() - t0
        x_adv = getattr(out, "x_adv", out).detach()
        if check and threat is not None and hasattr(threat, "assert_valid"):
            threat.assert_valid(xb, x_adv, what=what)
        yield AttackedBatch(i, xb, yb, x_adv, out, seconds)


def run_attack(attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256, *,
               seed: int | None = None, check: bool = True, keep_rng: bool = False,
               progress: bool | None = None, desc: str | None = None, with_logits: bool = False,
               partial=None):
    """The adversarial examples of ``attack`` over all of ``x`` (:func:`attack_batches`, checked
    against the threat model unless ``check=False``). ``seed`` seeds torch's global generator once
    before the first batch; with ``keep_rng`` the generator's state is restored afterwards. ``desc``
    shows a progress bar over the batches (silenced like every bar). With ``with_logits``, returns
    ``(x_adv, logits)``: the attack's own logits on ``x_adv`` (:func:`attack_logits`) when it left
    them for every batch, else ``logits`` is None.

    ``partial``: a folder that keeps every finished batch (:class:`landscape.partial.BatchStore`,
    keyed by the attack, the model's weights, ``x``, ``y``, the batch size, ``seed`` and ``check``);
    the same call again reads them back, restores torch's generator as it was after the last of
    them and attacks only the rest: the result equals an uninterrupted run's. The folder is removed
    when the loop completes."""
    state = torch.random.get_rng_state() if keep_rng else None
    if seed is not None:
        torch.manual_seed(int(seed))
    dev = x.device
    store, outs, logits = None, [], []
    try:
        if partial is not None:
            store = BatchStore(partial, {"attack": attack.config() if hasattr(attack, "config") else repr(attack),
                                         "threat": getattr(getattr(attack, "threat", None), "to_dict", lambda: None)(),
                                         "weights": model_digest(model), "images": digest(x), "labels": digest(y),
                                         "batch_size": int(batch_size), "seed": seed, "check": bool(check),
                                         "with_logits": bool(with_logits), "device": str(dev)}, what="attack")
            for rec in store.load():
                outs.append(rec["x_adv"].to(dev))
                logits.append(None if rec.get("logits") is None else rec["logits"].to(dev))
            if outs:
                set_rng_state(rec["rng"], dev)
        done = sum(len(o) for o in outs)
        batches = attack_batches(attack, model, x, y, batch_size, check=check, start=done)
        if desc is not None:
            from ..progress import bar
            batches = bar(batches, total=-(-len(x) // batch_size), initial=len(outs), desc=desc, progress=progress,
                          unit="batch")
        for b in batches:      # the attack's state is this batch's until the next one is drawn
            outs.append(b.x_adv)
            if with_logits:
                logits.append(attack_logits(attack, len(b.x_adv)))
            if store is not None:
                store.save({"start": b.start, "n": len(b.x_adv), "x_adv": b.x_adv.cpu(),
                            "logits": logits[-1].detach().cpu() if with_logits and logits[-1] is not None else None,
                            "rng": rng_state(dev)})
        if store is not None:
            store.remove()
    finally:
        if state is not None:
            torch.random.set_rng_state(state)
    x_adv = torch.cat(outs) if outs else x.clone()
    if not with_logits:
        return x_adv
    return x_adv, (torch.cat(logits) if logits and all(g is not None for g in logits) else None)


class Attack:
    """Base class. Subclasses set ``norms`` and implement ``perturb(model, x, y) -> x_adv``.

    Arguments common to every attack: ``norm``, ``eps`` (the threat model) and ``mode`` ('eval' by
    default: the mode the model is put in while attacking; training recipes may choose 'train').
    """

    name = "attack"
    norms: tuple[str, ...] = ("l0", "l1", "l2", "linf")
    #: whether a run leaves ``last_logits``, the model's logits on the examples it returned (from
    #: forwards it ran anyway; :func:`attack_logits`), so that no caller runs that forward again
    keeps_logits: bool = False
    last_logits: torch.Tensor | None = None

    def __init__(self, eps: float, norm: str, *, mode: str = "eval"):
        self.threat = ThreatModel(norm, eps)
        if self.threat.norm not in self.norms:
            from ..errors import LandscapeError
            raise LandscapeError(f"{type(self).__name__} attacks {', '.join(self.norms)} perturbations, not {self.threat.norm}")
        self.mode = mode

    def _counts(self, **counts) -> dict[str, int]:
        """``counts`` (``steps=...``, ``restarts=...``) as integers, each at least 1 (else one error)."""
        bad = [f"`{k}` {v}" for k, v in counts.items() if int(v) < 1]
        if bad:
            from ..errors import LandscapeError
            raise LandscapeError(f"{type(self).__name__} needs {' and '.join(counts)} of at least 1, got {', '.join(bad)}")
        return {k: int(v) for k, v in counts.items()}

    def _set_loss(self, loss, seed: int | None) -> None:
        """The loss the attack maximises (a name of :data:`landscape.attacks.losses.LOSSES`) and its seed."""
        from .losses import get_loss
        self.loss = loss
        self._loss = get_loss(loss)
        self.seed = seed

    @property
    def eps(self) -> float:
        return self.threat.eps

    @property
    def norm(self) -> str:
        return self.threat.norm

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.threat.check_shape(x.shape)
        with model_mode(model, self.mode), no_param_grad(model):
            net = attack_model(model, x, self.mode)
            with watch(net, self):
                x_adv = self.perturb(net, x.detach(), y.detach())
        return x_adv.detach()

    def config(self) -> dict:
        """Plain hyperparameters (for logs, recipes and result metadata)."""
        out = {"attack": self.name, "norm": self.norm, "eps": self.eps}
        for k, v in vars(self).items():
            if k not in ("threat", "last_logits") and isinstance(v, (int, float, str, bool, type(None))):
                out[k] = v
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "attack")
        return f"{type(self).__name__}({args})"
