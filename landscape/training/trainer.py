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
on CUDA the model is channels-last and the training forward/backward runs under bf16 autocast (the
attack runs in fp32, so it is not weakened); ``compile=True`` wraps the training forward in
``torch.compile`` (a string names its backend). ``channels_last`` and ``bf16`` (default: on CUDA only)
switch the first two on or off on any device, so the CPU tests exercise the GPU code paths.
"""

from __future__ import annotations

import inspect
import json
import math
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from ..checkpoint import Checkpoint, atomic_write_text
from ..device import resolve_device
from ..errors import LandscapeError
from ..models import ARCHS, build_model, model_kwargs_for
from ..progress import bar
from . import distributed as ddp
from ..attacks.spgd import sparse_noise
from .losses import KLObjective, PairForward, loss_from_logits
from .monitor import COMonitor, _accuracy, _robust
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
    """``build_attack`` with ``steps``/``project``/``projected`` passed only to attacks that take them."""
    from .. import attacks
    kw = dict(kwargs or {})
    entry = attacks.ATTACKS.get(str(name).strip().lower())
    params = set(inspect.signature(entry[0].__init__).parameters) if entry else set()
    if steps is not None and "steps" in params:
        kw.setdefault("steps", steps)
    elif steps is not None and steps > 1:
        raise LandscapeError(f"attack {name} has a fixed number of steps; it cannot run {steps}")
    if project is not None and "project" in params:
        kw.setdefault("project", project)
    if projected is not None and "projected" in params:
        kw.setdefault("projected", projected)
    return attacks.build_attack(name, norm, eps, **kw)


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


@locks_run_folder  # one process per run folder; its files claimed for this run (runlock.py)
def train(recipe: Recipe | str | dict | None = None, *, norm: str | None = None, eps=None,
          dataset: str = "fashion-mnist-mini", data_dir: str | None = None, arch: str | None = None,
          model_kwargs: dict | None = None, out: str | Path | None = None, resume: bool = False,
          device: str = "auto", seed: int = 0, stop_on_co: bool = False, save_every: int = 0,
          eval_examples: int = 1000, max_train_examples: int | None = None, compile: bool = False,
          progress: bool | None = None, log=None, halt_after_steps: int | None = None,
          train_data=None, test_data=None, channels_last: bool | None = None, bf16: bool | None = None) -> dict:
    """Train a model with ``recipe`` (a :class:`Recipe`, a preset name, or None for the natural preset
    of ``norm``) and return the final metrics. See the module docstring for what ``out`` receives.

    ``max_train_examples`` trains on a seeded class-balanced subset (for tests and quick looks);
    ``halt_after_steps`` behaves like a Ctrl-C after that many steps of this call (for tests).
    """
    from ..validate import count
    count("eval_examples", eval_examples, lo=1)  # 0 would read as "all"; monitor_examples=0 means none
    dev = resolve_device(device)
    info = ddp.init(dev)
    dev = ddp.device_for(dev, info)
    say = log if log is not None else (lambda msg: print(msg, file=sys.stderr))
    say_main = say if info.is_main else (lambda msg: None)
    out = Path(out) if out is not None else None
    ck_path = out / CHECKPOINT if out is not None else None

    # ---------------------------------------------------------------- data, model, recipe (no writes yet)
    from ..data import load_dataset
    train_ds = train_data if train_data is not None else load_dataset(dataset, "train", data_dir=data_dir)
    test_ds = test_data if test_data is not None else load_dataset(dataset, "test", data_dir=data_dir)
    if max_train_examples is not None:
        if int(max_train_examples) < 1:
            raise LandscapeError("max_train_examples must be at least 1")
        train_ds = train_ds.subset(int(max_train_examples), seed=seed)
    arch = (arch or default_arch(train_ds.shape)).strip().lower().replace("_", "-")
    if arch not in ARCHS:
        raise LandscapeError(f"unknown model {arch!r}; choose one of {', '.join(ARCHS)}")
    meta = train_ds.describe()
    if data_dir:
        meta["data_dir"] = str(data_dir)
    if model_kwargs is None and arch == "small-cnn":
        model_kwargs = dict(QUICK_SMALL_CNN)
    mkw = model_kwargs_for(arch, meta, **(model_kwargs or {}))

    if isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe)
    if isinstance(recipe, Recipe):  # check the user's input before reading anything in out/
        recipe.threat.check_shape(train_ds.shape)
        recipe.train_threat.check_shape(train_ds.shape)
    existing = None
    if ck_path is not None and ck_path.exists():
        existing = Checkpoint.load(ck_path)
    if resume and existing is None:
        raise LandscapeError(f"--resume: there is no checkpoint in {out}")
    if not isinstance(recipe, Recipe):
        if resume and existing is not None and recipe is None and existing.recipe:
            recipe = Recipe.from_dict(existing.recipe)
        else:
            recipe = get_preset(recipe, norm, eps, scale=scale_for(arch))
    recipe.threat.check_shape(train_ds.shape)
    recipe.train_threat.check_shape(train_ds.shape)
    run_settings = {"arch": arch, "model_kwargs": mkw, "dataset": meta.get("name"), "seed": int(seed),
                    "max_train_examples": max_train_examples, "world_size": info.world}
    if existing is not None:
        old = existing.data.get("extra", {}).get("run", {})
        old_recipe = dict(existing.recipe or {})
        new_recipe = recipe.to_dict()
        if resume:  # continue the stored run; only a longer schedule may be asked for
            recipe = Recipe.from_dict({**old_recipe, "epochs": max(recipe.epochs, old_recipe.get("epochs", 0))}
                                      if recipe.to_dict() != old_recipe else old_recipe)
        else:
            diff = sorted(k for k in set(old_recipe) | set(new_recipe) if old_recipe.get(k) != new_recipe.get(k))
            diff += sorted(k for k in ("arch", "dataset", "seed", "max_train_examples", "world_size")
                           if old.get(k) != run_settings.get(k))
            if diff:
                raise LandscapeError(f"{ck_path} holds a different run ({', '.join(diff)} differ); "
                                     "use --resume to continue it or another --out")
        for k in ("arch", "dataset", "seed", "max_train_examples"):
            if k in old and old.get(k) != run_settings[k] and resume:
                raise LandscapeError(f"--resume: {ck_path} was trained with {k}={old.get(k)!r}, not {run_settings[k]!r}")
        run_settings["model_kwargs"] = dict(existing.model_kwargs)
        mkw = dict(existing.model_kwargs)

    # ---------------------------------------------------------------- attacks
    if recipe.recipe_version < RECIPE_VERSION:
        raise LandscapeError(f"this recipe is recipe version {recipe.recipe_version} (stored before the protocol "
                             f"fixes); the trainer runs version {RECIPE_VERSION}: train a new run (another --out)")
    train_attack = TrainingAttack(recipe, recipe.train_threat.eps)
    weak_attack = TrainingAttack(recipe, recipe.eps, project=True)
    strong_attack = make_attack(recipe.monitor_attack, recipe.norm, recipe.eps, recipe.monitor_attack_kwargs)
    final_attack = make_attack(recipe.eval_attack, recipe.norm, recipe.eps, recipe.eval_attack_kwargs)

    # ---------------------------------------------------------------- model, optimiser, state
    torch.manual_seed(seed)
    model = build_model(arch, **mkw).to(dev)
    cuda = dev.type == "cuda"
    use_cl = cuda if channels_last is None else bool(channels_last)
    use_bf16 = cuda if bf16 is None else bool(bf16)
    if use_cl:
        model = model.to(memory_format=torch.channels_last)
    optim = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                            weight_decay=recipe.weight_decay)
    train_ds.to(dev)
    test_ds.to(dev)
    soft = (SoftLabels(train_ds.labels, train_ds.num_classes, recipe.sat_momentum, recipe.sat_start_epoch)
            if recipe.soft_labels else None)
    metrics: list[dict] = []
    start_epoch, start_step = 0, 0
    accum = torch.zeros(5, dtype=torch.float64, device=dev)  # loss sum, adv/clean correct, examples, Σ n·‖∇θL‖
    elapsed = 0.0
    if existing is not None:
        model.load_state_dict(existing.state_dict)
        ts = existing.train_state or {}
        if ts.get("optimizer"):
            optim.load_state_dict(ts["optimizer"])
        if soft is not None and ts.get("soft_labels") is not None:
            soft.load_state_dict(ts["soft_labels"])
        if ts.get("accum") is not None:
            accum[: len(ts["accum"])] = ts["accum"].to(dev, torch.float64)
        elapsed = float(ts.get("elapsed", 0.0))
        metrics = existing.metrics
        start_epoch, start_step = existing.epoch, existing.step

    loader = DeviceLoaderFor(train_ds, recipe, seed, info)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise LandscapeError("the training set is smaller than one batch per process")
    mon_n = min(recipe.monitor_examples, len(test_ds))
    mon_ds = test_ds.subset(mon_n, seed=seed) if mon_n else None
    monitor = (COMonitor(mon_ds.images.float() / 255, mon_ds.labels, weak_attack, strong_attack,
                         threat=recipe.threat, gap=recipe.co_gap, floor=recipe.co_floor) if mon_ds is not None else None)

    pair = PairForward(model)
    fwd = pair
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel
        fwd = DistributedDataParallel(pair, device_ids=[dev.index] if cuda else None)
    if compile:
        fwd = torch.compile(fwd) if compile is True else torch.compile(fwd, backend=compile)
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext

    def save(epoch_done: int, step_done: int, elapsed_s: float = 0.0, path: Path | None = ck_path):
        if path is None or not info.is_main:
            return
        ts = {"optimizer": optim.state_dict(), "soft_labels": soft.state_dict() if soft is not None else None,
              "accum": accum.detach().cpu().clone(), "rng": _rng_state(), "elapsed": elapsed_s,
              "steps_per_epoch": steps_per_epoch}
        ck = Checkpoint.create(model, arch=arch, model_kwargs=mkw, dataset=meta, threat=recipe.threat,
                               recipe=recipe.to_dict(), epoch=epoch_done, step=step_done, metrics=metrics,
                               train_state=ts, extra={"run": run_settings})
        ck.save(path)

    if info.is_main and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        header = (f"landscape train: {arch} on {meta.get('name')} ({len(train_ds)} training examples), "
                  f"{'resuming at epoch %d step %d' % (start_epoch, start_step) if existing else 'new run'}, "
                  f"device {dev}, {info.world} process(es), seed {seed}\n{recipe.describe()}")
        with open(out / "log.txt", "a") as f:
            f.write(header + "\n")
        say(header)
    elif info.is_main:
        say(recipe.describe())

    # ---------------------------------------------------------------- the loop
    co_stop = False
    steps_this_call = 0
    with _InterruptFlag() as flag:
        for epoch in range(start_epoch, recipe.epochs):
            if co_stop:
                break
            t0 = time.perf_counter()
            first = start_step if epoch == start_epoch else 0
            if first == 0:
                accum.zero_()
            pbar = bar(total=steps_per_epoch, initial=first, desc=f"epoch {epoch + 1}/{recipe.epochs}",
                       progress=progress if info.is_main else False, unit="step")
            model.train()
            for step, (x, y, idx) in zip(range(first, steps_per_epoch), loader.iterate(epoch, first)):
                torch.manual_seed(step_seed(seed, epoch, step))
                lr = recipe.lr_at(epoch, step, steps_per_epoch)
                for g in optim.param_groups:
                    g["lr"] = lr
                if use_cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                # --- noise (l0 "N"): x is replaced by x + η before anything else (Alg. 3)
                frac = warmup_fraction(recipe, epoch, step, steps_per_epoch)
                k_now = warmup_eps(recipe, frac) if frac < 1 else recipe.train_threat.eps
                if recipe.input_noise:
                    x = sparse_noise(x, recipe.noise_pixels(k_now))
                # --- attack (fp32, eval mode, on the bare model), against the hard labels
                attack = train_attack if frac >= 1 else TrainingAttack(recipe, k_now)
                if recipe.attack_objective == "kl":
                    x_adv = attack(KLObjective(model, x, y), x, y)
                else:
                    x_adv = attack(model, x, y)
                # --- forward, soft labels updated before the loss (SAT), loss and update
                sat = soft is not None and soft.active(epoch)
                with autocast():
                    lc, la = fwd(x_adv, x if recipe.needs_clean_forward else None)
                targets, weights = y, None
                if sat:
                    if lc is None:
                        with torch.no_grad():
                            from ..attacks.base import model_mode
                            with model_mode(model, "eval"):
                                lc_sl = model(x)
                    else:
                        lc_sl = lc
                    probs = torch.softmax(lc_sl.detach().float(), dim=1)
                    soft.update(ddp.all_gather_cat(idx, info), ddp.all_gather_cat(probs, info), epoch)
                    targets = soft.targets(idx, epoch)
                    weights = targets.max(dim=1).values if recipe.sat_weights else None
                with autocast():
                    loss = loss_from_logits(recipe, lc, la, targets, weights)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                gnorm = torch.linalg.vector_norm(torch.stack([p.grad.detach().float().norm() for p in model.parameters()
                                                              if p.grad is not None]))  # Fig. 4a: ‖∇θ L‖₂ per step
                optim.step()
                # --- metrics, all on the device
                with torch.no_grad():
                    n = y.numel()
                    accum[0] += loss.detach().double() * n
                    accum[1] += (la.detach().argmax(1) == y).sum()
                    accum[2] += (lc.detach().argmax(1) == y).sum() if lc is not None else float("nan")
                    accum[3] += n
                    accum[4] += gnorm.double() * n
                pbar.update(1)
                steps_this_call += 1
                done = step + 1
                if halt_after_steps is not None and steps_this_call >= halt_after_steps:
                    flag.raised = True
                if flag.raised:  # Ctrl-C: save this step's state (a resume redoes nothing) and stop
                    pbar.close()
                    save(epoch, done, elapsed + time.perf_counter() - t0)
                    ddp.barrier(info)
                    raise KeyboardInterrupt
                if save_every and done % save_every == 0 and done < steps_per_epoch:
                    save(epoch, done, elapsed + time.perf_counter() - t0)
            pbar.close()
            # ------------------------------------------------------------ end of epoch
            tot = ddp.all_reduce_sum(accum.clone(), info)
            epoch_time = elapsed + time.perf_counter() - t0
            elapsed = 0.0
            ex = float(tot[3])
            row = {"epoch": epoch + 1, "lr": recipe.lr_at(epoch, steps_per_epoch - 1, steps_per_epoch),
                   "train_loss": float(tot[0]) / ex, "train_adv_acc": float(tot[1]) / ex,
                   "train_clean_acc": float(tot[2]) / ex, "epoch_time_s": epoch_time, "examples": int(ex),
                   "grad_norm": float(tot[4]) / ex}
            co = False
            if monitor is not None:
                if info.is_main:
                    res = monitor.check(model, epoch, seed)
                    row.update(res.as_metrics())
                    co = res.co
                co = ddp.broadcast_flag(co, info, dev)
            metrics.append(row)
            if info.is_main:
                line = (f"epoch {epoch + 1}/{recipe.epochs}: loss {row['train_loss']:.4f}, train adv acc "
                        f"{row['train_adv_acc']:.1%}" + (f", monitor clean {row['monitor_clean_acc']:.1%} "
                                                          f"1-step {row['monitor_train_attack_acc']:.1%} "
                                                          f"strong {row['monitor_strong_acc']:.1%}"
                                                          if monitor is not None else "")
                        + f"{' [CO]' if co else ''}, {epoch_time:.1f}s")
                say(line)
                if out is not None:
                    with open(out / "log.txt", "a") as f:
                        f.write(line + "\n")
            accum.zero_()
            save(epoch + 1, 0)
            if info.is_main and out is not None:  # after the checkpoint: metrics.csv is never ahead of it
                _write_metrics_csv(out / "metrics.csv", metrics)
            if co and stop_on_co:
                say_main(f"landscape: stopping at epoch {epoch + 1} because of catastrophic overfitting (--stop-on-co)")
                co_stop = True

    # ---------------------------------------------------------------- final evaluation
    if info.enabled:  # every rank must hold the same weights and soft labels
        sums = [sum(float(p.double().sum()) for p in model.state_dict().values() if p.is_floating_point())]
        if soft is not None:
            sums.append(float(soft.table.double().sum()))
        mine = torch.tensor(sums, dtype=torch.float64, device=dev)
        every = ddp.all_gather_cat(mine.view(1, -1), info)
        if not torch.equal(every.min(0).values, every.max(0).values):
            raise RuntimeError(f"ranks diverged: weight/soft-label checksums {every.tolist()}")
    ddp.barrier(info)
    result = {}
    if info.is_main:
        result = evaluate_final(model, test_ds, recipe, final_attack, eval_examples=eval_examples, seed=seed)
        result.update({"epochs": len(metrics), "stopped_on_co": co_stop, "recipe": recipe.name,
                       "threat": str(recipe.threat), "arch": arch, "dataset": meta.get("name"),
                       "co_epochs": [m["epoch"] for m in metrics if m.get("co")]})
        if out is not None:
            ck = Checkpoint.load(ck_path)
            ck.data["extra"] = dict(ck.data.get("extra", {}), final=result)
            ck.data["metrics"] = list(metrics)
            ck.save(ck_path)
            atomic_write_text(out / "final.json", json.dumps(result, indent=2) + "\n")
            with open(out / "log.txt", "a") as f:
                f.write(f"final: {json.dumps(result)}\n")
    ddp.barrier(info)
    return result


def evaluate_final(model, test_ds, recipe: Recipe, attack, *, eval_examples: int = 1000, seed: int = 0) -> dict:
    """Clean accuracy on the whole test split; robust accuracy under ``attack`` on a seeded subset."""
    x_all = test_ds.images.float() / 255
    clean = _accuracy(model, x_all, test_ds.labels)
    sub = test_ds.subset(min(eval_examples, len(test_ds)), seed=seed)
    x, y = sub.images.float() / 255, sub.labels
    torch.manual_seed(seed * 1_000_003 + 99_991)
    try:
        from ..evaluation import robust_accuracy
        robust = float(robust_accuracy(model, x, y, attack, batch_size=500))
    except ImportError:
        robust = _robust(model, x, y, attack, recipe.threat)
    return {"clean_acc": clean, "clean_examples": len(test_ds), "robust_acc": robust,
            "robust_examples": len(sub), "eval_attack": recipe.eval_attack,
            "eval_attack_kwargs": dict(recipe.eval_attack_kwargs)}


def DeviceLoaderFor(ds, recipe: Recipe, seed: int, info):
    """The (sharded, seeded, resumable) loader of the training split for ``recipe``."""
    from ..data import DeviceLoader
    return DeviceLoader(ds, recipe.batch_size, shuffle=True, augment=recipe.augment, seed=seed,
                        drop_last=False, shard=(info.rank, info.world))
