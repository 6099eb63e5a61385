"""``landscape info CKPT``: what a checkpoint holds."""

from __future__ import annotations

import json

import click

from .common import checkpoint_argument


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _final_line(final: dict) -> str:
    """``clean 81.2% (1000 test images); robust 33.5% under saa {...} at l0(eps=20) (1000)``."""
    import json as _json
    parts = []
    if isinstance(final.get("clean_acc"), (int, float)):
        parts.append(f"clean {final['clean_acc']:.1%}" + (f" ({final['clean_examples']} test images)"
                                                           if final.get("clean_examples") else ""))
    if isinstance(final.get("robust_acc"), (int, float)):
        attack = final.get("eval_attack", "?")
        kw = final.get("eval_attack_kwargs")
        attack += f" {_json.dumps(kw)}" if kw else ""
        parts.append(f"robust {final['robust_acc']:.1%} under {attack} at {final.get('threat', '?')}"
                     + (f" ({final['robust_examples']} test images)" if final.get("robust_examples") else ""))
    return "; ".join(parts) or _json.dumps(final)


@click.command("info")
@checkpoint_argument()
@click.option("--json", "as_json", is_flag=True, help="print the metadata (everything but tensors) as JSON")
def info(checkpoint, as_json):
    """Print the summary of CHECKPOINT: architecture, dataset, threat model, recipe, epoch, metrics."""
    from landscape.checkpoint import load_checkpoint
    from landscape.training.recipe import stored_version as recipe_version

    ck = load_checkpoint(checkpoint)
    ck.model()  # the stored architecture must fit the weights (a clear error if it does not)
    if as_json:
        meta = {k: v for k, v in ck.data.items() if k not in ("state_dict", "train_state")}
        if ck.recipe:
            meta["recipe_version"] = recipe_version(ck.recipe)
        click.echo(json.dumps(meta, indent=2, default=str))
        return
    ds = ck.dataset
    n_params = sum(v.numel() for k, v in ck.state_dict.items() if hasattr(v, "numel") and "running" not in k
                   and not k.endswith("num_batches_tracked"))
    kwargs = ", ".join(f"{k}={_fmt(v)}" for k, v in ck.model_kwargs.items() if k not in ("mean", "std"))
    recipe = ck.recipe
    click.echo(f"checkpoint: {checkpoint}")
    click.echo(f"model:      {ck.arch} ({kwargs}); {n_params:,} parameters")
    flags = " ".join(f"--{k} {v}" for k, v in ck.model_kwargs.items() if k in ("width", "hidden"))
    flags += " --batchnorm" if ck.model_kwargs.get("batchnorm") else ""
    act = ck.model_kwargs.get("activation", ck.model_kwargs.get("act"))
    flags += f" --activation {act}" if act and act != "relu" else ""
    click.echo(f"import as:  landscape import SD.pt --arch {ck.arch}{' ' + flags.strip() if flags.strip() else ''} "
               f"--dataset {ds.get('name')}")
    click.echo(f"dataset:    {ds.get('name')} ({ds.get('channels')}x{ds.get('height')}x{ds.get('width')}, "
               f"{ds.get('num_classes')} classes)")
    click.echo(f"threat:     {ck.threat or 'none (clean)'}")
    click.echo(f"recipe:     {(recipe or {}).get('name', 'custom') if recipe else 'none'}"
               + (f" (recipe version {recipe_version(recipe)}"
                  + (": trained before the protocol fixes; see docs/design.md)" if recipe_version(recipe) < 2 else ")")
                  if recipe else ""))
    click.echo(f"epoch:      {ck.epoch}" + (f" (+{ck.step} steps)" if ck.step else ""))
    extra = ck.data.get("extra") or {}
    if extra.get("imported_from"):
        click.echo(f"imported:   from {extra['imported_from']}")
    final = extra.get("final") or {}
    if final:
        click.echo(f"final:      {_final_line(final)}")
    metrics = ck.metrics
    if metrics:
        last = metrics[-1]
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in last.items() if isinstance(v, (int, float, str)))
        click.echo(f"metrics:    {shown}")
    else:
        click.echo("metrics:    none")

