"""``landscape surface``: loss surfaces through the weights, along the top-2 Hessian eigenvectors
(default, as the paper draws them) or random filter-normalised directions, with cragginess numbers.
The work is :func:`landscape.analysis.api.loss_surface`."""

from __future__ import annotations

import click

from .common import beside, budget_option, checkpoint_argument, claim_outputs, data_dir_option, device_option, out_paths, seed_option, write_results


def _titled(panels, meta, plan):
    """Panel titles in words: the model, the loss, the attack and its budget."""
    from landscape.budgets import describe_attack
    from landscape.threat import ThreatModel
    atk = plan.attacks.get("attack")
    for p, m in zip(panels, meta["surfaces"]):
        if m["loss_mode"] == "clean" or atk is None:
            p["title"] = f"{m['label']}\nclean loss"
            continue
        how = "re-run at every point" if m["loss_mode"] == "recomputed" else "run once at the trained weights, held fixed"
        t = ThreatModel.from_dict(m["threat"]) if m.get("threat") else ""
        p["title"] = f"{m['label']}\nadversarial loss under {t}: {describe_attack(atk)} {how} ({plan.budget} budget)"
    return panels


@click.command()
@checkpoint_argument(multiple=True)
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="figure path (.png/.pdf); the grid goes to <stem>.csv and <stem>.json")
@click.option("--loss", "loss", type=click.Choice(["clean", "fixed", "recomputed"]), default=None,
              help="clean; adversarial with the centre's perturbations held (fixed); or the attack re-run at every "
                   "point with the same seed (recomputed) [default: recomputed for adversarial checkpoints, else clean]")
@click.option("--attack", default=None, help="registry attack re-run at every point [default: the norm's strong "
              "loss-keeping surface attack: sPGD (l0), APGD (l1), PGD from the clean image (l2, l∞)]")
@click.option("--attack-steps", type=int, default=None, help="steps of the attack [default 20]")
@click.option("--norm", default=None, help="threat norm (the checkpoint's by default; another norm needs --eps)")
@click.option("--eps", default=None, help="threat budget (overrides the checkpoint's)")
@click.option("--scale-budget", is_flag=True, help="read --eps as a CIFAR-10 budget and scale it to the image size")
@click.option("--directions", type=click.Choice(["hessian", "random"]), default="hessian", show_default=True,
              help="top-2 Hessian eigenvectors of the loss drawn, or filter-normalised Gaussian directions")
@click.option("--directions-from", type=click.Path(dir_okay=False), default=None,
              help="reuse a saved direction file (compare checkpoints on one plane)")
@click.option("--save-directions", type=click.Path(dir_okay=False), default=None, help="save the directions used")
@click.option("--include-bn", is_flag=True, help="random directions: move biases and BatchNorm parameters too")
@click.option("--tol", type=float, default=None,
              help="hessian directions: Lanczos relative tolerance [default 1e-4 float32]")
@click.option("--dims", type=click.IntRange(1, 2), default=2, show_default=True, help="2 for a plane, 1 for a line")
@click.option("--grid", "--steps", "grid", type=click.IntRange(2, 401), default=None,
              help="points per axis")
@click.option("--range", "span", default=None,
              help="coefficient range LOW:HIGH per axis [default: -0.05:0.05 for hessian (a share of the weights' norm), -1:1 for random directions]")
@click.option("--n-examples", type=int, default=None, help="[default: the budget's]")
@budget_option
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--points-per-batch", type=click.IntRange(1), default=1, show_default=True,
              help="grid points per forward pass (stacked weights; same values). For small kernels on a "
                   "GPU; on the CPU one point per forward was 1.5-2x faster (benchmarks/RESULTS.md)")
@click.option("--shared-scale", is_flag=True,
              help="several checkpoints: one loss scale for every panel (the same colours, contour levels and "
                   "3-D z-axis), so that the models compare at a glance [default: each panel its own]")
@click.option("--chunk-size", type=click.IntRange(1), default=None, help="points per saved chunk [default: one grid row]")
@click.option("--max-chunks", type=int, default=None, hidden=True, help="stop after this many chunks (testing)")
@device_option
@seed_option
@data_dir_option
def surface(checkpoints, out, directions_from, max_chunks, shared_scale, **opts):
    """Loss surface(s) of CHECKPOINTS around their weights, with cragginess numbers.

    Several checkpoints give one figure with panels side by side. Partial results are saved beside
    --out after every chunk; rerunning the same command resumes. Under torchrun the grid points are
    split across ranks and rank 0 writes the results.
    """
    from landscape.analysis import api
    from landscape.distributed import leave
    from landscape.plots.surface import plot_surfaces

    from landscape import budgets

    fig_path, csv_path, json_path = out_paths(out or beside(checkpoints[0], "surface"))
    claim_outputs({"save_directions": opts.get("save_directions")})  # before any work; never a checkpoint
    rank, opts["device"], started = api.init_distributed(opts["device"])
    opts["directions_from"] = directions_from   # checked with the other options, before the plan line
    plan = budgets.prepare("surface", checkpoints, opts, budget=opts.pop("budget"))
    try:
        df, meta = api.loss_surface(checkpoints, max_chunks=max_chunks,
                                    partial=fig_path.with_name(f".{fig_path.stem}.partial"), **opts)
        if not meta["complete"]:
            m = meta["surfaces"][-1]
            click.echo(f"landscape: stopped after {max_chunks} chunk(s) ({m['points_done']}/{m['points']} points); "
                       "rerun the same command to continue", err=True)
            return
        if df is None:
            return
        meta["plan"] = plan.record()
        meta["figure"] = {"shared_scale": bool(shared_scale)}
        write_results(df, meta, csv_path, json_path)
        plot_surfaces(_titled(api.surface_panels(df, meta), meta, plan), fig_path, shared_scale=shared_scale)
        for m in meta["surfaces"]:
            c = m["cragginess"]
            centre = (f"centre loss {m['center']['loss']:.4g}" if "center" in m else
                      "the centre (0, 0) is not a grid point")
            click.echo(f"{m['label']}: {centre}, "
                       f"jump_ratio {c['jump_ratio']:.4g}, jump_fraction {c['jump_fraction']:.4g}, "
                       f"second_diff {c['second_diff']:.4g}, local_minima {c['local_minima']} "
                       f"({m['directions']['kind']} directions, range {m['range'][0]:g}:{m['range'][1]:g})")
            if m.get("points_per_second"):
                click.echo(f"{m['label']}: {m['points_evaluated']} points evaluated in {m['seconds']:.1f} s "
                           f"({m['points_per_second']:.3g} points/s, {m.get('points_per_batch', 1)} per forward)")
        click.echo(f"wrote {fig_path}, {csv_path}, {json_path}")
    finally:
        leave(started)
