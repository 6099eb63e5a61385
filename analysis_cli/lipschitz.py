"""``landscape lipschitz``: empirical Lipschitz constants of the adversarial loss and its gradient
(attack recomputed at both points), for hard against soft labels and CE against the trade-off loss."""

from __future__ import annotations

import click

from landscape.errors import LandscapeError

from .common import checkpoint_argument, device_option, echo_table, out_paths, parse_range, seed_option, write_results
from .surface import load_adversarial


@click.command()
@checkpoint_argument()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="figure; table to <stem>.csv/.json")
@click.option("--radii", default="1e-3,1e-2,1e-1", show_default=True, help="distances ‖θ₁ − θ₂‖ (comma list)")
@click.option("--compare", default="labels,loss", show_default=True,
              help="labels (hard vs soft), loss (CE vs trade-off), both, or '' for hard-label CE only")
@click.option("--direction", type=click.Choice(["filter", "random"]), default="filter", show_default=True,
              help="unit direction: filter-normalised (biases/BN zero) or plain Gaussian")
@click.option("--n-directions", type=click.IntRange(1), default=1, show_default=True)
@click.option("--smoothing", type=float, default=0.1, show_default=True,
              help="label smoothing of the soft labels when the checkpoint has no SAT targets for the images")
@click.option("--tradeoff-alpha", type=float, default=None, help="α of the trade-off loss [default: the recipe's, else 0.5]")
@click.option("--norm", default=None)
@click.option("--eps", default=None)
@click.option("--attack", default=None, help="attack [default: the natural 1-step attack]")
@click.option("--attack-steps", type=int, default=None)
@click.option("--n-examples", type=int, default=128, show_default=True)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@device_option
@seed_option
def lipschitz(checkpoint, out, radii, compare, direction, n_directions, smoothing, tradeoff_alpha, norm, eps,
              attack, attack_steps, n_examples, split, batch_size, device, seed):
    """Lipschitz estimates of the recomputed adversarial loss of CHECKPOINT at several radii."""
    from landscape.analysis.lipschitz import build_variants, lipschitz_estimates
    from landscape.analysis.objective import make_attack
    from landscape.plots.lipschitz import plot_lipschitz

    radii_v = parse_range(radii, "--radii")
    if any(r <= 0 for r in radii_v):
        raise LandscapeError(f"--radii {radii!r}: every radius must be positive")
    fig_path, csv_path, json_path = out_paths(out)
    ck, threat, model, x, y, ds = load_adversarial(checkpoint, norm, eps, device, split, n_examples, seed)
    dev = x.device
    soft, soft_source = None, f"label smoothing {smoothing:g}"
    if split == "train" and "labels" in compare:
        from landscape.analysis.hessian import _soft_labels  # SAT targets of the training examples, if any
        full = ck.load_dataset("train")
        # recover the subset's indices in the full split (subset draws a seeded permutation)
        idx = full.subset_indices(n_examples, seed=seed)
        s = _soft_labels(ck, "train", idx)
        if s is not None:
            soft, soft_source = s.to(dev), "self-adaptive-training targets of the checkpoint"
    recipe = ck.recipe or {}
    alpha = tradeoff_alpha if tradeoff_alpha is not None else float(recipe.get("tradeoff_alpha", 0.5) or 0.5)
    variants = build_variants(compare.split(","), y, ds.num_classes, smoothing=smoothing, soft_targets=soft,
                              tradeoff_alpha=alpha)
    kw = {"steps": attack_steps} if attack_steps else {}
    atk = make_attack(attack, threat, kind="train", **kw)
    df, meta = lipschitz_estimates(model, x, y, atk, radii_v, variants=variants, n_directions=n_directions,
                                   direction=direction, seed=seed, batch_size=batch_size, norm=threat.norm)
    meta.update({"analysis": "lipschitz", "checkpoint": str(checkpoint), "threat": threat.to_dict(),
                 "soft_labels": soft_source, "split": split})
    write_results(df, meta, csv_path, json_path)
    plot_lipschitz(df, fig_path, title=f"{ck.summary()}")
    echo_table(df.groupby(["variant", "radius"], sort=False).mean(numeric_only=True).reset_index()
               [["variant", "radius", "loss_lip", "grad_lip", "grad_lip_fixed", "delta_l2", "loc_change"]])
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}")


