"""The loss as a function of the weights: clean, adversarial-``fixed`` or adversarial-``recomputed``.

For a model ``f(θ, ·)``, examples ``(x, y)`` and a threat model ``S``, three functions of the weights:

* ``clean``:       L(θ)      = mean_i CE(f(θ, x_i), y_i)
* ``fixed``:       L_fix(θ)  = mean_i CE(f(θ, x_i + δ_i(θ₀)), y_i), the perturbations found once at the
  centre ``θ₀`` and held (Danskin-style: the same value and gradient as the adversarial loss at θ₀,
  smooth in θ);
* ``recomputed``:  L_ε(θ)    = mean_i CE(f(θ, x_i + δ_i(θ)), y_i), the attack re-run at every θ. This is
  the adversarial loss the paper analyses (Lemmas 3.2/3.4): it jumps where the attack's optimal
  perturbation jumps, which is what makes l0 landscapes craggy.

Points are given as an *offset* from the centre weights (a dict ``name -> tensor`` over the model's
trainable parameters) or as absolute parameters. The weights are set in place for the evaluation and
always restored afterwards, also when the evaluation raises. BatchNorm layers run in eval mode (the
running statistics of the centre) unless ``bn='train'``, which uses batch statistics and restores
the running buffers afterwards. Example::

    >>> obj = LossObjective(model, x, y, mode="recomputed", attack=attack, batch_size=256)
    >>> obj.evaluate()                               # (loss, accuracy) at the centre
    >>> obj.evaluate(plane_offset(d1, d2, 0.5, -0.2))  # at θ + 0.5·d1 - 0.2·d2
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Mapping

import torch
from torch import nn

from ..attacks.base import model_mode, run_attack
from ..errors import LandscapeError
from ..training.losses import cross_entropy

MODES = ("clean", "fixed", "recomputed")


def plane_offset(d1: Mapping[str, torch.Tensor], d2: Mapping[str, torch.Tensor] | None, a: float,
                 b: float = 0.0) -> dict:
    """The offset ``a·d1 + b·d2`` as a dict over the parameter names of ``d1``."""
    out = {}
    for k, v in d1.items():
        t = v * float(a)
        if d2 is not None and b:
            t = t + d2[k] * float(b)
        out[k] = t
    return out


class LossObjective:
    """The loss of ``model`` on ``(x, y)`` as a function of its trainable weights.

    Arguments:
        model: the network (its current weights are the centre θ₀; they are cloned).
        x, y: inputs in [0,1] NCHW and int64 labels (kept on the model's device).
        mode: ``clean``, ``fixed`` or ``recomputed`` (see the module docstring).
        attack: ``attack(model, x, y) -> x_adv``; required for the adversarial modes.
        batch_size: examples per forward pass.
        targets: optional soft targets (N, C) used by the loss instead of ``y`` (the attack always
            uses the hard labels ``y``).
        loss_fn: optional ``loss_fn(model, x, x_adv, targets) -> mean loss of the batch`` replacing the
            cross-entropy on ``x_adv`` (e.g. a trade-off loss mixing clean and adversarial terms).
        bn: ``eval`` (default) or ``train`` (batch statistics; running buffers restored).
        seed: when given, torch's global generator is seeded with ``seed`` before each attack run,
            so that a recomputed point is reproducible (resumed surfaces give identical grids).
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str = "clean",
                 attack: Callable | None = None, batch_size: int = 256, *, targets: torch.Tensor | None = None,
                 loss_fn: Callable | None = None, bn: str = "eval", seed: int | None = None):
        if mode not in MODES:
            raise LandscapeError(f"unknown loss mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode != "clean" and attack is None:
            raise LandscapeError(f"the {mode} adversarial loss needs an attack")
        if bn not in ("eval", "train"):
            raise LandscapeError(f"unknown BatchNorm mode {bn!r}; use eval or train")
        if batch_size < 1:
            raise LandscapeError(f"batch size must be positive, got {batch_size}")
        self.model = model
        dev = next(model.parameters()).device
        self.x = x.to(dev)
        self.y = y.to(dev)
        self.targets = targets.to(dev) if targets is not None else None
        self.mode = mode
        self.attack = attack
        self.batch_size = int(batch_size)
        self.loss_fn = loss_fn
        self.bn = bn
        self.seed = seed
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.center = {n: p.detach().clone() for n, p in self.params.items()}
        self._x_adv_fixed: torch.Tensor | None = None
        self.last_x_adv: torch.Tensor | None = None

    # ------------------------------------------------------------------ weights
    @property
    def names(self) -> list[str]:
        return list(self.params)

    @contextmanager
    def at(self, offset: Mapping[str, torch.Tensor] | None = None, params: Mapping[str, torch.Tensor] | None = None):
        """Context in which the model's weights are ``θ₀ + offset`` (or ``params``); restored after."""
        if offset is not None and params is not None:
            raise ValueError("give an offset or params, not both")
        src = offset if offset is not None else params
        if src is not None:
            unknown = set(src) - set(self.params)
            if unknown:
                raise LandscapeError(f"the point names parameters the model does not have: {', '.join(sorted(unknown)[:3])}")
            for k, v in src.items():
                if tuple(v.shape) != tuple(self.params[k].shape):
                    raise LandscapeError(f"parameter {k}: shape {tuple(v.shape)} does not match the model's "
                                         f"{tuple(self.params[k].shape)}")
        buffers = [(b, b.detach().clone()) for b in self.model.buffers()] if self.bn == "train" else []
        try:
            with torch.no_grad():
                for k, p in self.params.items():
                    if offset is not None and k in offset:
                        p.copy_(self.center[k] + offset[k].to(p.device, p.dtype))
                    elif params is not None and k in params:
                        p.copy_(params[k].to(p.device, p.dtype))
                    else:
                        p.copy_(self.center[k])
            yield self.model
        finally:
            with torch.no_grad():
                for k, p in self.params.items():
                    p.copy_(self.center[k])
                for b, saved in buffers:
                    b.copy_(saved)

    # ------------------------------------------------------------------ perturbations
    def _attack_all(self, with_logits: bool = False):
        return run_attack(self.attack, self.model, self.x, self.y, self.batch_size, seed=self.seed,
                          with_logits=with_logits)

    def _reuses_attack_logits(self) -> bool:
        """Whether a recomputed point takes its loss from the logits the attack computed on its own
        result (a loss-keeping attack has them) instead of a forward of its own: only where that
        forward would be the same one (cross-entropy on the model's output, BatchNorm in eval mode,
        as the attack ran)."""
        return (self.mode == "recomputed" and self.loss_fn is None and self.bn == "eval"
                and getattr(self.attack, "mode", None) == "eval")

    def fixed_perturbations(self) -> torch.Tensor:
        """The adversarial examples at the centre (computed once, then held)."""
        if self._x_adv_fixed is None:
            with self.at():
                self._x_adv_fixed = self._attack_all()
        return self._x_adv_fixed

    def inputs(self) -> torch.Tensor:
        """The inputs the loss is evaluated on at the current weights (runs the attack if needed)."""
        if self.mode == "clean":
            return self.x
        if self.mode == "fixed":
            return self.fixed_perturbations()
        return self._attack_all()

    # ------------------------------------------------------------------ evaluation
    def _batch_loss(self, xb, xab, tb, yb):
        if self.loss_fn is not None:
            loss = self.loss_fn(self.model, xb, xab, tb)
            with torch.no_grad():
                logits = self.model(xab)
        else:
            logits = self.model(xab)
            loss = cross_entropy(logits, tb)
        correct = (logits.argmax(1) == yb).sum()
        return loss, correct

    def _loop(self, x_in: torch.Tensor, grad: bool, logits: torch.Tensor | None = None):
        total, correct = 0.0, 0
        grads = None
        n = len(self.x)
        with model_mode(self.model, self.bn):
            for i in range(0, n, self.batch_size):
                sl = slice(i, i + self.batch_size)
                tb = (self.targets if self.targets is not None else self.y)[sl]
                if logits is not None and not grad:   # the attack's own forward on x_in
                    loss = cross_entropy(logits[sl], tb)
                    c = (logits[sl].argmax(1) == self.y[sl]).sum()
                else:
                    with torch.set_grad_enabled(grad):
                        loss, c = self._batch_loss(self.x[sl], x_in[sl], tb, self.y[sl])
                w = (min(i + self.batch_size, n) - i) / n
                if grad:
                    g = torch.autograd.grad(loss * w, list(self.params.values()), allow_unused=True)
                    g = [torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, self.params.values())]
                    grads = g if grads is None else [a + b for a, b in zip(grads, g)]
                total += float(loss.detach()) * w
                correct += int(c)
        return total, correct / n, grads

    def evaluate(self, offset: Mapping[str, torch.Tensor] | None = None, *,
                 params: Mapping[str, torch.Tensor] | None = None) -> tuple[float, float]:
        """``(loss, accuracy)`` at ``θ₀ + offset`` (or at ``params``; at θ₀ when neither is given)."""
        if self.mode == "fixed":
            self.fixed_perturbations()
        with self.at(offset, params):
            logits = None
            if self._reuses_attack_logits():
                x_in, logits = self._attack_all(with_logits=True)
            else:
                x_in = self.inputs()
            self.last_x_adv = None if self.mode == "clean" else x_in
            loss, acc, _ = self._loop(x_in, grad=False, logits=logits)
        return loss, acc

    def loss_and_grad(self, offset: Mapping[str, torch.Tensor] | None = None, *,
                      params: Mapping[str, torch.Tensor] | None = None,
                      x_adv: torch.Tensor | None = None) -> tuple[float, float, dict, torch.Tensor]:
        """``(loss, accuracy, gradient dict, inputs used)`` at a point.

        ``x_adv`` overrides the inputs (to evaluate at held perturbations); otherwise the mode decides.
        """
        if self.mode == "fixed" and x_adv is None:
            self.fixed_perturbations()
        with self.at(offset, params):
            x_in = self.inputs() if x_adv is None else x_adv
            loss, acc, grads = self._loop(x_in, grad=True)
        return loss, acc, dict(zip(self.params, grads)), x_in

    def describe(self) -> dict:
        cfg = None
        if self.attack is not None:
            cfg = self.attack.config() if hasattr(self.attack, "config") else repr(self.attack)
        return {"mode": self.mode, "attack": cfg, "n_examples": int(len(self.x)), "bn": self.bn,
                "soft_targets": self.targets is not None, "loss": "custom" if self.loss_fn else "cross-entropy"}


# ---------------------------------------------------------------------------- shared helpers
@torch.no_grad()
def predict_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
                  targets: torch.Tensor | None = None) -> tuple[float, float, torch.Tensor]:
    """``(mean cross-entropy, accuracy, per-example correct)`` of ``model`` in eval mode."""
    losses, correct = [], []
    with model_mode(model, "eval"):
        for i in range(0, len(x), batch_size):
            logits = model(x[i:i + batch_size])
            t = (targets if targets is not None else y)[i:i + batch_size]
            losses.append(cross_entropy(logits, t, reduction="none"))
            correct.append(logits.argmax(1) == y[i:i + batch_size])
    c = torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)
    loss = float(torch.cat(losses).mean()) if losses else float("nan")
    return loss, float(c.float().mean()) if len(c) else float("nan"), c
