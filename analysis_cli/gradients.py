"""``landscape gradients``: how far apart the parameter gradients induced by the 1-step and by a
multi-step attack are (Table 6 of Zhong et al. 2025). The work is :func:`landscape.analysis.api.gradient_distance`."""

from __future__ import annotations

import click

from .common import budget_option, checkpoint_argument, checkpoint_label, claim_outputs, data_dir_option, device_option, echo_table, seed_option, write_results


@click.command()
@checkpoint_argument(multiple=True)
@click.option("--out", default=None, help="output prefix for PREFIX.csv and PREFIX.json [default: <first checkpoint>_gradients]")
@click.option("--norm", default=None, help="threat norm (default: each checkpoint's; another norm needs --eps)")
@click.option("--eps", default=None, help="budget (default: each checkpoint's)")
@click.option("--scale-budget", is_flag=True, help="read the budget as a CIFAR-10 one and scale it to the image size")
@click.option("--multi-steps", type=int, default=None, help="steps of the multi-step attack [default: the budget's, 100]")
@click.option("--n-examples", type=int, default=None, help="[default: the budget's, 256]")
@budget_option
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@device_option
@seed_option
@data_dir_option
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
