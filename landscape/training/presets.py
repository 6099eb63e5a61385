"""Named recipes: the paper's ablation cells, its baselines, and fast recipes for every norm.

A preset is a function of the threat model ``(norm, eps)`` and a scale returning a
:class:`~landscape.training.recipe.Recipe`:

* ``scale="paper"``: the authors' PreActResNet-18 / CIFAR-10 protocol (``../shared/PAPER_PROTOCOL.md``
  §1, §3, §4): SGD lr 0.05, momentum 0.9, weight decay 5e-4, batch 128, 100 epochs, lr ÷10 at 1/4 and
  3/4 of the iterations (stepped per iteration); every l0 model trains at k_train = 6·k_eval (120 for
  20); the 1-step attack is sPGD with α = β = 1, no early stop; λ = 0.75, β_T = 6; soft labels from
  half the epochs with weights; noise of 0..2·k_train pixels; multi-step baselines: 20-step CE sPGD
  with early stopping, patience 10, a projected/unprojected coin per batch, α = β = 0.25.
* ``scale="small"``: the same recipe scaled by stated rules for ``small-cnn`` on Fashion-MNIST on a
  CPU: 5 epochs (the reproduction recipes pass their own), 10 sPGD steps for the multi-step
  baselines, no augmentation, a reduced-budget sparse-AutoAttack for the CO monitor and the final
  evaluation. k_train = 6·k_eval, soft labels at half the epochs and milestones at 1/4 and 3/4 are
  fractions and so carry over unchanged.

=====================  ========  =================================================================
preset                 norm      what
=====================  ========  =================================================================
fast-ls-l0             l0        Fast-LS-l0: 1-step sTRADES (T) + soft labels (SAT) + N noise
sat                    l0        multi-step sAT: adversarial CE, 20-step sPGD at 6x the eval budget
strades                l0        multi-step sTRADES (T): TRADES loss, 20-step CE sPGD at 6x
sat-1step              l0        1-step sAT (Table 3, column sAT): suffers CO
tradeoff-1step         l0        1-step trade-off loss (λ=0.75)
strades-t-1step        l0        1-step sTRADES (T): the attack maximises CE
strades-f-1step        l0        1-step sTRADES (F): the attack maximises KL(f(x)‖f(x+δ))
fast-l1                l1        1-step l1 attack + trade-off loss + soft labels
nfgsm-l2               l2        N-FGSM (de Jorge et al. 2022) under l2
nfgsm-linf             linf      N-FGSM under l∞
pgd-l1/l2/linf         l1/l2/l∞  multi-step baselines (APGD-l1 / PGD)
=====================  ========  =================================================================

The 1-step ablation cells combine with ``noise=true`` / ``soft_labels=true`` (``--set``) to give
every cell of Table 3; ``sat`` and ``strades`` combine with the same two settings to give the paper's
multi-step "+S&N" rows (early stopping kept).
"""

from __future__ import annotations

from typing import Callable

from ..attacks.spec import AttackSpec, attack_for
from ..errors import LandscapeError
from ..threat import parse_eps, parse_norm
from .recipe import Recipe

#: the training scales of a preset: ``paper`` (the authors' CIFAR-10 protocol) and ``small`` (the same
#: recipe scaled for small-cnn on a CPU; see the module docstring), chosen by :func:`scale_for` from
#: the model. Not the reproduction recipes' ``quick``/``fmnist``/``paper``
#: (:data:`landscape.reproduce.SCALES`), which choose the values their commands are filled with.
SCALES = ("paper", "small")

#: the paper's default budget for each norm (CIFAR-10 scale)
DEFAULT_EPS = {"l0": 20.0, "l1": 12.0, "l2": 0.5, "linf": 8 / 255}

#: the natural preset for each norm (``landscape train --norm``)
NATURAL = {"l0": "fast-ls-l0", "l1": "fast-l1", "l2": "nfgsm-l2", "linf": "nfgsm-linf"}

#: k_train / k_eval of every l0 training run (the authors: 120 for 20; Tab 17)
L0_TRAIN_FACTOR = 6
#: the authors' 1-step sPGD (``--alpha 1 --beta 1``, CE, no early stop) and multi-step training sPGD
ONE_STEP_SPGD = {"alpha": 1.0, "beta": 1.0, "loss": "ce"}
MULTI_STEP_SPGD = {"alpha": 0.25, "beta": 0.25, "loss": "ce", "patience": 10, "early_stop": True,
                   "track_best": True}


def _base(name: str, norm: str, eps: float, scale: str, attack: AttackSpec, **kw) -> Recipe:
    """A recipe training with ``attack``, monitored and evaluated by the norm's roles (attacks.spec):
    ``monitor`` every epoch, ``strong`` (paper scale) or ``reduced`` (small scale) at the end."""
    final = attack_for(norm, "strong" if scale == "paper" else "reduced")
    common = dict(name=name, norm=norm, eps=eps, **Recipe.spec_fields("attack", attack),
                  **Recipe.spec_fields("monitor_attack", attack_for(norm, "monitor")),
                  **Recipe.spec_fields("eval_attack", final))
    if scale == "paper":
        common.update(monitor_examples=1000)
    else:
        # small-cnn on fashion-mnist-mini on a CPU: 5 epochs; no augmentation; the schedule's
        # fractions (milestones, soft-label start) are the paper's
        common.update(monitor_examples=200, epochs=5, lr=0.05, batch_size=128, augment=False)
    common.update(kw)
    return Recipe(**common)


def _l0_one_step(name, norm, eps, scale, **kw) -> Recipe:
    return _base(name, norm, eps, scale, attack_for(norm, "train").with_(**ONE_STEP_SPGD), steps=1,
                 train_eps=L0_TRAIN_FACTOR * eps, train_mode="unproj", **kw)


def _l0_multi_step(name, norm, eps, scale, **kw) -> Recipe:
    return _base(name, norm, eps, scale, attack_for(norm, "multi-step").with_(**MULTI_STEP_SPGD),
                 steps=20 if scale == "paper" else 10, train_eps=L0_TRAIN_FACTOR * eps, train_mode="rand", **kw)


PRESETS: dict[str, tuple[str | None, Callable[..., Recipe]]] = {}


def preset(name: str, norm: str | None):
    def deco(fn):
        PRESETS[name] = (norm, fn)
        return fn
    return deco


@preset("fast-ls-l0", "l0")
def _fast_ls_l0(norm, eps, scale):
    return _l0_one_step("fast-ls-l0", norm, eps, scale, loss="trades", trades_variant="T", soft_labels=True,
                        noise=True, description="Fast-LS-l0: 1-step sTRADES (T) + soft labels (SAT) + N noise")


@preset("sat", "l0")
def _sat(norm, eps, scale):
    return _l0_multi_step("sat", norm, eps, scale, loss="ce",
                          description="multi-step sAT: adversarial CE against CE sPGD (early stop, patience 10) "
                                      "at 6x the eval budget")


@preset("strades", "l0")
def _strades(norm, eps, scale):
    return _l0_multi_step("strades", norm, eps, scale, loss="trades", trades_variant="T",
                          description="multi-step sTRADES (T): TRADES loss, CE sPGD (early stop, patience 10) "
                                      "at 6x the eval budget")


@preset("sat-1step", "l0")
def _sat1(norm, eps, scale):
    return _l0_one_step("sat-1step", norm, eps, scale, loss="ce",
                        description="1-step sAT (Table 3, column sAT); suffers catastrophic overfitting")


@preset("tradeoff-1step", "l0")
def _tradeoff1(norm, eps, scale):
    return _l0_one_step("tradeoff-1step", norm, eps, scale, loss="tradeoff",
                        description="1-step trade-off loss (1-λ)CE(x)+λCE(x+δ), λ=0.75 (Table 3, column Trade-off)")


@preset("strades-t-1step", "l0")
def _strades_t1(norm, eps, scale):
    return _l0_one_step("strades-t-1step", norm, eps, scale, loss="trades", trades_variant="T",
                        description="1-step sTRADES (T): TRADES loss, the attack maximises CE")


@preset("strades-f-1step", "l0")
def _strades_f1(norm, eps, scale):
    return _l0_one_step("strades-f-1step", norm, eps, scale, loss="trades", trades_variant="F",
                        description="1-step sTRADES (F): TRADES loss, the attack maximises KL(f(x)||f(x+δ))")


@preset("fast-l1", "l1")
def _fast_l1(norm, eps, scale):
    return _base("fast-l1", norm, eps, scale, attack_for(norm, "train"), loss="tradeoff", soft_labels=True,
                 description="fast l1 training: 1-step l1 attack, trade-off loss, soft labels")


@preset("nfgsm-l2", "l2")
def _nfgsm_l2(norm, eps, scale):
    return _base("nfgsm-l2", norm, eps, scale, attack_for(norm, "train"), noise=True, loss="ce",
                 description="N-FGSM under l2: noisy 1-step attack, adversarial CE")


@preset("nfgsm-linf", "linf")
def _nfgsm_linf(norm, eps, scale):
    return _base("nfgsm-linf", norm, eps, scale, attack_for(norm, "train"), noise=True, loss="ce",
                 description="N-FGSM under linf: noisy 1-step attack, adversarial CE")


for _n in ("l1", "l2", "linf"):
    def _make(n):
        def fn(norm, eps, scale):
            multi = attack_for(n, "multi-step")
            return _base(f"pgd-{n}", norm, eps, scale, multi, steps=10 if scale == "paper" else 5,
                         loss="ce", description=f"multi-step {multi.name} adversarial training under {n}")
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


def default_run_folder(name: str | None = None, norm: str | None = None, eps=None) -> str:
    """``runs/<preset>-<norm>-<eps>``: where ``landscape train`` writes when no folder is given (the
    name, norm and budget of a preset do not depend on the scale)."""
    recipe = get_preset(name, norm, eps)
    return f"runs/{recipe.name}-{recipe.norm}-{f'{recipe.eps:g}'.replace('/', '_')}"
