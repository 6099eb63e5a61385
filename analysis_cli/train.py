"""``landscape train``: adversarial training with a named recipe, resumable, with a CO monitor."""

from __future__ import annotations

import json

import click

from .common import data_dir_option, device_option, seed_option


@click.command("train")
@click.option("--norm", default=None, help="threat model: l0, l1, l2 or linf (default: the preset's, else l0)")
@click.option("--eps", default=None, help="budget (l0: pixels; others in [0,1] units, e.g. 8/255); "
                                          "default: the preset's (l0 20, l1 12, l2 0.5, linf 8/255)")
@click.option("--preset", default=None, help="recipe name (see `landscape recipes`); default: the natural "
                                             "preset of --norm (l0: fast-ls-l0, l1: fast-l1, l2: nfgsm-l2, linf: nfgsm-linf)")
@click.option("--dataset", default="fashion-mnist-mini", show_default=True, help="dataset name")
@data_dir_option
@click.option("--arch", default=None, help="small-cnn (default for 28x28 data) or preact-resnet18 (default otherwise)")
@click.option("--epochs", type=int, default=None, help="number of epochs (default: the recipe's)")
@click.option("--batch-size", type=int, default=None, help="batch size per process (default: the recipe's)")
@click.option("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="run folder (default runs/<preset>-<norm>-<eps>)")
@click.option("--resume", is_flag=True, help="continue the run in --out with its stored recipe")
@device_option
@seed_option
@click.option("--stop-on-co", is_flag=True, help="stop when the monitor detects catastrophic overfitting")
@click.option("--save-every", type=int, default=0, show_default=True,
              help="also save a checkpoint every N steps inside an epoch (0: only at epoch ends)")
@click.option("--eval-examples", type=int, default=1000, show_default=True,
              help="test examples for the final robust accuracy (at most the test split's size)")
@click.option("--clean-examples", type=int, default=None,
              help="test examples for the final clean accuracy, a seeded subset [default: the whole test split]")
@click.option("--set", "settings", multiple=True, metavar="FIELD=VALUE",
              help="override any recipe field, e.g. --set soft_labels=false --set trades_beta=6 (repeatable)")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the training forward")
@click.option("--max-train-examples", type=int, default=None, hidden=True,
              help="train on a seeded subset of this many examples (tests, quick looks)")
@click.option("--halt-after-steps", type=int, default=None, hidden=True,
              help="behave as if Ctrl-C came after this many steps (tests)")
def train(norm, eps, preset, dataset, data_dir, arch, epochs, batch_size, lr, out, resume, device, seed,
          stop_on_co, save_every, eval_examples, clean_examples, settings, compile_, max_train_examples, halt_after_steps):
    """Train a robust classifier: every recipe field is printed, stored in the checkpoint and can be
    overridden. Writes OUT/checkpoint.pt (every epoch; --save-every for mid-epoch), OUT/metrics.csv,
    OUT/log.txt and OUT/final.json (clean and robust test accuracy). Rerunning the same command
    resumes an interrupted run."""
    from landscape.errors import LandscapeError
    from landscape.threat import parse_eps, parse_norm
    from landscape.training.presets import default_run_folder
    from landscape.training.trainer import train as run_train
    from landscape.data import DATASETS

    norm = parse_norm(norm) if norm is not None else (None if preset else "l0")
    if dataset.strip().lower() not in DATASETS:
        raise LandscapeError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if eps is not None:
        eps = parse_eps(eps)
    for name, v, lo in (("--epochs", epochs, 1), ("--batch-size", batch_size, 1), ("--save-every", save_every, 0),
                        ("--eval-examples", eval_examples, 1), ("--clean-examples", clean_examples, 1),
                        ("--max-train-examples", max_train_examples, 1)):
        if v is not None and v < lo:
            raise LandscapeError(f"{name} must be at least {lo}, got {v}")
    if lr is not None and not lr > 0:
        raise LandscapeError(f"--lr must be positive, got {lr}")
    changes = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)) if v is not None}
    if out is None:
        out = default_run_folder(preset, norm, eps)
    explicit = bool(preset or eps is not None or changes or settings)
    # the preset is resolved by the trainer, at the scale of the model it builds (one place decides)
    result = run_train(None if (resume and not explicit) else preset, norm=norm, eps=eps, dataset=dataset,
                       data_dir=data_dir, arch=arch, out=out, resume=resume, device=device, seed=seed,
                       stop_on_co=stop_on_co, save_every=save_every, eval_examples=eval_examples,
                       clean_examples=clean_examples, max_train_examples=max_train_examples, compile=compile_, halt_after_steps=halt_after_steps,
                       changes=changes, settings=settings)
    if result:
        click.echo(f"clean accuracy:  {result['clean_acc']:.2%} ({result['clean_examples']} test examples)")
        click.echo(f"robust accuracy: {result['robust_acc']:.2%} under {result['eval_attack']} "
                   f"{json.dumps(result['eval_attack_kwargs'])} at {result['threat']} "
                   f"({result['robust_examples']} test examples)")
        if result.get("co_epochs"):
            click.echo(f"catastrophic overfitting detected at epoch(s) {result['co_epochs']}")
        click.echo(f"run folder:      {out}")
