"""``landscape interp``: accuracy along ``x + α·δ`` of the 1-step perturbation (Table 2 of Zhong et
al. 2025), with the strong attack's accuracy in the same table; or, with ``--between``, along the
straight line between the weights of two checkpoints."""

from __future__ import annotations


import click

from landscape.errors import LandscapeError

from .common import checkpoint_argument, checkpoint_label, device_option, echo_table, out_paths, parse_range, seed_option, strong_attack_options, write_results
from .surface import load_examples, resolve_threat

PAPER_ALPHAS = "0,0.1,0.2,0.3,0.4,0.6,0.8,1.0"


@click.command()
@checkpoint_argument()
@click.option("--alpha", "alpha_text", default=PAPER_ALPHAS, show_default=True,
              help="interpolation factors: start:stop:step or a comma list")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="figure; table to <stem>.csv/.json")
@click.option("--norm", default=None, help="threat norm [default: the checkpoint's]")
@click.option("--eps", default=None, help="budget of the 1-step attack [default: the checkpoint's]")
@click.option("--attack", default=None, help="perturbation attack [default: the natural 1-step attack, spgd1 for l0]")
@strong_attack_options()
@click.option("--no-strong", is_flag=True, help="skip the strong attack")
@click.option("--between", type=click.Path(dir_okay=False), default=None,
              help="interpolate weights (1-α)θ₁ + αθ₂ towards this checkpoint instead")
@click.option("--bn-recalibrate", is_flag=True, help="with --between: re-estimate BatchNorm statistics on training "
              "images at every α (default: interpolate the running statistics)")
@click.option("--adversarial", is_flag=True, help="with --between: also the robust accuracy under --attack at every α")
@click.option("--n-examples", type=int, default=1000, show_default=True)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@device_option
@seed_option
def interp(checkpoint, alpha_text, out, norm, eps, attack, strong_attack, strong_steps, strong_queries, no_strong, between,
           bn_recalibrate, adversarial, n_examples, split, batch_size, device, seed):
    """Interpolate along the 1-step perturbation of CHECKPOINT (or towards --between's weights)."""
    from landscape.analysis.interp import interpolate_perturbations, interpolate_weights
    from landscape.analysis.objective import make_attack
    from landscape.checkpoint import Checkpoint
    from landscape.device import resolve_device
    from landscape.plots.interp import plot_interp

    alphas = parse_range(alpha_text, "--alpha")
    fig_path, csv_path, json_path = out_paths(out)
    ck = Checkpoint.load(checkpoint)
    other = Checkpoint.load(between) if between else None
    dev = resolve_device(device)
    threat = resolve_threat(ck, norm, eps)
    model = ck.model(dev)
    x, y, _ = load_examples(ck, split, n_examples, seed, dev)
    name = checkpoint_label(checkpoint)
    if other is not None:
        if other.arch != ck.arch or other.model_kwargs != ck.model_kwargs:
            raise LandscapeError(f"{between} is a different architecture ({other.arch}) from {checkpoint} ({ck.arch})")
        atk = make_attack(attack, threat, kind="train") if adversarial else None
        x_train = None
        if bn_recalibrate:
            xt, _, _ = load_examples(ck, "train", max(n_examples, 1000), seed, dev)
            x_train = xt
        df, meta = interpolate_weights(model, other.model(dev), x, y, alphas, attack=atk,
                                       bn="recalibrate" if bn_recalibrate else "interpolate", x_train=x_train,
                                       batch_size=batch_size, seed=seed)
        meta.update({"analysis": "interp-weights", "checkpoint": str(checkpoint), "between": str(between)})
        title = f"{name} → {checkpoint_label(between)}"
    else:
        if threat is None:
            raise LandscapeError(f"{checkpoint} has no threat model; give --norm and --eps")
        atk = make_attack(attack, threat, kind="train")
        strong = None
        if not no_strong:
            strong = make_attack(strong_attack, threat, kind="strong", steps=strong_steps, n_queries=strong_queries)
        df, meta = interpolate_perturbations(model, x, y, atk, alphas, strong_attack=strong,
                                             batch_size=batch_size, seed=seed)
        meta.update({"analysis": "interp", "checkpoint": str(checkpoint), "threat": threat.to_dict(),
                     "x_interp": "clip(x + alpha * delta, 0, 1)"})
        title = f"{name}: x + α·δ, δ from {meta['attack'].get('attack', attack) if isinstance(meta['attack'], dict) else attack} at {threat}"
    meta["split"] = split
    write_results(df, meta, csv_path, json_path)
    plot_interp(df, fig_path, title=title)
    echo_table(df)
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}")
