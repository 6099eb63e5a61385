"""``landscape overlap``: where the training attack's and the strong attack's perturbations land.
The work is :func:`landscape.analysis.api.pixel_overlap`."""

from __future__ import annotations

import click

from .common import (beside, checkpoint_argument, checkpoint_label, keeps_partial, out_paths, sample_options,
                     strong_attack_options, write_results)


@click.command()
@checkpoint_argument()
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="histograms; table to <stem>.csv/.json [default: <checkpoint dir>/<stem>_overlap.png]")
@click.option("--norm", default=None)
@click.option("--eps", default=None, help="budget [default: the checkpoint's]")
@click.option("--attack", default=None, help="training attack [default: the natural 1-step attack]")
@click.option("--attack-steps", type=int, default=None, help="steps of the training attack (e.g. 20 for 20-step sPGD)")
@strong_attack_options("second attack")
@sample_options()
def overlap(checkpoint, out, **opts):
    """Per-image overlap of perturbed pixel locations: the paper's overlap rate (share of the strong
    attack's pixels the training attack also perturbs) and the IoU, over images where both attacks
    succeed and over all images where either perturbs a pixel. The attacks keep their finished
    batches in .PREFIX.partial/: after Ctrl-C, the same command goes on from there."""
    from landscape.analysis import api
    from landscape.plots.interp import plot_overlap

    from landscape import budgets

    fig_path, csv_path, json_path = out_paths(out or beside(checkpoint, "overlap"))
    plan = budgets.prepare("overlap", checkpoint, opts, budget=opts.pop("budget"))
    df, meta = api.pixel_overlap(checkpoint, partial=keeps_partial(json_path), **opts)
    meta["plan"] = plan.record()
    write_results(df, meta, csv_path, json_path)
    plot_overlap(df, fig_path, first=budgets.describe_attack(plan.attacks["first attack"]),
                 second=budgets.describe_attack(plan.attacks["second attack"]),
                 title=f"{checkpoint_label(checkpoint)} under {meta['threat']['norm']} budget {meta['threat']['eps']:g}: "
                       f"where two attacks perturb, {meta.get('n_examples', plan.n_examples)} {opts['split']} images "
                       f"({plan.budget} budget)")
    click.echo(f"mean overlap rate (both succeed, n={meta['n_both_succeed']}): {meta['mean_rate_both_succeed']:.4f}")
    click.echo(f"mean IoU (both succeed, n={meta['n_both_succeed']}): {meta['mean_iou_both_succeed']:.4f}")
    click.echo(f"mean overlap rate / IoU (all, n={meta['n_all']}): {meta['mean_rate_all']:.4f} / {meta['mean_iou_all']:.4f}")
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}")
