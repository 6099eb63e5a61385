"""The trainer: ``train(recipe, ...)`` runs a recipe end to end and writes a run directory.

``out/`` receives

* ``checkpoint.pt``: a landscape checkpoint (weights_only-loadable) after every epoch, every
  ``save_every`` steps and on Ctrl-C; ``train_state`` holds the optimiser state, the soft-label
  table, the partial-epoch metric sums and the RNG states; the recipe and the run's settings are in
  it too, so ``--resume`` needs no other flag;
* ``metrics.csv``: one row per epoch (loss, training accuracies, the CO monitor's numbers, time);
* ``log.txt``: the recipe in full and one line per epoch;
* ``final.json``: clean and robust test accuracy of the finished model.

Determinism: the loader's order and augmentation are seeded by ``(seed, epoch[, step])``; before
every step torch's global generator is seeded from ``(seed, epoch, step)`` (the attacks' random
starts and noise draw from it) and the learning rate is a pure function of ``(epoch, step)``. So a
run resumed from any saved step reproduces the uninterrupted run exactly on the CPU.

Speed: the data sits on the device, metrics are summed on the device (no ``.item()`` per step), and
the model is channels-last (on CUDA and on the CPU, where small-cnn trains 1.2-1.3x faster; a
resumed run keeps the layout it began with; ``LANDSCAPE_CHANNELS_LAST=0`` turns it off), and on CUDA
the training forward/backward runs under bf16 autocast (the attack runs in fp32, so it is not
weakened); ``compile=True`` wraps the training forward in ``torch.compile`` (a string names its
backend). ``channels_last`` and ``bf16`` (default: bf16 on CUDA only) switch them on or off on any
device, so the CPU tests exercise the GPU code paths.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..attacks.base import model_mode
from ..checkpoint import Checkpoint, atomic_write_text
from ..device import resolve_device
from ..errors import LandscapeError
from ..evaluation import robust_accuracy
from ..models import ARCHS, build_model, model_kwargs_for
from ..progress import bar
from .. import distributed as ddp
from ..attacks.spgd import sparse_noise
from .losses import KLObjective, PairForward, loss_from_logits
from .monitor import COMonitor, clean_accuracy
from .presets import get_preset, scale_for
from .recipe import RECIPE_VERSION, Recipe
from .runlock import locks_run_folder
from .soft_labels import SoftLabels

CHECKPOINT = "checkpoint.pt"
#: small-cnn's size when train() is not given model_kwargs: half width, so that the CPU quick start
#: (``landscape train --norm l0 --eps 20`` on fashion-mnist-mini) takes minutes on 2 cores
QUICK_SMALL_CNN = {"width": 16, "hidden": 128}
METRIC_COLUMNS = ["epoch", "lr", "train_loss", "train_adv_acc", "train_clean_acc", "monitor_clean_acc",
                  "monitor_train_attack_acc", "monitor_strong_acc", "co", "grad_norm", "epoch_time_s", "examples"]


def step_seed(seed: int, epoch: int, step: int) -> int:
    """The seed of torch's global generator before step ``step`` of epoch ``epoch``."""
    return ((int(seed) * 1_000_003 + int(epoch)) * 100_003 + int(step)) % (2 ** 63 - 1)


def default_arch(shape) -> str:
    """small-cnn for MNIST-sized (28x28 and smaller) images, preact-resnet18 otherwise."""
    return "small-cnn" if shape[-1] <= 28 else "preact-resnet18"


def make_attack(name: str, norm: str, eps: float, kwargs: dict | None = None, *, steps: int | None = None,
                project: bool | None = None, projected: bool | None = None):
    """The attack ``AttackSpec(name, kwargs)`` at ``(norm, eps)``, running ``steps`` iterations, its
    result projected back onto the threat model (``project``: the noisy attacks' ``within_budget``)
    and its sPGD gradient ``projected``, each only for attacks that take it and unless ``kwargs`` sets it."""
    from ..attacks.spec import AttackSpec
    spec = AttackSpec(name, kwargs).with_steps(steps).with_defaults(within_budget=project, projected=projected)
    return spec.build(norm, eps)


class TrainingAttack:
    """The recipe's training attack at a budget: with ``train_mode="rand"`` a fair coin (torch's
    global generator, seeded per step) picks the projected or the unprojected sPGD gradient for each
    mini-batch; ``proj``/``unproj`` fix it."""

    def __init__(self, recipe: Recipe, eps: float, *, project: bool | None = None):
        mode = recipe.train_mode
        kinds = {"unproj": (False,), "proj": (True,), "rand": (False, True)}[mode]
        self.attacks = [make_attack(recipe.attack_name, recipe.norm, eps, recipe.attack_options,
                                    steps=recipe.steps, project=project, projected=k) for k in kinds]

    def pick(self):
        if len(self.attacks) == 1:
            return self.attacks[0]
        return self.attacks[int(torch.randint(0, 2, (1,)).item())]

    def __call__(self, model, x, y):
        return self.pick()(model, x, y)


def warmup_fraction(recipe: Recipe, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Share of the training budget used at this step (1 without ``eps_warmup``)."""
    if not recipe.eps_warmup or recipe.eps_warmup <= 0:
        return 1.0
    return min(1.0, (epoch + (step + 1) / steps_per_epoch) / recipe.eps_warmup)


def warmup_eps(recipe: Recipe, frac: float) -> float:
    eps = recipe.train_threat.eps * frac
    return float(max(1, round(eps))) if recipe.norm == "l0" else max(eps, 1e-6)


class _InterruptFlag:
    """SIGINT (Ctrl-C) or SIGTERM (a scheduler's stop) sets a flag; the loop saves at the next step
    boundary and raises KeyboardInterrupt. A second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.raised = False
        self._old = {}

    def __enter__(self):
        try:
            self._old = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        except ValueError:  # not the main thread
            self._old = {}
        return self

    def _handler(self, signum, frame):
        if self.raised:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        return False


def _write_metrics_csv(path: Path, rows: list[dict]) -> None:
    lines = [",".join(METRIC_COLUMNS)]
    for r in rows:
        vals = []
        for c in METRIC_COLUMNS:
            v = r.get(c, "")
            if isinstance(v, float):
                v = "" if math.isnan(v) else f"{v:.6g}"
            vals.append(str(v))
        lines.append(",".join(vals))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return st


@dataclass
class Run:
    """What one training run holds while it runs: built by :func:`prepare`, driven by :meth:`loop`.

    The named steps are :meth:`step` (one mini-batch), :meth:`end_epoch` (metrics, the CO monitor,
    the log line, the checkpoint), :meth:`save` and :meth:`final_evaluation`."""

    recipe: Recipe
    model: torch.nn.Module
    optim: torch.optim.Optimizer
    soft: SoftLabels | None
    loader: object
    monitor: COMonitor | None
    fwd: object                      # the forward pair, wrapped in DDP / torch.compile when asked
    autocast: object                 # a context-manager factory: bf16 autocast or nullcontext
    train_attack: TrainingAttack
    final_attack: object
    test_ds: object
    dev: torch.device
    info: ddp.DistInfo
    out: Path | None
    arch: str
    mkw: dict
    meta: dict
    run_settings: dict
    seed: int
    say: object
    use_cl: bool = False
    existing: Checkpoint | None = None
    metrics: list = field(default_factory=list)
    accum: torch.Tensor | None = None  # loss sum, adv/clean correct, examples, Σ n·‖∇θL‖ (on the device)
    start_epoch: int = 0
    start_step: int = 0
    elapsed: float = 0.0
    co_stop: bool = False

    @property
    def ck_path(self) -> Path | None:
        return self.out / CHECKPOINT if self.out is not None else None

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    # ------------------------------------------------------------------ the loop
    def loop(self, *, stop_on_co: bool = False, save_every: int = 0, progress: bool | None = None,
             halt_after_steps: int | None = None) -> None:
        """Train from the stored position to the recipe's last epoch. Ctrl-C (or ``halt_after_steps``)
        saves the step's state and raises KeyboardInterrupt; a resume redoes nothing."""
        n_steps, steps_this_call = self.steps_per_epoch, 0
        with _InterruptFlag() as flag:
            for epoch in range(self.start_epoch, self.recipe.epochs):
                t0 = time.perf_counter()
                first = self.start_step if epoch == self.start_epoch else 0
                if first == 0:
                    self.accum.zero_()
                pbar = bar(total=n_steps, initial=first, desc=f"epoch {epoch + 1}/{self.recipe.epochs}",
                           progress=progress if self.info.is_main else False, unit="step")
                self.model.train()
                for step, (x, y, idx) in zip(range(first, n_steps), self.loader.iterate(epoch, first)):
                    self.step(epoch, step, x, y, idx)
                    pbar.update(1)
                    steps_this_call += 1
                    done = step + 1
                    if halt_after_steps is not None and steps_this_call >= halt_after_steps:
                        flag.raised = True
                    if flag.raised:
                        pbar.close()
                        self.save(epoch, done, self.elapsed + time.perf_counter() - t0)
                        ddp.barrier(self.info)
                        raise KeyboardInterrupt
                    if save_every and done % save_every == 0 and done < n_steps:
                        self.save(epoch, done, self.elapsed + time.perf_counter() - t0)
                pbar.close()
                co = self.end_epoch(epoch, self.elapsed + time.perf_counter() - t0)
                self.elapsed = 0.0
                if co and stop_on_co:
                    if self.info.is_main:
                        self.say(f"landscape: stopping at epoch {epoch + 1} because of catastrophic "
                                 "overfitting (--stop-on-co)")
                    self.co_stop = True
                    break

    # ------------------------------------------------------------------ one step
    def step(self, epoch: int, step: int, x, y, idx) -> None:
        """One mini-batch: noise, attack, soft labels, loss, update, metric sums (all on the device)."""
        recipe, n_steps = self.recipe, self.steps_per_epoch
        torch.manual_seed(step_seed(self.seed, epoch, step))
        for g in self.optim.param_groups:
            g["lr"] = recipe.lr_at(epoch, step, n_steps)
        if self.use_cl:
            x = x.contiguous(memory_format=torch.channels_last)
        x_adv, x = self.perturb(epoch, step, x, y)
        with self.autocast():
            lc, la = self.fwd(x_adv, x if recipe.needs_clean_forward else None)
        targets, weights = self.soft_targets(epoch, x, lc, idx) if self.sat_on(epoch) else (y, None)
        with self.autocast():
            loss = loss_from_logits(recipe, lc, la, targets, weights)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.linalg.vector_norm(torch.stack([p.grad.detach().float().norm() for p in self.model.parameters()
                                                      if p.grad is not None]))  # Fig. 4a: ‖∇θ L‖₂ per step
        self.optim.step()
        with torch.no_grad():
            n = y.numel()
            self.accum[0] += loss.detach().double() * n
            self.accum[1] += (la.detach().argmax(1) == y).sum()
            self.accum[2] += (lc.detach().argmax(1) == y).sum() if lc is not None else float("nan")
            self.accum[3] += n
            self.accum[4] += gnorm.double() * n

    def perturb(self, epoch: int, step: int, x, y):
        """``(x_adv, x)``: the l0 noise replaces x first (Alg. 3), then the training attack runs (fp32,
        eval mode, on the bare model) against the hard labels, at the warm-up budget if any."""
        recipe = self.recipe
        frac = warmup_fraction(recipe, epoch, step, self.steps_per_epoch)
        k_now = warmup_eps(recipe, frac) if frac < 1 else recipe.train_threat.eps
        if recipe.input_noise:
            x = sparse_noise(x, recipe.noise_pixels(k_now))
        attack = self.train_attack if frac >= 1 else TrainingAttack(recipe, k_now)
        target = KLObjective(self.model, x, y) if recipe.attack_objective == "kl" else self.model
        return attack(target, x, y), x

    def sat_on(self, epoch: int) -> bool:
        return self.soft is not None and self.soft.active(epoch)

    def soft_targets(self, epoch: int, x, lc, idx):
        """Self-adaptive training: the table is updated from this batch's (noisy) clean prediction
        *before* the loss; returns the targets and the per-example weights ``max_j t_j``."""
        if lc is None:
            with torch.no_grad(), model_mode(self.model, "eval"):
                lc = self.model(x)
        probs = torch.softmax(lc.detach().float(), dim=1)
        self.soft.update(ddp.all_gather_cat(idx, self.info), ddp.all_gather_cat(probs, self.info), epoch)
        targets = self.soft.targets(idx, epoch)
        return targets, (targets.max(dim=1).values if self.recipe.sat_weights else None)

    # ------------------------------------------------------------------ end of epoch, saving
    def end_epoch(self, epoch: int, epoch_time: float) -> bool:
        """Append the epoch's metrics row (with the CO monitor's numbers), log it, save; return CO."""
        tot = ddp.all_reduce_sum(self.accum.clone(), self.info)
        ex, n_steps = float(tot[3]), self.steps_per_epoch
        row = {"epoch": epoch + 1, "lr": self.recipe.lr_at(epoch, n_steps - 1, n_steps),
               "train_loss": float(tot[0]) / ex, "train_adv_acc": float(tot[1]) / ex,
               "train_clean_acc": float(tot[2]) / ex, "epoch_time_s": epoch_time, "examples": int(ex),
               "grad_norm": float(tot[4]) / ex}
        co = False
        if self.monitor is not None:
            if self.info.is_main:
                res = self.monitor.check(self.model, epoch, self.seed)
                row.update(res.as_metrics())
                co = res.co
            co = ddp.broadcast_flag(co, self.info, self.dev)
        self.metrics.append(row)
        if self.info.is_main:
            self.log(epoch_line(row, self.recipe.epochs, self.monitor is not None, co))
        self.accum.zero_()
        self.save(epoch + 1, 0)
        if self.info.is_main and self.out is not None:  # after the checkpoint: metrics.csv is never ahead of it
            _write_metrics_csv(self.out / "metrics.csv", self.metrics)
        return co

    def log(self, line: str) -> None:
        """Say ``line`` and append it to ``log.txt`` (rank 0)."""
        self.say(line)
        if self.out is not None:
            with open(self.out / "log.txt", "a") as f:
                f.write(line + "\n")

    def save(self, epoch_done: int, step_done: int, elapsed_s: float = 0.0) -> None:
        """The checkpoint after ``step_done`` steps of epoch ``epoch_done`` (rank 0 only)."""
        if self.ck_path is None or not self.info.is_main:
            return
        ts = {"optimizer": self.optim.state_dict(),
              "soft_labels": self.soft.state_dict() if self.soft is not None else None,
              "accum": self.accum.detach().cpu().clone(), "rng": _rng_state(), "elapsed": elapsed_s,
              "steps_per_epoch": self.steps_per_epoch}
        Checkpoint.create(self.model, arch=self.arch, model_kwargs=self.mkw, dataset=self.meta,
                          threat=self.recipe.threat, recipe=self.recipe.to_dict(), epoch=epoch_done,
                          step=step_done, metrics=self.metrics, train_state=ts,
                          extra={"run": self.run_settings}).save(self.ck_path)

    # ------------------------------------------------------------------ the end
    def check_ranks_agree(self) -> None:
        """Under DDP every rank must hold the same weights and soft labels."""
        if not self.info.enabled:
            return
        sums = [sum(float(p.double().sum()) for p in self.model.state_dict().values() if p.is_floating_point())]
        if self.soft is not None:
            sums.append(float(self.soft.table.double().sum()))
        every = ddp.all_gather_cat(torch.tensor(sums, dtype=torch.float64, device=self.dev).view(1, -1), self.info)
        if not torch.equal(every.min(0).values, every.max(0).values):
            raise RuntimeError(f"ranks diverged: weight/soft-label checksums {every.tolist()}")

    def final_evaluation(self, eval_examples: int, clean_examples: int | None = None) -> dict:
        """Clean and robust test accuracy; stored in the checkpoint and ``final.json`` (rank 0)."""
        self.check_ranks_agree()
        ddp.barrier(self.info)
        result = {}
        if self.info.is_main:
            result = evaluate_final(self.model, self.test_ds, self.recipe, self.final_attack,
                                    eval_examples=eval_examples, clean_examples=clean_examples, seed=self.seed,
                                    partial=None if self.out is None else self.out / FINAL_EVAL_PARTIAL)
            result.update({"epochs": len(self.metrics), "stopped_on_co": self.co_stop, "recipe": self.recipe.name,
                           "threat": str(self.recipe.threat), "arch": self.arch, "dataset": self.meta.get("name"),
                           "co_epochs": [m["epoch"] for m in self.metrics if m.get("co")]})
            if self.out is not None:
                ck = Checkpoint.load(self.ck_path)
                ck.data["extra"] = dict(ck.data.get("extra", {}), final=result)
                ck.data["metrics"] = list(self.metrics)
                ck.save(self.ck_path)
                atomic_write_text(self.out / "final.json", json.dumps(result, indent=2) + "\n")
                with open(self.out / "log.txt", "a") as f:
                    f.write(f"final: {json.dumps(result)}\n")
        ddp.barrier(self.info)
        return result


def epoch_line(row: dict, epochs: int, monitored: bool, co: bool) -> str:
    """The one line a person reads at the end of an epoch."""
    mon = (f", monitor clean {row['monitor_clean_acc']:.1%} 1-step {row['monitor_train_attack_acc']:.1%} "
           f"strong {row['monitor_strong_acc']:.1%}" if monitored else "")
    return (f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.4f}, train adv acc "
            f"{row['train_adv_acc']:.1%}{mon}{' [CO]' if co else ''}, {row['epoch_time_s']:.1f}s")


@locks_run_folder  # one process per run folder; its files claimed for this run (runlock.py)
def train(recipe: Recipe | str | dict | None = None, *, norm: str | None = None, eps=None,
          dataset: str = "fashion-mnist-mini", data_dir: str | None = None, arch: str | None = None,
          model_kwargs: dict | None = None, out: str | Path | None = None, resume: bool = False,
          device: str = "auto", seed: int = 0, stop_on_co: bool = False, save_every: int = 0,
          eval_examples: int = 1000, clean_examples: int | None = None, max_train_examples: int | None = None,
          compile: bool = False, progress: bool | None = None, log=None, halt_after_steps: int | None = None,
          train_data=None, test_data=None, channels_last: bool | None = None, bf16: bool | None = None,
          changes: dict | None = None, settings=()) -> dict:
    """Train a model with ``recipe`` (a :class:`Recipe`, a preset name, or None for the natural preset
    of ``norm``) and return the final metrics. See the module docstring for what ``out`` receives.

    A preset named here is taken at the scale of the model (:func:`~.presets.scale_for`, the one
    place that decides it), then ``changes`` (field -> value) and ``settings`` (``"field=value"``
    strings) are applied. ``max_train_examples`` trains on a seeded class-balanced subset (for tests
    and quick looks); ``halt_after_steps`` behaves like a Ctrl-C after that many steps of this call
    (for tests). ``clean_examples`` limits the final clean accuracy to a seeded subset of the test
    split (default: all of it; ``reproduce --quick`` takes 16).
    """
    from ..validate import count
    if clean_examples is not None:
        count("clean_examples", clean_examples, lo=1)
    run = prepare(recipe, norm=norm, eps=eps, dataset=dataset, data_dir=data_dir, arch=arch,
                  model_kwargs=model_kwargs, out=out, resume=resume, device=device, seed=seed,
                  eval_examples=eval_examples, max_train_examples=max_train_examples, compile=compile,
                  log=log, train_data=train_data, test_data=test_data, channels_last=channels_last,
                  bf16=bf16, changes=changes, settings=settings)
    run.loop(stop_on_co=stop_on_co, save_every=save_every, progress=progress, halt_after_steps=halt_after_steps)
    return run.final_evaluation(eval_examples, clean_examples)


def prepare(recipe=None, *, norm=None, eps=None, dataset="fashion-mnist-mini", data_dir=None, arch=None,
            model_kwargs=None, out=None, resume=False, device="auto", seed=0, eval_examples=1000,
            max_train_examples=None, compile=False, log=None, train_data=None, test_data=None,
            channels_last=None, bf16=None, changes=None, settings=()) -> Run:
    """Everything before the first step: data, recipe (reconciled with a checkpoint in ``out``),
    attacks, model, optimiser and the stored state; writes only the log's header."""
    from ..validate import count
    count("eval_examples", eval_examples, lo=1)  # 0 would read as "all"; monitor_examples=0 means none
    dev = resolve_device(device)
    info = ddp.init(dev)
    dev = ddp.device_for(dev, info)
    say = log if log is not None else (lambda msg: print(msg, file=sys.stderr))
    out = Path(out) if out is not None else None
    train_ds, test_ds = _load_data(dataset, data_dir, train_data, test_data, max_train_examples, seed)
    arch = resolve_arch(arch, train_ds.shape)
    meta = train_ds.describe()
    if data_dir:
        meta["data_dir"] = str(data_dir)
    if model_kwargs is None and arch == "small-cnn":
        model_kwargs = dict(QUICK_SMALL_CNN)
    mkw = model_kwargs_for(arch, meta, **(model_kwargs or {}))
    pick = dict(norm=norm, eps=eps, arch=arch, shape=train_ds.shape, changes=changes, settings=settings)
    use_stored = resume and recipe is None and not changes and not settings and eps is None
    if not use_stored:  # the user's input is checked before anything in out/ is read
        recipe = resolve_recipe(recipe, **pick)
    existing = Checkpoint.load(out / CHECKPOINT) if out is not None and (out / CHECKPOINT).exists() else None
    if resume and existing is None:
        raise LandscapeError(f"`resume`: there is no checkpoint in {out}")
    if use_stored:
        recipe = resolve_recipe(existing.recipe or None, **pick)
    run_settings = {"arch": arch, "model_kwargs": mkw, "dataset": meta.get("name"), "seed": int(seed),
                    "max_train_examples": max_train_examples, "world_size": info.world}
    if existing is not None:
        recipe = _reconcile(existing, recipe, run_settings, resume, out / CHECKPOINT)
        mkw = run_settings["model_kwargs"] = dict(existing.model_kwargs)
    if recipe.recipe_version < RECIPE_VERSION:
        raise LandscapeError(f"this recipe is recipe version {recipe.recipe_version} (stored before the protocol "
                             f"fixes); the trainer runs version {RECIPE_VERSION}: train a new run (another `out`)")
    train_attack = TrainingAttack(recipe, recipe.train_threat.eps)
    weak_attack = TrainingAttack(recipe, recipe.eps, project=True)
    strong_attack = make_attack(recipe.monitor_attack, recipe.norm, recipe.eps, recipe.monitor_attack_kwargs)
    final_attack = make_attack(recipe.eval_attack, recipe.norm, recipe.eps, recipe.eval_attack_kwargs)
    torch.manual_seed(seed)
    model = build_model(arch, **mkw).to(dev)
    use_cl = _layout(channels_last, existing, dev)
    run_settings["channels_last"] = use_cl
    use_bf16 = dev.type == "cuda" if bf16 is None else bool(bf16)
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    optim = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                            weight_decay=recipe.weight_decay)
    train_ds.to(dev)
    test_ds.to(dev)
    soft = (SoftLabels(train_ds.labels, train_ds.num_classes, recipe.sat_momentum, recipe.sat_start_epoch)
            if recipe.soft_labels else None)
    loader = training_loader(train_ds, recipe, seed, info)
    if len(loader) == 0:
        raise LandscapeError("the training set is smaller than one batch per process")
    run = Run(recipe=recipe, model=model, optim=optim, soft=soft, loader=loader,
              monitor=_monitor(recipe, test_ds, weak_attack, strong_attack, seed),
              fwd=_forward(model, info, dev, compile),
              autocast=(lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext,
              train_attack=train_attack, final_attack=final_attack, test_ds=test_ds, dev=dev, info=info,
              out=out, arch=arch, mkw=mkw, meta=meta, run_settings=run_settings, seed=seed, say=say,
              use_cl=use_cl, existing=existing,
              accum=torch.zeros(5, dtype=torch.float64, device=dev))
    _restore(run)
    _write_header(run, len(train_ds))
    run.existing = None  # its state is in the model and optimiser now; do not hold a second copy
    return run


def resolve_arch(arch: str | None, shape) -> str:
    """The model's name: ``arch`` normalised, or the default for images of ``shape``."""
    arch = (arch or default_arch(shape)).strip().lower().replace("_", "-")
    if arch not in ARCHS:
        raise LandscapeError(f"unknown model {arch!r}; choose one of {', '.join(ARCHS)}")
    return arch


def resolve_recipe(recipe=None, *, norm=None, eps=None, arch: str, shape, changes=None, settings=()) -> Recipe:
    """The recipe to train: ``recipe`` as given (a Recipe or its dict), else the preset ``recipe`` (a
    name, or None for the natural preset of ``norm``) at the scale of ``arch`` (:func:`scale_for`, the
    one place that decides it) with ``changes`` and ``settings`` applied (and, under
    ``LANDSCAPE_BUDGET=smoke``, the smoke monitor budgets); checked against images of ``shape``."""
    if isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe)
    if not isinstance(recipe, Recipe):
        from ..budgets import smoke_training
        recipe = get_preset(recipe, norm, eps, scale=scale_for(arch))
        recipe = smoke_training(_with_changes(recipe, changes, settings), settings)
    elif changes or settings:  # a Recipe given with changes: they apply to it too, never silently dropped
        recipe = _with_changes(recipe, changes, settings)
    recipe.threat.check_shape(shape)
    recipe.train_threat.check_shape(shape)
    return recipe


def _with_changes(recipe: Recipe, changes, settings) -> Recipe:
    """``recipe`` with ``changes`` (field -> value) and then ``settings`` ("field=value") applied; a
    field given in both with different values is an error, not a silent choice of one."""
    changed = recipe.replace(**(changes or {}))
    out = changed.with_settings(list(settings))
    for f in changes or {}:
        if getattr(out, f) != getattr(changed, f):
            raise LandscapeError(f"`{f}` is given twice: {getattr(changed, f)!r}, and {getattr(out, f)!r} in "
                                 "`settings`; give it once")
    return out


def _load_data(dataset, data_dir, train_data, test_data, max_train_examples, seed):
    from ..data import load_dataset
    train_ds = train_data if train_data is not None else load_dataset(dataset, "train", data_dir=data_dir)
    test_ds = test_data if test_data is not None else load_dataset(dataset, "test", data_dir=data_dir)
    if max_train_examples is not None:
        if int(max_train_examples) < 1:
            raise LandscapeError("`max_train_examples` must be at least 1")
        if int(max_train_examples) > len(train_ds):
            raise LandscapeError(f"`max_train_examples` is {int(max_train_examples)} but the training split holds "
                                 f"{len(train_ds)} examples")
        train_ds = train_ds.subset(int(max_train_examples), seed=seed)
    return train_ds, test_ds


def _layout(channels_last: bool | None, existing: Checkpoint | None, dev) -> bool:
    """Whether the model trains channels_last: as asked; else as the run in ``out`` did (a resumed run
    keeps its layout, so it continues bit for bit; a run stored before the layout was recorded trained
    channels_last on CUDA only); else :func:`~landscape.device.channels_last_default`."""
    if channels_last is not None:
        return bool(channels_last)
    if existing is not None:
        stored = existing.data.get("extra", {}).get("run", {}).get("channels_last")
        return bool(stored) if stored is not None else dev.type == "cuda"
    from ..device import channels_last_default
    return channels_last_default(dev)


def _reconcile(existing: Checkpoint, recipe: Recipe, run_settings: dict, resume: bool, ck_path: Path) -> Recipe:
    """The recipe to run when ``out`` already holds a checkpoint: resuming continues the stored run
    (only a longer schedule may be asked for); otherwise the run must be the same one."""
    old = existing.data.get("extra", {}).get("run", {})
    old_recipe = dict(existing.recipe or {})
    new_recipe = recipe.to_dict()
    if resume:
        recipe = Recipe.from_dict({**old_recipe, "epochs": max(recipe.epochs, old_recipe.get("epochs", 0))}
                                  if new_recipe != old_recipe else old_recipe)
        for k in ("arch", "dataset", "seed", "max_train_examples"):
            if k in old and old.get(k) != run_settings[k]:
                raise LandscapeError(f"`resume`: {ck_path} was trained with {k}={old.get(k)!r}, not {run_settings[k]!r}")
        return recipe
    diff = sorted(k for k in set(old_recipe) | set(new_recipe) if old_recipe.get(k) != new_recipe.get(k))
    diff += sorted(k for k in ("arch", "dataset", "seed", "max_train_examples", "world_size")
                   if old.get(k) != run_settings.get(k))
    if diff:
        raise LandscapeError(f"{ck_path} holds a different run ({', '.join(diff)} differ); "
                             "use `resume` to continue it or another `out`")
    return recipe


def _monitor(recipe: Recipe, test_ds, weak_attack, strong_attack, seed: int) -> COMonitor | None:
    mon_n = min(recipe.monitor_examples, len(test_ds))
    if not mon_n:
        return None
    mon_ds = test_ds.subset(mon_n, seed=seed)
    return COMonitor(mon_ds.images.float() / 255, mon_ds.labels, weak_attack, strong_attack,
                     threat=recipe.threat, gap=recipe.co_gap, floor=recipe.co_floor)


def _forward(model, info, dev, compile):
    """The training forward (clean and adversarial logits in one call), under DDP / compile if asked."""
    fwd = PairForward(model)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel
        fwd = DistributedDataParallel(fwd, device_ids=[dev.index] if dev.type == "cuda" else None)
    if compile:
        fwd = torch.compile(fwd) if compile is True else torch.compile(fwd, backend=compile)
    return fwd


def _restore(run: Run) -> None:
    """Load the weights, optimiser, soft labels, partial sums and position of a stored run."""
    ck = run.existing
    if ck is None:
        return
    run.model.load_state_dict(ck.state_dict)
    ts = ck.train_state or {}
    if ts.get("optimizer"):
        run.optim.load_state_dict(ts["optimizer"])
    if run.soft is not None and ts.get("soft_labels") is not None:
        run.soft.load_state_dict(ts["soft_labels"])
    if ts.get("accum") is not None:
        run.accum[: len(ts["accum"])] = ts["accum"].to(run.dev, torch.float64)
    run.elapsed = float(ts.get("elapsed", 0.0))
    run.metrics = ck.metrics
    run.start_epoch, run.start_step = ck.epoch, ck.step


def _write_header(run: Run, n_train: int) -> None:
    if not run.info.is_main:
        return
    if run.out is None:
        run.say(run.recipe.describe())
        return
    run.out.mkdir(parents=True, exist_ok=True)
    where = (f"resuming at epoch {run.start_epoch} step {run.start_step}" if run.existing else "new run")
    run.log(f"landscape train: {run.arch} on {run.meta.get('name')} ({n_train} training examples), {where}, "
            f"device {run.dev}, {run.info.world} process(es), seed {run.seed}\n{run.recipe.describe()}")


#: the final evaluation's finished batches, in the run folder until it completes (a rerun resumes it)
FINAL_EVAL_PARTIAL = ".final_eval.partial"


def evaluate_final(model, test_ds, recipe: Recipe, attack, *, eval_examples: int = 1000,
                   clean_examples: int | None = None, seed: int = 0, partial=None) -> dict:
    """Clean accuracy on the whole test split (or a seeded subset of ``clean_examples``); robust accuracy
    under ``attack`` on a seeded subset of ``eval_examples``. ``partial``: a folder for the robust
    evaluation's finished batches (:func:`landscape.evaluation.evaluate`), so that a run stopped in
    its final evaluation (sparse-AutoAttack at the recipe's budget: long at paper scale) resumes it."""
    if clean_examples is not None and clean_examples < len(test_ds):
        clean_ds = test_ds.subset(clean_examples, seed=seed)
    else:
        clean_ds = test_ds
    clean = clean_accuracy(model, clean_ds.images.float() / 255, clean_ds.labels)
    sub = test_ds.subset(min(eval_examples, len(test_ds)), seed=seed)
    x, y = sub.images.float() / 255, sub.labels
    torch.manual_seed(seed * 1_000_003 + 99_991)
    robust = float(robust_accuracy(model, x, y, attack, batch_size=500, partial=partial))
    return {"clean_acc": clean, "clean_examples": len(clean_ds), "robust_acc": robust,
            "robust_examples": len(sub), "eval_attack": recipe.eval_attack,
            "eval_attack_kwargs": dict(recipe.eval_attack_kwargs)}


def training_loader(ds, recipe: Recipe, seed: int, info):
    """The (sharded, seeded, resumable) loader of the training split for ``recipe``."""
    from ..data import DeviceLoader
    return DeviceLoader(ds, recipe.batch_size, shuffle=True, augment=recipe.augment, seed=seed,
                        drop_last=False, shard=(info.rank, info.world))
