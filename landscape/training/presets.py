"""Named recipes: the paper's ablation cells, its baselines, and fast recipes for every norm.

A preset is a function of the threat model ``(norm, eps)`` and a scale returning a
:class:`~landscape.training.recipe.Recipe`:

* ``scale="paper"``: the paper's PreActResNet-18 / CIFAR-10 settings (SGD, momentum 0.9, lr 0.05,
  weight decay 5e-4, batch 128, 100 epochs, lr x0.1 at 50% and 75%); evaluation by sparse-AutoAttack
  (l0) or the strong attack of the norm.
* ``scale="small"``: the same recipe shrunk for ``small-cnn`` on ``fashion-mnist-mini`` on a CPU:
  few epochs, no augmentation, a reduced-step strong attack for the CO monitor and the final
  evaluation, so that the quick start (``landscape train --norm l0 --eps 20``) takes minutes.

=====================  ========  =================================================================
preset                 norm      what
=====================  ========  =================================================================
fast-ls-l0             l0        1-step sTRADES (F) + soft labels (SAT) + N-FGSM noise: Fast-LS-l0
sat                    l0        multi-step sAT: adversarial CE, sPGD (train eps 6x eval eps)
strades                l0        multi-step sTRADES (F), sPGD (train eps 6x eval eps)
sat-1step              l0        1-step sAT (sPGD, 1 step, random start): suffers CO
tradeoff-1step         l0        1-step trade-off loss (α=0.5)
strades-t-1step        l0        1-step sTRADES (T): the attack maximises the KL term
strades-f-1step        l0        1-step sTRADES (F): the attack maximises CE
fast-l1                l1        1-step l1 attack + trade-off loss + soft labels
nfgsm-l2               l2        N-FGSM (de Jorge et al. 2022) under l2
nfgsm-linf             linf      N-FGSM under l∞
pgd-l1/l2/linf         l1/l2/l∞  multi-step baselines (APGD-l1 / PGD)
=====================  ========  =================================================================

The 1-step ablation cells combine with ``noise=true`` / ``soft_labels=true`` (``--set``) to give
every cell of Table 3; ``sat`` and ``strades`` combine with the same two settings to give the paper's
multi-step "+S&N" rows (noise turns their sPGD into ``nspgd``).
"""

from __future__ import annotations

from typing import Callable

from ..errors import LandscapeError
from ..threat import parse_eps, parse_norm
from .recipe import Recipe

SCALES = ("paper", "small")

#: the paper's default budget for each norm (CIFAR-10 scale)
DEFAULT_EPS = {"l0": 20.0, "l1": 12.0, "l2": 0.5, "linf": 8 / 255}

#: the natural preset for each norm (``landscape train --norm``)
NATURAL = {"l0": "fast-ls-l0", "l1": "fast-l1", "l2": "nfgsm-l2", "linf": "nfgsm-linf"}

# strong attacks per norm: (paper-scale final eval, small-scale final eval, monitor attack)
_STRONG = {
    # l0: the monitor and the small-scale evaluation use the whole sparse-AutoAttack cascade at a
    # reduced budget: unprojected sPGD alone misses catastrophic overfitting (on fashion-mnist-mini a
    # 1-step sAT model keeps 19% under sPGD-300 and 0% under the projected stage and Sparse-RS)
    "l0": (("saa", {}), ("saa", {"steps": 100, "n_queries": 300}), ("saa", {"steps": 20, "n_queries": 100})),
    "l1": (("apgd", {}), ("apgd", {"steps": 50}), ("apgd", {"steps": 10})),
    "l2": (("pgd", {"steps": 50}), ("pgd", {"steps": 20}), ("pgd", {"steps": 10})),
    "linf": (("pgd", {"steps": 50}), ("pgd", {"steps": 20}), ("pgd", {"steps": 10})),
}
_MULTI = {"l0": "spgd", "l1": "apgd", "l2": "pgd", "linf": "pgd"}


def _base(name: str, norm: str, eps: float, scale: str, **kw) -> Recipe:
    paper, small, monitor = _STRONG[norm]
    common = dict(name=name, norm=norm, eps=eps, monitor_attack=monitor[0],
                  monitor_attack_kwargs=dict(monitor[1]))
    if scale == "paper":
        common.update(eval_attack=paper[0], eval_attack_kwargs=dict(paper[1]), monitor_examples=1000)
    else:
        # small-cnn on fashion-mnist-mini on a CPU: 5 epochs, lr decay in the last 2; no augmentation
        common.update(eval_attack=small[0], eval_attack_kwargs=dict(small[1]), monitor_examples=200,
                      epochs=5, milestones=(0.6, 0.8), lr=0.05, batch_size=128, augment=False)
    common.update(kw)
    return Recipe(**common)


def _one_step(norm: str) -> str:
    return {"l0": "spgd1", "l1": "onestep-l1", "l2": "fgsm", "linf": "fgsm"}[norm]


PRESETS: dict[str, tuple[str | None, Callable[..., Recipe]]] = {}


def preset(name: str, norm: str | None):
    def deco(fn):
        PRESETS[name] = (norm, fn)
        return fn
    return deco


@preset("fast-ls-l0", "l0")
def _fast_ls_l0(norm, eps, scale):
    return _base("fast-ls-l0", norm, eps, scale, attack="spgd1", steps=1, loss="trades", trades_variant="F",
                 soft_labels=True, noise=True,
                 description="Fast-LS-l0: 1-step sTRADES + soft labels (SAT) + N-FGSM noise")


@preset("sat", "l0")
def _sat(norm, eps, scale):
    return _base("sat", norm, eps, scale, attack="spgd", steps=20 if scale == "paper" else 10, loss="ce",
                 train_eps=6 * eps, description="multi-step sAT: adversarial CE against sPGD at 6x the eval budget")


@preset("strades", "l0")
def _strades(norm, eps, scale):
    return _base("strades", norm, eps, scale, attack="spgd", steps=20 if scale == "paper" else 10,
                 loss="trades", trades_variant="F", train_eps=6 * eps,
                 description="multi-step sTRADES: TRADES loss, sPGD (CE objective) at 6x the eval budget")


@preset("sat-1step", "l0")
def _sat1(norm, eps, scale):
    return _base("sat-1step", norm, eps, scale, attack="spgd1", loss="ce",
                 description="1-step sAT (Table 3, column sAT); suffers catastrophic overfitting")


@preset("tradeoff-1step", "l0")
def _tradeoff1(norm, eps, scale):
    return _base("tradeoff-1step", norm, eps, scale, attack="spgd1", loss="tradeoff", tradeoff_alpha=0.5,
                 description="1-step trade-off loss (1-a)CE(x)+aCE(x+d) (Table 3, column Tradeoff)")


@preset("strades-t-1step", "l0")
def _strades_t1(norm, eps, scale):
    return _base("strades-t-1step", norm, eps, scale, attack="spgd1", loss="trades", trades_variant="T",
                 description="1-step sTRADES (T): the attack maximises KL(f(x)||f(x+d))")


@preset("strades-f-1step", "l0")
def _strades_f1(norm, eps, scale):
    return _base("strades-f-1step", norm, eps, scale, attack="spgd1", loss="trades", trades_variant="F",
                 description="1-step sTRADES (F): the attack maximises CE, the loss is TRADES")


@preset("fast-l1", "l1")
def _fast_l1(norm, eps, scale):
    return _base("fast-l1", norm, eps, scale, attack="onestep-l1", loss="tradeoff", soft_labels=True,
                 description="fast l1 training: 1-step l1 attack, trade-off loss, soft labels")


@preset("nfgsm-l2", "l2")
def _nfgsm_l2(norm, eps, scale):
    return _base("nfgsm-l2", norm, eps, scale, attack="fgsm", noise=True, loss="ce",
                 description="N-FGSM under l2: noisy 1-step attack, adversarial CE")


@preset("nfgsm-linf", "linf")
def _nfgsm_linf(norm, eps, scale):
    return _base("nfgsm-linf", norm, eps, scale, attack="fgsm", noise=True, loss="ce",
                 description="N-FGSM under linf: noisy 1-step attack, adversarial CE")


for _n in ("l1", "l2", "linf"):
    def _make(n):
        def fn(norm, eps, scale):
            return _base(f"pgd-{n}", norm, eps, scale, attack=_MULTI[n], steps=10 if scale == "paper" else 5,
                         loss="ce", description=f"multi-step {_MULTI[n]} adversarial training under {n}")
        return fn
    preset(f"pgd-{_n}", _n)(_make(_n))


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str | None = None, norm: str | None = None, eps=None, scale: str = "paper") -> Recipe:
    """The preset ``name`` (or the natural one for ``norm``) at budget ``eps`` and ``scale``."""
    if scale not in SCALES:
        raise LandscapeError(f"unknown scale {scale!r}; use paper or small")
    if norm is not None:
        norm = parse_norm(norm)
    if name is None:
        if norm is None:
            raise LandscapeError("give a preset or a norm")
        name = NATURAL[norm]
    key = str(name).strip().lower()
    if key not in PRESETS:
        raise LandscapeError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    own_norm, fn = PRESETS[key]
    if norm is None:
        norm = own_norm
    elif own_norm is not None and norm != own_norm:
        raise LandscapeError(f"preset {key} is for {own_norm} budgets, not {norm}; "
                             f"the {norm} preset is {NATURAL[norm]}")
    eps = DEFAULT_EPS[norm] if eps is None else parse_eps(eps)
    return fn(norm, eps, scale)


def scale_for(arch: str, dataset_meta: dict | None = None) -> str:
    """``small`` for small-cnn (the CPU quick start), ``paper`` otherwise."""
    return "small" if str(arch).lower().replace("_", "-") == "small-cnn" else "paper"
