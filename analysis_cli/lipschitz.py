"""``landscape lipschitz``: empirical Lipschitz constants of the adversarial loss and its gradient
(attack recomputed at both points), for hard against soft labels and CE against the trade-off loss.
The work is :func:`landscape.analysis.api.lipschitz`."""

from __future__ import annotations

import click

from .common import beside, checkpoint_argument, echo_table, out_paths, parse_range, sample_options, write_results


@click.command()
@checkpoint_argument()
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="figure; table to <stem>.csv/.json [default: <checkpoint dir>/<stem>_lipschitz.png]")
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
@sample_options()
def lipschitz(checkpoint, out, radii, compare, **opts):
    """Lipschitz estimates of the recomputed adversarial loss of CHECKPOINT at several radii."""
    from landscape.analysis import api
    from landscape.plots.lipschitz import plot_lipschitz

    from landscape import budgets

    fig_path, csv_path, json_path = out_paths(out or beside(checkpoint, "lipschitz"))
    budget = opts.pop("budget")
    opts.update(radii=parse_range(radii, "--radii"), compare=compare.split(","))
    plan = budgets.prepare("lipschitz", checkpoint, opts, budget=budget)
    df, meta = api.lipschitz(checkpoint, **opts)
    meta["plan"] = plan.record()
    write_results(df, meta, csv_path, json_path)
    plot_lipschitz(df, fig_path, title=f"{meta['summary']}\nLipschitz estimates of the adversarial loss "
                                       f"({budgets.describe_attack(plan.attacks['attack'])} re-run at both points), "
                                       f"{plan.n_examples} {opts['split']} images ({plan.budget} budget)")
    echo_table(df.groupby(["variant", "radius"], sort=False).mean(numeric_only=True).reset_index()
               [["variant", "radius", "loss_lip", "grad_lip", "grad_lip_fixed", "delta_l2", "loc_change"]])
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}")
