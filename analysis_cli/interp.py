"""``landscape interp``: accuracy along ``x + α·δ`` of the 1-step perturbation (Table 3 of Zhong et
al. 2025), with the strong attack's accuracy in the same table; or, with ``--between``, along the
straight line between the weights of two checkpoints. The work is :func:`landscape.analysis.api.interpolation`."""

from __future__ import annotations

import click

from .common import (beside, checkpoint_argument, echo_table, keeps_partial, out_paths, parse_range, sample_options,
                     strong_attack_options, write_results)

PAPER_ALPHAS = "0,0.1,0.2,0.3,0.4,0.6,0.8,1.0"


@click.command()
@checkpoint_argument()
@click.option("--alpha", "alpha_text", default=PAPER_ALPHAS, show_default=True,
              help="interpolation factors: start:stop:step or a comma list")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="figure; table to <stem>.csv/.json [default: <checkpoint dir>/<stem>_interp.png]")
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
@sample_options()
def interp(checkpoint, alpha_text, out, no_strong, **opts):
    """Interpolate along the 1-step perturbation of CHECKPOINT (or towards --between's weights).

    Along x + alpha*delta the attacks keep their finished batches in .PREFIX.partial/: after Ctrl-C,
    the same command goes on from there, with the same results."""
    from landscape.analysis import api
    from landscape.plots.interp import plot_interp

    alphas = parse_range(alpha_text, "--alpha")
    from landscape import budgets

    fig_path, csv_path, json_path = out_paths(out or beside(checkpoint, "interp"))
    budget = opts.pop("budget")
    opts.update(alphas=alphas, strong=not no_strong)
    plan = budgets.prepare("interp", checkpoint, opts, budget=budget)
    if opts.get("between") is None:  # the attacks along x + alpha*delta keep their finished batches
        opts["partial"] = keeps_partial(json_path)
    df, meta = api.interpolation(checkpoint, **opts)
    meta["plan"] = plan.record()
    write_results(df, meta, csv_path, json_path)
    plot_interp(df, fig_path, title=meta["title"])
    echo_table(df)
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}")
