"""``landscape recipes``: print the training presets in full."""

from __future__ import annotations

import json

import click


@click.command("recipes")
@click.argument("names", nargs=-1)
@click.option("--norm", default=None, help="show the presets for this norm only")
@click.option("--eps", default=None, help="budget to instantiate the presets at (default: each norm's)")
@click.option("--scale", type=click.Choice(["paper", "small"]), default="paper", show_default=True,
              help="paper: PreActResNet-18/CIFAR-10 settings; small: small-cnn on fashion-mnist-mini (CPU)")
@click.option("--json", "as_json", is_flag=True, help="print the recipes as JSON")
def recipes(names, norm, eps, scale, as_json):
    """Print every training preset (or NAMES) with all its fields."""
    from landscape.threat import parse_norm
    from landscape.training.presets import PRESETS, get_preset

    norm = parse_norm(norm) if norm else None
    chosen = []
    for name in names or PRESETS:
        own = PRESETS.get(name, (None,))[0]
        if norm and own and own != norm and not names:
            continue
        chosen.append(get_preset(name, norm if (norm and (own is None or own == norm)) else None, eps, scale=scale))
    if as_json:
        click.echo(json.dumps({r.name: r.to_dict() for r in chosen}, indent=2))
        return
    for r in chosen:
        click.echo(r.describe())
        click.echo(f"  # {r.description}\n")
