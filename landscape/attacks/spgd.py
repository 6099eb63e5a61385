"""Sparse-PGD: white-box l0 attack (Zhong & Liu, "Efficient and Effective Adversarial Attacks on
Sparse Perturbations", ICML 2024).

Threat model
    l0, ``eps`` = k pixels (a pixel whose channels change counts once), inside the [0,1] box.

The perturbation is ``delta = p ⊙ b(m)``: a dense magnitude tensor ``p`` (N,C,H,W), kept inside
``[-magnitude, magnitude]`` and the box, and a real-valued per-pixel mask ``m`` (N,1,H,W) whose
binary projection ``b(m)`` keeps the k largest entries of ``sigmoid(m)``.

* The forward pass always uses the binary mask, so every iterate is a valid l0 perturbation.
* ``projected=False`` (the *unprojected* gradient, the stronger default): the gradient reaches ``p``
  through the continuous mask ``sigmoid(m)``, so pixels outside the current top-k still learn a
  magnitude. ``projected=True`` back-propagates to ``p`` through the binary mask.
* ``p`` takes a sign step of size ``alpha * magnitude``; ``m`` takes an l2-normalised step of
  length ``beta * sqrt(H*W)``.
* Per-example early stop (once misclassified), best-loss tracking, and the mask is redrawn from
  N(0,1) when its top-k set has not changed for ``patience`` consecutive iterations.
* ``precision='bfloat16'`` runs the search's forwards and backwards under bf16 autocast (sPGD on
  1,000 images 1.5-1.8x faster on this project's CPU, which has avx512_bf16; GPUs with bf16 units
  are unmeasured); the state (``p``, ``m``,
  the clean forward) stays float32, and every verdict near the decision boundary (misclassified, or
  correct by less than 5% of the largest |logit|) is settled by a float32 forward of those examples,
  so bf16 rounding neither ends an example's attack nor hides a success. The attack then keeps no
  logits (``keeps_logits`` is False): a caller evaluates the returned examples in float32 itself.

Arguments (defaults from the authors' code)
    eps (k pixels), steps=300, projected=False, alpha=0.25, beta=0.25, patience=3, magnitude=1.0,
    loss='adaptive' (CE where confident, negative margin where the margin < 0.5),
    random_start=True, early_stop=True, track_best=True, seed=None, mode='eval';
    precision='float32' (ours; 'bfloat16' above).

Shapes
    x (N,C,H,W) in [0,1], y (N,) -> x_adv (N,C,H,W) with at most k changed pixels.

Example::

    >>> x_adv = SparsePGD(eps=20, steps=300)(model, x, y)
    >>> x_adv = SparsePGD(eps=20, steps=1, early_stop=False, track_best=False)(model, x, y)  # fast AT
"""

from __future__ import annotations

import math

import torch

from ..errors import LandscapeError
from .base import Attack, search_context, search_precision, settle_verdicts
from .losses import generator_for


def topk_mask(m: torch.Tensor, k: int) -> torch.Tensor:
    """Binary (N,1,H,W) mask of the k largest entries of ``m`` per example."""
    n = m.shape[0]
    flat = m.reshape(n, -1)
    k = min(int(k), flat.shape[1])
    out = torch.zeros_like(flat)
    out.scatter_(1, flat.topk(k, dim=1).indices, 1.0)
    return out.view_as(m)


def masked_perturbation(p: torch.Tensor, m: torch.Tensor, k: int, projected: bool,
                        b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``p ⊙ topk(m)`` in the forward pass, with sparse-PGD's straight-through gradients.

    Returns ``(delta, binary_mask)``. Gradients: d/dp is ``g ⊙ sigmoid(m)`` (unprojected) or
    ``g ⊙ b`` (projected); d/d sigmoid(m) is ``sum_c g ⊙ p`` in both cases. ``b``: ``topk_mask(m, k)``
    when the caller has it already.
    """
    s = torch.sigmoid(m)
    if b is None:
        b = topk_mask(m.detach(), k)
    if projected:
        delta = p * b + p.detach() * (s - s.detach())
    else:
        delta = p * s + (p * (b - s)).detach()
    return delta, b


class SparsePGD(Attack):
    """Sparse-PGD (sPGD), l0. See the module docstring for the algorithm and defaults."""

    name = "spgd"
    norms = ("l0",)

    @property
    def keeps_logits(self) -> bool:   # the logits of the kept best iterate (see the end of perturb)
        return self.track_best and self.precision == "float32"

    def __init__(self, eps: float = 20, steps: int = 300, *, projected: bool = False, alpha: float = 0.25,
                 beta: float = 0.25, patience: int = 3, magnitude: float = 1.0, loss: str = "adaptive",
                 random_start: bool = True, early_stop: bool = True, track_best: bool = True,
                 seed: int | None = None, norm: str = "l0", mode: str = "eval", precision: str = "float32"):
        super().__init__(eps, norm, mode=mode)
        self.steps = self._counts(steps=steps)["steps"]
        if not 0 < magnitude <= 1:
            raise LandscapeError(f"the sparse-PGD magnitude bound must be in (0, 1], got {magnitude}")
        self.precision = search_precision(precision)
        self.projected = bool(projected)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.patience = int(patience)
        self.magnitude = float(magnitude)
        self._set_loss(loss, seed)
        self.random_start = bool(random_start)
        self.early_stop = bool(early_stop)
        self.track_best = bool(track_best)
        if projected:
            self.name = "spgd-projected"

    # ------------------------------------------------------------------ pieces
    def _init_p(self, x: torch.Tensor, gen) -> torch.Tensor:
        if self.random_start:
            p = (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * self.magnitude
        else:
            p = torch.zeros_like(x)
        return torch.minimum(torch.maximum(p, -x), 1 - x)

    @staticmethod
    def _init_m(x: torch.Tensor, gen) -> torch.Tensor:
        n, _, h, w = x.shape
        return torch.randn((n, 1, h, w), generator=gen, device=x.device, dtype=x.dtype)

    def _settle(self, model, x_adv, y, logits, loss):
        """``(logits, loss, fooled)`` of a bf16 search step, its doubtful verdicts settled in float32
        (:func:`~landscape.attacks.base.settle_verdicts`)."""
        logits, rows = settle_verdicts(model, x_adv, y, logits)
        if rows.numel():
            loss = loss.clone()
            loss[rows] = self._loss(logits[rows], y[rows]).to(loss.dtype)
        return logits, loss, logits.argmax(1) != y

    def perturb(self, model, x, y):
        gen = generator_for(self.seed, x.device)
        k = self.threat.k
        n, _, h, w = x.shape
        p = self._init_p(x, gen)
        m = self._init_m(x, gen)
        mask_step = self.beta * math.sqrt(h * w)
        step = self.alpha * self.magnitude

        best_delta = torch.zeros_like(x)
        best_loss = torch.full((n,), float("-inf"), device=x.device, dtype=x.dtype)
        best_fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        done = torch.zeros(n, dtype=torch.bool, device=x.device)
        best_logits = None                              # (n, classes), made at the first forward
        self.last_logits = None
        if self.early_stop:
            with torch.no_grad():
                clean = model(x)
                done = clean.argmax(1) != y             # already misclassified: nothing to do
            best_fooled = done.clone()
            best_logits = clean.detach().clone()

        # The examples still attacked, compacted: row j of every "a" tensor is example act[j]. They
        # are gathered once, and shrunk only when some of them stop (early stop), so a step does no
        # gather or scatter of images; an example's best is written back when it leaves the set.
        act = (~done).nonzero().squeeze(1)
        xa, ya, pa, ma = x[act], y[act], p[act], m[act]
        lo = torch.maximum(torch.full_like(xa, -self.magnitude), -xa)   # p's bounds: the magnitude
        hi = torch.minimum(torch.full_like(xa, self.magnitude), 1 - xa)  # and the box, in one clamp
        bd, bl, bf = best_delta[act], best_loss[act], best_fooled[act]
        unchanged = torch.zeros(act.numel(), dtype=torch.long, device=x.device)
        ba = topk_mask(ma, k) if act.numel() else None  # the binary mask of ma, kept up to date

        bg = None                                       # the logits of bd (track_best), as bl
        bf16 = self.precision == "bfloat16"

        def flush(rows):
            best_delta[act[rows]] = bd[rows]
            best_loss[act[rows]] = bl[rows]
            best_fooled[act[rows]] = bf[rows]
            if bg is not None:
                best_logits[act[rows]] = bg[rows]

        for it in range(self.steps + 1):
            if act.numel() == 0:
                break
            last = it == self.steps
            if last and not self.track_best:
                with torch.no_grad():
                    bd = masked_perturbation(pa, ma, k, self.projected, ba)[0]
                break
            pi = pa.requires_grad_(not last)
            mi = ma.requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                delta, b = masked_perturbation(pi, mi, k, self.projected, ba)
                x_in = xa + delta
                with search_context(self.precision, x.device):
                    logits = model(x_in)
                logits = logits.float() if bf16 else logits
                loss = self._loss(logits, ya)
                if not last:
                    gp, gm = torch.autograd.grad(loss.sum(), [pi, mi])
            with torch.no_grad():
                delta, loss = delta.detach(), loss.detach()
                if bf16:                        # a verdict near the boundary is float32's
                    logits, loss, fooled = self._settle(model, x_in.detach(), ya, logits.detach(), loss)
                else:
                    fooled = logits.argmax(1) != ya
                if self.track_best:
                    better = (fooled & ~bf) | ((fooled == bf) & (loss > bl))
                else:                        # keep only successes; the last iterate is taken below
                    better = fooled
                if self.track_best:
                    lg = logits.detach()
                    if bg is None:
                        if best_logits is None:
                            best_logits = torch.full((n, lg.shape[1]), float("nan"), device=x.device, dtype=lg.dtype)
                        bg = best_logits[act]
                if better.any():
                    bd = torch.where(better.view(-1, 1, 1, 1), delta, bd)
                    bl = torch.where(better, loss, bl)
                    bf = torch.where(better, fooled, bf)
                    if bg is not None:
                        bg = torch.where(better.view(-1, 1), lg, bg)
                if last:
                    break
                # magnitude: sign step, then back into [-magnitude, magnitude] and the box
                pn = torch.clamp(pi.detach() + step * gp.sign(), lo, hi)
                # mask: l2-normalised step (no step where the gradient vanishes)
                gnorm = gm.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                mn = mi.detach() + torch.where(gnorm > 2e-10, mask_step * gm / (gnorm + 1e-10), torch.zeros_like(gm))
                bn = topk_mask(mn, k)
                same = (bn == b).flatten(1).all(dim=1)
                unchanged = torch.where(same, unchanged + 1, torch.zeros_like(unchanged))
                redraw = unchanged >= self.patience
                if redraw.any():
                    fresh = self._init_m(xa[redraw], gen)
                    mn[redraw] = fresh
                    bn[redraw] = topk_mask(fresh, k)
                    unchanged[redraw] = 0
                pa, ma, ba = pn, mn, bn
                if self.early_stop and fooled.any():
                    flush(fooled)
                    keep = ~fooled
                    act, xa, ya, pa, ma, ba = act[keep], xa[keep], ya[keep], pa[keep], ma[keep], ba[keep]
                    lo, hi, bd, bl, bf, unchanged = lo[keep], hi[keep], bd[keep], bl[keep], bf[keep], unchanged[keep]
                    if bg is not None:
                        bg = bg[keep]
        if act.numel():
            flush(slice(None))
        if self.keeps_logits and best_logits is not None:
            # the model's logits on the examples returned, for a loss-keeping caller (MaxLoss) that
            # would otherwise run that forward again. They are the forward's on x + delta; the
            # magnitudes lie in [-x, 1 - x], so the clamp below moves a pixel by at most a rounding
            # error (the unprojected delta is p*s + p*(b - s), p to an ulp where b = 1)
            self.last_logits = best_logits
        return (x + best_delta).clamp(0, 1)


def sparse_noise(x: torch.Tensor, max_pixels: int, gen=None) -> torch.Tensor:
    """``x + η``: for each example a number of pixels drawn uniformly from ``{0, ..., max_pixels}``,
    each chosen pixel (all its channels) set to uniform random values in [0, 1].

    The l0 analogue of N-FGSM's noise (the paper's Alg. 3 line 5, η ∈ S_2k). The count's and the
    values' distributions are not given by the paper; these are our choice (``docs/design.md``).
    """
    n, c, h, w = x.shape
    kmax = min(int(max_pixels), h * w)
    if kmax <= 0:
        return x
    counts = torch.randint(0, kmax + 1, (n, 1), generator=gen, device=x.device)
    scores = torch.rand((n, h * w), generator=gen, device=x.device)
    ranks = scores.argsort(dim=1).argsort(dim=1)          # a uniformly random permutation per row
    sel = (ranks < counts).to(x.dtype).view(n, 1, h, w)
    values = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return x * (1 - sel) + values * sel


class NoisySparsePGD(Attack):
    """N-FGSM-style noisy l0 attack for fast training.

    Random sparse noise first (:func:`sparse_noise`: a uniformly drawn number of pixels in
    ``[0, noise_pixels]``, default ``2k`` as the paper's Alg. 3, set to uniform random values); then
    ``steps`` sparse-PGD steps (random start, budget k) from the noisy point, their gradient
    unprojected or ``projected`` as :class:`SparsePGD`'s. With ``within_budget=False`` (the training
    default, as N-FGSM) the result lies in the l0 ball of radius ``k + noise_pixels``, not the threat
    model's; with ``within_budget=True`` it is projected back onto ``ThreatModel('l0', k)``. (Recipes
    stored before the rename call ``within_budget`` ``project``; :class:`~landscape.attacks.spec.AttackSpec`
    reads them.)
    Evaluation never uses it. (The trainer applies the noise to the input itself, so that the clean
    term and the soft labels see it too; this class is the same thing as one attack.)

    Example::

        >>> x_adv = NoisySparsePGD(eps=20)(model, x, y)
    """

    name = "nspgd1"
    norms = ("l0",)

    def __init__(self, eps: float = 20, steps: int = 1, *, noise_pixels: int | None = None,
                 within_budget: bool = False, projected: bool = False, alpha: float = 0.25, beta: float = 0.25,
                 magnitude: float = 1.0, loss: str = "adaptive", early_stop: bool | None = None, patience: int = 3,
                 seed: int | None = None, norm: str = "l0", mode: str = "eval"):
        super().__init__(eps, norm, mode=mode)
        self.noise_pixels = int(2 * self.threat.k if noise_pixels is None else noise_pixels)
        self.within_budget = bool(within_budget)
        self.seed = seed
        self.steps = int(steps)
        multi = self.steps > 1 if early_stop is None else bool(early_stop)
        self._spgd = SparsePGD(eps, steps, projected=projected, alpha=alpha, beta=beta, magnitude=magnitude,
                               loss=loss, early_stop=multi, track_best=multi, patience=patience,
                               seed=None if seed is None else seed + 1, mode=mode)

    def perturb(self, model, x, y):
        gen = generator_for(self.seed, x.device)
        x_noisy = sparse_noise(x, self.noise_pixels, gen)
        x_adv = self._spgd.perturb(model, x_noisy, y)
        if self.within_budget:
            x_adv = self.threat.project(x, x_adv)
        return x_adv.clamp(0, 1)
