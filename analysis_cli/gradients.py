"""``landscape gradients``: how far apart the parameter gradients induced by the 1-step and by a
multi-step attack are (Table 6 of Zhong et al. 2025). The work is :func:`landscape.analysis.api.gradient_distance`."""

from __future__ import annotations

import click

from .common import checkpoint_argument, checkpoint_label, claim_outputs, echo_table, sample_options, write_results


@click.command()
@checkpoint_argument(multiple=True)
@click.option("--out", default=None, help="output prefix for PREFIX.csv and PREFIX.json [default: <first checkpoint>_gradients]")
@click.option("--norm", default=None, help="threat norm (default: each checkpoint's; another norm needs --eps)")
@click.option("--eps", default=None, help="budget (default: each checkpoint's)")
@click.option("--scale-budget", is_flag=True, help="read the budget as a CIFAR-10 one and scale it to the image size")
@click.option("--multi-steps", type=int, default=None, help="steps of the multi-step attack [default: the budget's, 100]")
@sample_options("train", "[default: the budget's, 256]")
def gradients(checkpoints, out, **opts):
    """l2 distance between the parameter gradients of the adversarial loss under the 1-step and under
    a multi-step attack, one row per checkpoint (l0: 1-step vs multi-step sPGD; l1: Fast-EG-style
    1-step vs APGD; l2/l∞: FGSM vs PGD)."""
    from pathlib import Path

    from landscape.analysis import api

    prefix = Path(out) if out else Path(checkpoints[0]).with_name(f"{checkpoint_label(checkpoints[0])}_gradients")
    if prefix.suffix.lower() in (".csv", ".json"):
        prefix = prefix.with_suffix("")
    csv_path, json_path = Path(str(prefix) + ".csv"), Path(str(prefix) + ".json")
    claim_outputs([csv_path, json_path], arg="out")  # before any work
    from landscape import budgets
    plan = budgets.prepare("gradients", checkpoints, opts, budget=opts.pop("budget"))
    df, meta = api.gradient_distance(checkpoints, **opts)
    meta["plan"] = plan.record()
    write_results(df, meta, csv_path, json_path)
    echo_table(df[["checkpoint", "norm", "eps", "grad_distance", "grad_norm_onestep", "grad_norm_multistep",
                   "relative_distance", "loss_onestep", "loss_multistep"]])
    click.echo(f"wrote {csv_path}, {json_path}")
