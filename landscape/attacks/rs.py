"""Sparse-RS: black-box random search for l0 perturbations (Croce, Andriushchenko, Singh, Flammarion,
Hein, "Sparse-RS: a versatile framework for query-efficient sparse black-box adversarial attacks",
AAAI 2022).

Threat model
    l0, ``eps`` = k pixels; perturbed pixels are set to corners of the colour cube ({0,1}^C).

Algorithm (per example, only forward passes)
    Start from k random pixels set to random corners. At query ``i`` swap ``a_i`` pixels of the current
    set (they get their clean value back) for ``a_i`` pixels outside it (set to random corners; when
    ``a_i = 1`` the new colour differs from the old one). Keep the candidate if it lowers the loss or
    misclassifies. ``a_i = max(1, floor(alpha_i * k))`` with the piecewise-constant schedule of the
    paper, ``alpha_i = p_init / {1, 2, 4, 5, 6, 8, 10, 12, 15, 20}`` with breakpoints at
    ``{0, 50, 200, 500, 1000, 2000, 4000, 6000, 8000}`` queries, rescaled to ``n_queries / 10000``.
    Examples stop as soon as they are misclassified.
    ``precision='bfloat16'`` runs the queries under bf16 autocast; a query whose verdict could be
    wrong (misclassified, or correct by a small margin) is evaluated again in float32
    (:func:`~landscape.attacks.base.settle_verdicts`), so every success is a float32 one, while the
    others are accepted or rejected on their bf16 loss. That is 1.5-1.75x faster here but was weaker
    on one of two models (``benchmarks/bench_rs_precision.py``, benchmarks/RESULTS.md): the accept
    decisions on bf16 losses are noisy. Late in the search, candidates' losses differ by about as
    much as bf16's error of them, so bf16 reverses 5-22% of the decisions, and settling each doubtful
    one in float32 would cost more than bf16 saves (``benchmarks/rs_bf16_decisions.py``). So it is a
    library option only; sparse-AutoAttack and ``landscape eval`` keep Sparse-RS in float32.

Arguments (defaults: the sparse-AutoAttack configuration of the sPGD authors)
    eps (k), n_queries=10000, p_init=0.8, loss='margin' (or 'ce'), restarts=1, seed=None, mode='eval';
    precision='float32' (ours; 'bfloat16' above).

Example::

    >>> x_adv = SparseRS(eps=20, n_queries=10000)(model, x, y)
"""

from __future__ import annotations

import torch

from ..errors import LandscapeError
from .base import Attack, search_context, search_precision, settle_verdicts
from .losses import generator_for, margin

_BREAKS = (0, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_DIVS = (2, 4, 5, 6, 8, 10, 12, 15, 20)


def alpha_schedule(it: int, n_queries: int, p_init: float) -> float:
    """Fraction of the k pixels swapped at query ``it`` (piecewise constant, rescaled to 10,000 queries)."""
    t = int(it / n_queries * 10000)
    div = 1
    for lo, d in zip(_BREAKS, _DIVS):
        if t > lo:
            div = d
    return p_init / div


class SparseRS(Attack):
    """Sparse-RS for l0 (see module docstring)."""

    name = "rs"
    norms = ("l0",)

    def __init__(self, eps: float = 20, n_queries: int = 10000, *, p_init: float = 0.8, loss: str = "margin",
                 restarts: int = 1, seed: int | None = None, norm: str = "l0", mode: str = "eval",
                 precision: str = "float32"):
        super().__init__(eps, norm, mode=mode)
        self.n_queries = self._counts(n_queries=n_queries)["n_queries"]
        self.precision = search_precision(precision)
        if loss not in ("margin", "ce"):
            raise LandscapeError(f"Sparse-RS minimises 'margin' or 'ce', not {loss!r}")
        if not 0 < p_init <= 1:
            raise LandscapeError(f"p_init must be in (0, 1], got {p_init}")
        self.p_init = float(p_init)
        self._set_loss(loss, seed)
        self.restarts = int(restarts)

    def _objective(self, model, x, y):
        with search_context(self.precision, x.device):
            logits = model(x)
        if self.precision != "float32":
            logits = settle_verdicts(model, x, y, logits)[0]
        mg = margin(logits, y)
        if self.loss == "margin":
            return mg, mg
        return mg, -torch.nn.functional.cross_entropy(logits, y, reduction="none")

    @staticmethod
    def _corners(shape, gen, device, dtype):
        return torch.randint(0, 2, shape, generator=gen, device=device).to(dtype)

    def perturb(self, model, x, y):
        # queries only: inference mode (no autograd bookkeeping; 14% faster per forward on the CPU),
        # the result cloned outside it so that it may enter a graph later (the Hessian's fixed points)
        with torch.inference_mode():
            out = self._queries(model, x, y)
        return out.clone()

    def _queries(self, model, x, y):
        gen = generator_for(self.seed, x.device)
        out = x.clone()
        alive = model(x).argmax(1) == y
        for _ in range(self.restarts):
            idx = alive.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            x_adv, fooled = self._single_run(model, x[idx], y[idx], gen)
            out[idx] = x_adv
            alive[idx[fooled]] = False
        return out

    def _single_run(self, model, x, y, gen):
        n, c, h, w = x.shape
        hw = h * w
        k = min(self.threat.k, hw)
        dev, dt = x.device, x.dtype
        xf = x.reshape(n, c, hw)
        order = torch.rand((n, hw), generator=gen, device=dev).argsort(dim=1)
        inside, outside = order[:, :k].clone(), order[:, k:].clone()    # perturbed set and complement
        best = xf.clone()
        best.scatter_(2, inside[:, None, :].expand(n, c, k), self._corners((n, c, k), gen, dev, dt))
        mg, loss = self._objective(model, best.view_as(x), y)
        if k == hw:  # nothing to swap
            return best.view_as(x), mg < 0
        for it in range(1, self.n_queries):
            act = (mg >= 0).nonzero().squeeze(1)
            if act.numel() == 0:
                break
            na = act.numel()
            a = max(1, int(alpha_schedule(it, self.n_queries, self.p_init) * k))
            a = min(a, k, hw - k)
            pos_in = torch.rand((na, k), generator=gen, device=dev).topk(a, dim=1).indices
            pos_out = torch.rand((na, hw - k), generator=gen, device=dev).topk(a, dim=1).indices
            pix_in = inside[act].gather(1, pos_in)           # leave the set: restore clean values
            pix_out = outside[act].gather(1, pos_out)        # join the set: random corners
            cand = best[act].clone()
            xa = xf[act]
            gi = pix_in[:, None, :].expand(na, c, a)
            go = pix_out[:, None, :].expand(na, c, a)
            cand.scatter_(2, gi, xa.gather(2, gi))
            new = self._corners((na, c, a), gen, dev, dt)
            if a == 1:
                old = cand.gather(2, go)
                same = (new == old).all(dim=1, keepdim=True)
                new = torch.where(same, 1 - old.round(), new)
            cand.scatter_(2, go, new)
            mg_new, loss_new = self._objective(model, cand.view(na, c, h, w), y[act])
            acc = (loss_new < loss[act]) | (mg_new < 0)
            if acc.any():
                j = act[acc]
                best[j] = cand[acc]
                mg[j] = mg_new[acc]
                loss[j] = loss_new[acc]
                ins, outs = inside[j], outside[j]
                pi, po = pos_in[acc], pos_out[acc]
                vin, vout = ins.gather(1, pi), outs.gather(1, po)
                ins.scatter_(1, pi, vout)
                outs.scatter_(1, po, vin)
                inside[j], outside[j] = ins, outs
        return best.view_as(x).clamp(0, 1), mg < 0
