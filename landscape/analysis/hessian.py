r"""The Hessian of a loss of the weights, as a :class:`scipy.sparse.linalg.LinearOperator`.

For a fixed sample of :math:`N` examples cut into batches :math:`B_1, \dots, B_m` (the last one may be
smaller) and a per-batch mean loss :math:`\ell_b(\theta)`, the operator is the Hessian of the mean loss
over all examples

.. math::

    L(\theta) = \frac{1}{N} \sum_b |B_b|\, \ell_b(\theta), \qquad
    H v = \frac{1}{N} \sum_b |B_b|\, \nabla^2_\theta \ell_b(\theta)\, v ,

each term a Hessian-vector product by double back-propagation (Pearlmutter's trick:
:math:`\nabla_\theta \langle \nabla_\theta \ell_b, v \rangle`). Everything the products need (the
batches, the fixed adversarial examples, soft labels) is held on the device, so an HVP is pure
forward/backward work.

**Cached gradient graphs.** The graph of :math:`\nabla_\theta \ell_b` does not depend on ``v``, so
the operator keeps it (``cache="auto"``, the default, when its estimated size fits the memory budget):
the first product pays forward, backward and double backward for every batch, every later one only
the double backward. The graphs are rebuilt whenever a parameter or buffer of the model was changed
in place since they were built (its version counter moved), so a product never uses stale weights.
``cache=False`` recomputes every time (least memory); ``cache=True`` always caches.

**The products' copy of the model.** On the CPU in float32 (``rewrites="auto"``, the default) the
products run on a copy of the model that shares its parameters and buffers and whose convolutions,
ReLUs and max-pools are rewritten so that the double backward runs on oneDNN's channels_last kernels
and materialises no zero tensors (:mod:`landscape.analysis.hvp_copy`): the same Hessian, one
product of the full-width small-cnn 1.2x faster and its cached graphs 28% smaller
(benchmarks/RESULTS.md). ``rewrites=()`` runs the model itself; ``model`` is always the plain network.

**bf16 products.** ``autocast="bfloat16"`` builds each batch's gradient graph under bf16 autocast, so
the double backward's convolutions and matrix products run in bf16: 1.87x as fast on this project's
CPU (avx512_bf16) for the full-width small-cnn (a GPU: not measured yet), but the product is that of
the bf16 network, 2.7% off the float32 one there (benchmarks/RESULTS.md). It is meant for
``lanczos_topk(op, precision="bfloat16")``, which builds the Krylov space with such products and
settles the eigenpairs with float32 ones (:meth:`HessianOperator.with_autocast`).

The loss is named by a :class:`LossSpec`:

``clean``        cross-entropy on the clean inputs;
``adversarial``  cross-entropy on adversarial inputs computed **once** at the centre point by the
                 threat model's attack and then held fixed (Danskin-style; ``mode="fixed"`` in the
                 metadata);
``recipe``       the checkpoint's own training loss (soft labels of self-adaptive training, trade-off,
                 TRADES) through :func:`landscape.training.losses.recipe_loss`, also with fixed
                 adversarial inputs; this is the loss Theorems 4.1/4.2 of Zhong et al. (2025) speak of.

The model is put in an explicit mode (``eval`` by default) for every product and the mode it had is
restored afterwards; in ``train`` mode BatchNorm uses the statistics of each (fixed) batch and its
running statistics are restored after every product, so the operator has no side effects.

Under ``torch.distributed`` (torchrun) every rank holds a shard of the batches; the weighted sums are
all-reduced, so each rank sees the same :math:`Hv` and an estimator running the same deterministic
sequence on every rank stays in lock-step.

Example::

    >>> op = hessian_operator(model, x, y, loss="clean", batch_size=128, dtype=torch.float64)
    >>> from landscape.analysis.estimators import lanczos_topk
    >>> res = lanczos_topk(op, k=20)
    >>> res.eigenvalues, res.residuals, res.converged, op.n_hvp
"""

from __future__ import annotations

import copy
import fnmatch
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator
from torch import nn

from ..attacks.base import model_mode
from ..device import available_memory
from ..distributed import rank_world
from ..errors import LandscapeError
from . import hvp_copy

LOSSES = ("clean", "adversarial", "recipe")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _autocast_dtype(autocast) -> torch.dtype | None:
    if autocast is None or autocast == "float32" or autocast == torch.float32:
        return None
    if autocast in ("bfloat16", torch.bfloat16):
        return torch.bfloat16
    raise LandscapeError(f"`autocast` must be None or bfloat16, not {autocast!r}")


# ----------------------------------------------------------------------------------------- batches
@dataclass
class Batch:
    """One fixed batch: inputs ``x`` in [0,1], labels ``y``, optional fixed ``x_adv`` and ``targets``
    (soft labels, ``(n, classes)``, for recipe losses)."""

    x: torch.Tensor
    y: torch.Tensor
    x_adv: torch.Tensor | None = None
    targets: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def to(self, device=None, dtype=None) -> "Batch":
        def mv(t, floating=True):
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if (floating and t.is_floating_point()) else None)
        return Batch(mv(self.x), mv(self.y, False), mv(self.x_adv), mv(self.targets))


def make_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, x_adv: torch.Tensor | None = None,
                 targets: torch.Tensor | None = None) -> list[Batch]:
    """Cut a fixed sample into batches of ``batch_size`` (the last may be smaller)."""
    if batch_size <= 0:
        raise LandscapeError(f"`batch_size` must be positive, got {batch_size}")
    out = []
    for s in range(0, len(y), batch_size):
        sl = slice(s, s + batch_size)
        out.append(Batch(x[sl], y[sl], None if x_adv is None else x_adv[sl],
                         None if targets is None else targets[sl]))
    return out


# ------------------------------------------------------------------------------------------ losses
@dataclass
class LossSpec:
    """Which loss the Hessian is of: ``clean``, ``adversarial`` (fixed x_adv) or ``recipe``.

    ``fn(model, batch) -> scalar`` overrides the built-in losses (any per-batch **mean** loss).
    ``recipe`` is the plain recipe dict of a checkpoint (used when ``kind == "recipe"``).
    """

    kind: str = "clean"
    recipe: dict | None = None
    fn: Callable[[nn.Module, Batch], torch.Tensor] | None = None
    _recipe_obj: object = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in LOSSES:
            raise LandscapeError(f"unknown loss {self.kind!r}; choose one of {', '.join(LOSSES)}")

    @property
    def needs_adversarial(self) -> bool:
        return self.kind in ("adversarial", "recipe")

    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        if self.fn is not None:
            return self.fn(model, batch)
        if self.kind == "clean":
            return F.cross_entropy(model(batch.x), batch.y)
        if self.kind == "adversarial":
            if batch.x_adv is None:
                raise LandscapeError("the adversarial loss needs fixed adversarial inputs (x_adv)")
            return F.cross_entropy(model(batch.x_adv), batch.y)
        # recipe
        from ..training.losses import recipe_loss
        if self._recipe_obj is None:
            from ..training.recipe import Recipe
            self._recipe_obj = Recipe.from_dict(self.recipe or {})
        targets = batch.targets if batch.targets is not None else batch.y
        x_adv = batch.x_adv if batch.x_adv is not None else batch.x
        return recipe_loss(self._recipe_obj, model, batch.x, x_adv, targets)


# -------------------------------------------------------------------------------------- parameters
def select_parameters(model: nn.Module, pattern: str | Sequence[str] | None = None) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` pairs whose name matches ``pattern``.

    ``pattern`` is one or more comma-separated patterns; a name is selected when it matches any of
    them as a glob (``features.*.weight``) or as a regular expression searched in the name
    (``^classifier\\.``). ``None``, ``""`` or ``"all"`` selects every parameter that requires grad.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if pattern is None or (isinstance(pattern, str) and pattern.strip() in ("", "all", "*")):
        if not named:
            raise LandscapeError("the model has no trainable parameters")
        return named
    pats = [s.strip() for s in (pattern.split(",") if isinstance(pattern, str) else pattern) if s.strip()]
    regexes = []
    for pat in pats:
        try:
            regexes.append(re.compile(pat))
        except re.error:
            regexes.append(None)
    out = [(n, p) for n, p in named
           if any(fnmatch.fnmatchcase(n, pat) or (rx is not None and rx.search(n)) for pat, rx in zip(pats, regexes))]
    if not out:
        names = ", ".join(n for n, _ in named[:8]) + (", ..." if len(named) > 8 else "")
        raise LandscapeError(f"`params` {pattern!r} matches no parameter; names are like {names}")
    return out


def shard(batches: list, rank: int, world: int) -> list:
    """The batches rank ``rank`` of ``world`` owns (round-robin, so shards differ by at most one)."""
    return batches[rank::world]


# ---------------------------------------------------------------------------------------- operator
class HessianOperator(LinearOperator):
    r"""Hessian of the example-weighted mean loss over fixed batches, w.r.t. selected parameters.

    Arguments:
        model: the network (used as is when its dtype is ``dtype``, otherwise a converted copy).
        loss: a :class:`LossSpec`, a loss name, or ``fn(model, batch) -> mean loss``.
        batches: the fixed :class:`Batch` list this process owns (all of them in one process).
        params: a parameter pattern (see :func:`select_parameters`) or None for all.
        mode: ``"eval"`` (default) or ``"train"`` (BatchNorm batch statistics; buffers restored).
        dtype: ``torch.float32`` or ``torch.float64`` (also ``"float32"``/``"float64"``).
        device: where products run (default: the model's device).
        n_total: examples over all ranks (default: the sum, all-reduced when distributed).
        distributed: all-reduce products over ``torch.distributed`` (default: when initialised).
        cache: keep each batch's gradient graph between products: ``"auto"`` (default; when the
            estimated size is below ``cache_budget`` bytes, default a quarter of the free memory of
            the device), ``True`` or ``False``.
        autocast: None (default) or ``"bfloat16"``: build the gradient graphs under bf16 autocast
            (the products' result stays in ``dtype``; see the module's notes).
        rewrites: how the operator's own copy of the model is rewritten for cheaper products (the
            same function and derivatives; :mod:`landscape.analysis.hvp_copy`): ``"auto"`` (default:
            all of them for float32 on the CPU, none elsewhere), or a tuple of names (``()``: none).

    Attributes ``n_hvp`` (full-sample Hessian-vector products so far), ``hvp_time`` (seconds spent in
    them), ``names``, ``shapes``, ``n_params`` (= ``shape[0]``), ``rewrites`` (the names applied),
    ``graph_model`` (what the products run: the rewritten copy, or ``model`` itself), ``cached`` (whether
    gradient graphs are held now) and ``cache_bytes`` (their estimated size).
    """

    def __init__(self, model: nn.Module, loss: LossSpec | str | Callable, batches: Sequence[Batch], *,
                 params: str | Sequence[str] | None = None, mode: str = "eval",
                 dtype: torch.dtype | str = torch.float32, device=None, n_total: int | None = None,
                 distributed: bool | None = None, cache: bool | str = "auto", cache_budget: int | None = None,
                 autocast: str | torch.dtype | None = None, rewrites: str | Sequence[str] = "auto"):
        if cache not in ("auto", True, False):
            raise LandscapeError(f"cache must be 'auto', True or False, not {cache!r}")
        autocast = _autocast_dtype(autocast)
        if isinstance(dtype, str):
            if dtype not in DTYPES:
                raise LandscapeError(f"unknown dtype {dtype!r}; use float32 or float64")
            dtype = DTYPES[dtype]
        if dtype not in (torch.float32, torch.float64):
            raise LandscapeError("the Hessian operator works in float32 or float64")
        if mode not in ("eval", "train"):
            raise LandscapeError(f"unknown model mode {mode!r}; use eval or train")
        if isinstance(loss, str):
            loss = LossSpec(loss)
        elif not isinstance(loss, LossSpec):
            loss = LossSpec("clean", fn=loss)
        first = next(model.parameters())
        device = torch.device(device) if device is not None else first.device
        if first.dtype != dtype or first.device != device:
            model = copy.deepcopy(model).to(device=device, dtype=dtype)
        self.model = model
        if isinstance(rewrites, str):
            if rewrites != "auto":
                raise LandscapeError(f"`rewrites` must be 'auto' or a tuple of names, not {rewrites!r}")
            rewrites = hvp_copy.auto_rewrites(device, dtype, model)
        self.rewrites = hvp_copy.check_rewrites(rewrites)
        # what the products run: a copy sharing the model's parameters and buffers (the model itself
        # without rewrites); ``model`` stays the plain network (what PyHessian is given)
        self.graph_model = hvp_copy.prepare(model, self.rewrites)
        self.loss = loss
        self.mode = mode
        self.torch_dtype = dtype
        self.device = device
        self.batches = [b.to(device, dtype) for b in batches]
        if not self.batches and not (distributed or rank_world()[1] > 1):
            raise LandscapeError("the Hessian needs at least one example")
        named = select_parameters(model, params)
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shapes = [tuple(p.shape) for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.n_params = int(sum(self.numels))
        self.rank, self.world = rank_world()
        self.distributed = (self.world > 1) if distributed is None else bool(distributed)
        local = sum(b.n for b in self.batches)
        if n_total is None:
            n_total = local
            if self.distributed:
                t = torch.tensor([float(local)], dtype=torch.float64, device=device)
                torch.distributed.all_reduce(t)
                n_total = int(t.item())
        self.n_examples = int(n_total)
        self.n_hvp = 0
        self.hvp_time = 0.0
        self.cache = cache
        self.cache_budget = cache_budget
        self.cache_bytes = 0
        self._graphs: list | None = None    # per batch: the gradient tuple, with its graph retained
        self._signature = None
        if autocast is not None and dtype != torch.float32:
            raise LandscapeError("`autocast` bfloat16 needs a float32 operator (`dtype` float32)")
        self.autocast = autocast
        super().__init__(dtype=np.float64 if dtype == torch.float64 else np.float32,
                         shape=(self.n_params, self.n_params))

    # ----------------------------------------------------------------- flat vectors <-> parameters
    def to_list(self, v) -> list[torch.Tensor]:
        """Split a flat vector (numpy or torch, length ``n_params``) into tensors shaped like the params."""
        t = self._as_tensor(v)
        return [c.view(s) for c, s in zip(torch.split(t, self.numels), self.shapes)]

    def to_flat(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Concatenate per-parameter tensors into one flat torch vector (operator dtype and device)."""
        return torch.cat([t.reshape(-1).to(device=self.device, dtype=self.torch_dtype) for t in tensors])

    def _as_tensor(self, v) -> torch.Tensor:
        if isinstance(v, torch.Tensor):
            t = v.to(device=self.device, dtype=self.torch_dtype)
        else:
            t = torch.as_tensor(np.ascontiguousarray(np.asarray(v).reshape(-1)), dtype=self.torch_dtype).to(self.device)
        if t.numel() != self.n_params:
            raise LandscapeError(f"vector of length {t.numel()} does not fit {self.n_params} parameters")
        return t.reshape(-1)

    # ----------------------------------------------------------------------- core products
    @contextmanager
    def _context(self):
        buffers = [(b, b.detach().clone()) for b in self.model.buffers()] if self.mode == "train" else []
        with model_mode(self.model, self.mode), model_mode(self.graph_model, self.mode):
            try:
                yield
            finally:
                with torch.no_grad():
                    for b, saved in buffers:
                        b.copy_(saved)

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            torch.distributed.all_reduce(t)
        return t / self.n_examples

    @property
    def cached(self) -> bool:
        return self._graphs is not None

    def clear_cache(self) -> None:
        """Drop the cached gradient graphs (the next product rebuilds them if caching is on)."""
        self._graphs = None
        self._signature = None

    def _state_signature(self):
        return tuple((id(t), t._version) for t in (*self.model.parameters(), *self.model.buffers()))

    def _budget(self) -> int:
        if self.cache_budget is not None:
            return int(self.cache_budget)
        return available_memory(self.device) // 4

    @contextmanager
    def _private_running_stats(self, on: bool):
        """In train mode, give BatchNorm private copies of its running statistics for one forward.

        A train-mode BatchNorm updates them in place and its backward keeps them, so a graph held
        for later products must not see them change (batch statistics are what it computes with:
        the copies change no number). The module's own tensors are put back afterwards."""
        mods = [m for m in self.graph_model.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None] if on else []
        saved = [(m, m.running_mean, m.running_var) for m in mods]
        for m, rm, rv in saved:
            m.running_mean, m.running_var = rm.clone(), rv.clone()
        try:
            yield
        finally:
            for m, rm, rv in saved:
                m.running_mean, m.running_var = rm, rv

    def _grads(self, b: Batch, count: list | None = None, keep: bool = False):
        """The batch's gradient with its graph (``create_graph``); ``count`` collects saved bytes;
        ``keep``: the graph will be held for later products."""
        with self._private_running_stats(keep and self.mode == "train"):
            return self._grads_inner(b, count)

    def _loss(self, b: Batch) -> torch.Tensor:
        if self.autocast is None:
            return self.loss(self.graph_model, b)
        with torch.autocast(self.device.type, dtype=self.autocast):
            return self.loss(self.graph_model, b).float()

    def with_autocast(self, autocast: str | torch.dtype | None = "bfloat16") -> "HessianOperator":
        """The same Hessian (model, loss, batches, parameters, mode: shared, not copied) with its
        graphs built under ``autocast`` (see the class): an operator of its own, with its own
        graph cache and product counters."""
        autocast = _autocast_dtype(autocast)
        if autocast is not None and self.torch_dtype != torch.float32:
            raise LandscapeError("`autocast` bfloat16 needs a float32 operator (`dtype` float32)")
        other = copy.copy(self)
        other.autocast = autocast
        other._graphs, other._signature, other.cache_bytes = None, None, 0
        other.reset_counters()
        return other

    def _grads_inner(self, b: Batch, count: list | None):
        if count is None:
            loss = self._loss(b)
            return torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True,
                                       materialize_grads=True)
        seen = set()

        def pack(t):
            key = (t.untyped_storage().data_ptr(), t.dtype)
            if key not in seen:
                seen.add(key)
                count[0] += t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = self._loss(b)
            g = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True,
                                    materialize_grads=True)
        # the gradients themselves (held too) and one more product's worth of temporaries
        count[0] += sum(x.numel() * x.element_size() for x in g)
        return g

    def _use_cache(self) -> bool:
        if self.cache is False:
            return False
        if self._graphs is not None and self._signature != self._state_signature():
            self.clear_cache()      # the weights (or BatchNorm buffers) moved: rebuild
        return True

    def hvp(self, v) -> torch.Tensor:
        """``H v`` as a flat torch vector (``v`` flat, numpy or torch); counts one HVP."""
        vs = self.to_list(v)
        t0 = time.perf_counter()
        out = torch.zeros(self.n_params, dtype=self.torch_dtype, device=self.device)
        use = self._use_cache()
        with self._context(), torch.enable_grad():
            if use and self._graphs is not None:
                graphs = self._graphs
            else:
                graphs = None
            building = use and graphs is None
            built, count = [], [0]
            for i, b in enumerate(self.batches):
                if graphs is not None:
                    grads = graphs[i]
                else:
                    measure = building and i == 0 and self.cache == "auto"
                    grads = self._grads(b, count if measure else None, keep=building)
                    if measure:
                        per_example = count[0] / max(b.n, 1)
                        self.cache_bytes = int(per_example * sum(bb.n for bb in self.batches))
                        if self.cache_bytes > self._budget():
                            building = False
                    if building:
                        built.append(grads)
                hv = torch.autograd.grad(grads, self.params, grad_outputs=vs, allow_unused=True,
                                         materialize_grads=True, retain_graph=graphs is not None or building)
                out.add_(torch.cat([h.reshape(-1) for h in hv]), alpha=float(b.n))
        if building:
            self._graphs = built
        if self._graphs is not None:
            # after the context restored the mode and buffers: the state the graphs belong to
            self._signature = self._state_signature()
        out = self._reduce(out)
        self.n_hvp += 1
        self.hvp_time += time.perf_counter() - t0
        return out

    def gradient(self) -> torch.Tensor:
        """The gradient of the mean loss, flat (not counted as an HVP; reuses cached graphs)."""
        out = torch.zeros(self.n_params, dtype=self.torch_dtype, device=self.device)
        cached = self._graphs if (self._use_cache() and self._graphs is not None) else None
        with self._context(), torch.enable_grad():
            for i, b in enumerate(self.batches):
                if cached is not None:
                    g = [x.detach() for x in cached[i]]
                else:
                    g = torch.autograd.grad(self._loss(b), self.params, allow_unused=True,
                                            materialize_grads=True)
                out.add_(torch.cat([x.reshape(-1) for x in g]), alpha=float(b.n))
        if cached is not None:
            self._signature = self._state_signature()
        return self._reduce(out)

    def loss_value(self) -> float:
        """The mean loss over the sample."""
        total = torch.zeros(1, dtype=self.torch_dtype, device=self.device)
        with self._context(), torch.no_grad():
            for b in self.batches:
                total += self._loss(b).detach() * b.n
        return float(self._reduce(total).item())

    # ----------------------------------------------------------------------- LinearOperator API
    def _matvec(self, x):
        return self.hvp(x).detach().cpu().numpy().astype(self.dtype, copy=False)

    def _rmatvec(self, x):
        return self._matvec(x)

    def _adjoint(self):
        return self

    def reset_counters(self) -> None:
        self.n_hvp = 0
        self.hvp_time = 0.0

    def describe(self) -> dict:
        """Plain metadata: loss, mode, dtype, sizes."""
        return {"loss": self.loss.kind, "model_mode": self.mode,
                "dtype": str(self.torch_dtype).replace("torch.", ""), "n_params": self.n_params,
                **({"autocast": str(self.autocast).replace("torch.", "")} if self.autocast is not None else {}),
                "rewrites": list(self.rewrites),
                "n_examples": self.n_examples, "n_batches_local": len(self.batches),
                "world_size": self.world if self.distributed else 1, "graph_cache": self.cached,
                "params": self.names if len(self.names) <= 64 else f"{len(self.names)} tensors"}


def hessian_operator(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: LossSpec | str | Callable = "clean",
                     x_adv: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                     batch_size: int = 256, **kwargs) -> HessianOperator:
    """Build a :class:`HessianOperator` from tensors (a fixed sample; see the class for ``kwargs``)."""
    return HessianOperator(model, loss, make_batches(x, y, batch_size, x_adv=x_adv, targets=targets), **kwargs)


# ------------------------------------------------------------------------------ from a checkpoint
def operator_from_checkpoint(ck, *, attack_kwargs: dict | None = None, **options) -> tuple[HessianOperator, dict]:
    """The Hessian operator of a checkpoint's loss on a fixed, seeded sample, and its metadata: the
    checkpoint-level layer :func:`landscape.analysis.api.hessian_operator_for` (see there for the
    options; ``attack_kwargs`` may hold ``steps`` and ``n_queries``)."""
    from .api import hessian_operator_for
    kw = dict(attack_kwargs or {})
    _, op, meta = hessian_operator_for(ck, attack_steps=kw.get("steps"), attack_queries=kw.get("n_queries"), **options)
    return op, meta


__all__ = ["Batch", "HessianOperator", "LOSSES", "LossSpec", "hessian_operator", "make_batches",
           "operator_from_checkpoint", "select_parameters", "shard"]
