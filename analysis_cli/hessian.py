"""``landscape hessian`` (top eigenvalues, trace) and ``landscape density`` (SLQ spectral density).

The work is :func:`landscape.analysis.api.hessian_spectrum` / ``hessian_density``. Under ``torchrun
--nproc_per_node G -m analysis_cli hessian ...`` every rank holds a shard of the sample's batches and
the Hessian-vector products are all-reduced; rank 0 prints and writes.
"""

from __future__ import annotations

import click

from .common import (beside, budget_option, checkpoint_argument, data_dir_option, device_option, echo_table,
                     keeps_partial, note_no_native_bf16, out_paths, seed_option, write_results)

LOSS_HELP = ("clean; adversarial (perturbations found once at the checkpoint by the strong loss-keeping attack, "
             "held fixed); recipe (the checkpoint's training loss: soft labels, trade-off, TRADES). "
             "Default: adversarial for adversarially trained checkpoints, else clean")


def _common(f):
    opts = [
        click.option("--loss", type=click.Choice(["clean", "adversarial", "recipe"]), default=None, help=LOSS_HELP),
        click.option("--norm", default=None, help="threat model norm (default: the checkpoint's; another norm needs --eps)"),
        click.option("--eps", default=None, help="budget, e.g. 20 (l0 pixels) or 8/255 (default: the checkpoint's)"),
        click.option("--scale-budget", is_flag=True, help="read the budget as a CIFAR-10 one and scale it to the "
                     "image size (l0: share of pixels, l1: x d/3072, l2: x sqrt(d/3072))"),
        click.option("--attack", default=None, help="attack that fixes the perturbations (default: maxloss, the "
                     "strong attack keeping the highest loss; exhaustive for l0 at eps 1)"),
        click.option("--attack-steps", type=int, default=None, help="iterations of --attack"),
        click.option("--attack-queries", type=int, default=None, help="Sparse-RS queries of --attack (l0)"),
        click.option("--n-examples", default=None, type=int, help="size of the fixed sample [default: the budget's]"),
        budget_option,
        click.option("--batch-size", default=256, show_default=True, type=int, help="examples per HVP batch"),
        click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
                     help="split the sample is drawn from (the paper: train)"),
        click.option("--params", default=None, help="parameters by name: glob or regex, comma-separated (default all)"),
        click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True),
        click.option("--mode", "mode", type=click.Choice(["eval", "train"]), default="eval", show_default=True,
                     help="model mode for the products (train: BatchNorm batch statistics)"),
        device_option, seed_option, data_dir_option,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _title(what: str, meta: dict, plan) -> str:
    """``Top 10 Hessian eigenvalues of the adversarial loss, ...`` and how the perturbations were made, in words."""
    from landscape.budgets import describe_attack
    loss = {"clean": "clean loss", "adversarial": "adversarial loss", "recipe": "training loss"}.get(meta["loss"], meta["loss"])
    text = f"{what} of the {loss}, {meta['n_examples']} {meta.get('split', 'train')} images"
    atk = plan.attacks.get("perturbations")
    if atk is not None and meta["loss"] != "clean":
        text += f"\nperturbations from {describe_attack(atk)}, held fixed ({plan.budget} budget)"
    return text


@click.command("hessian")
@checkpoint_argument(multiple=True)
@click.option("--topk", default=10, show_default=True, type=int, help="number of top eigenvalues (the paper: 10)")
@click.option("--method", type=click.Choice(["lanczos", "power"]), default="lanczos", show_default=True,
              help="lanczos or power (PyHessian's power iteration, the reference)")
@click.option("--solver", type=click.Choice(["auto", "full", "arpack"]), default="auto", show_default=True,
              help="Lanczos's solver: full (no restart: the fewest products, a basis of up to max(10k, 100) "
                   "vectors in memory), arpack (restarted, ARPACK eigsh), auto (full where its basis fits "
                   "a quarter of the free memory)")
@click.option("--precision", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True,
              help="Lanczos's products: bfloat16 builds the Krylov space with bf16 products (about half the cost "
                   "on a CPU with avx512_bf16) and settles the top k with k float32 ones: eigenvalues "
                   "to about 1e-3, residuals near 2e-2 (--dtype float32 only)")
@click.option("--tol", default=None, type=float, help="relative tolerance (default 1e-4 float32, 1e-8 float64, "
              "5e-2 with --precision bfloat16; power: 1e-3)")
@click.option("--maxiter", default=None, type=int, help="iteration limit of the eigensolver")
@click.option("--trace/--no-trace", default=False, help="also estimate the trace (Hutchinson, Rademacher)")
@click.option("--trace-samples", default=100, show_default=True, type=int)
@click.option("--out", default=None, help="output prefix: writes PREFIX.csv, PREFIX.json and PREFIX.png")
@_common
def hessian(checkpoints, out, **opts):
    """Top eigenvalues (and trace) of the Hessian of the clean, adversarial or training loss.

    Several checkpoints are drawn side by side in one figure (e.g. l0 against l1/l2/l∞, or one norm
    across budgets). Each eigenvalue is reported with its residual ||Hv-λv|| and a converged flag.
    The perturbations of an adversarial loss are kept in .PREFIX.partial/ as they are found: after
    Ctrl-C, the same command reads them back instead of attacking again.
    """
    from landscape.analysis import api
    from landscape.plots.hessian import plot_spectra

    done = _run_on_rank0("hessian", api.hessian_spectrum, checkpoints, out, opts)
    if done is None:
        return
    table, meta, plan, (fig_path, csv_path, json_path) = done
    cols = ["label", "rank", "eigenvalue", "residual", "converged"] + (["trace", "trace_stderr"] if opts["trace"] else [])
    echo_table(table[cols])
    for m in meta["checkpoints"]:
        budget = f", eps {m['eps_reference']:g} scaled to {m['eps_scaled']:.4g}" if m.get("budget_scaled") else ""
        adv = f", CE clean {m['clean_ce']:.4g} -> adversarial {m['adversarial_ce']:.4g}" if "adversarial_ce" in m else ""
        hvps = (f"{m['n_hvp_bfloat16']} bf16 + {m['n_hvp_float32']} float32 HVPs" if "n_hvp_bfloat16" in m
                else f"{m['n_hvp']} HVPs (+{m['n_hvp_check']} residual checks)")
        click.echo(f"{m['label']}: {hvps}, {m['wall_time_s']:.2f} s, "
                   f"all converged: {m['all_converged']}; {m['split']} split, {m['n_examples']} examples{adv}{budget}", err=True)
    write_results(table, meta, csv_path, json_path)
    m0 = meta["checkpoints"][0]
    plot_spectra(table, fig_path, traces={k: tuple(v) for k, v in meta["traces"].items()} or None,
                 title=_title(f"Top {opts['topk']} Hessian eigenvalues", m0, plan))
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}", err=True)


def _run_on_rank0(command: str, compute, checkpoints, out, opts: dict):
    """Join torchrun's process group (if any), claim the outputs, resolve the budget and run
    ``compute(checkpoints, **opts)`` on every rank: ``(table, meta, plan, (figure, csv, json))`` on
    rank 0, None on the others (rank 0 prints and writes)."""
    from landscape.analysis import api

    from landscape import budgets

    rank, opts["device"], _ = api.init_distributed(opts["device"])
    paths = out_paths(out or beside(checkpoints[0], command))
    plan = budgets.prepare(command, checkpoints, opts, budget=opts.pop("budget"))
    if opts.get("precision") == "bfloat16" and rank == 0:
        note_no_native_bf16(opts["device"])
    # the perturbations of an adversarial loss are kept as they are found (.STEM.partial/): a rerun
    # after Ctrl-C reads them back instead of attacking again
    table, meta = compute(checkpoints, partial=keeps_partial(paths[2]), **opts)
    meta["plan"] = plan.record()
    return None if rank != 0 else (table, meta, plan, paths)


@click.command("density")
@checkpoint_argument(multiple=True)
@click.option("--n-v", default=None, type=int, help="random start vectors [default: the budget's; full 10]")
@click.option("--n-steps", default=None, type=int, help="Lanczos steps per start vector [default: the budget's; full 80]")
@click.option("--sigma", default=None, type=float, help="Gaussian broadening (default 1%% of the spectral range)")
@click.option("--grid", "grid", default=1000, show_default=True, type=int, help="points of the density grid")
@click.option("--out", default=None, help="figure path or prefix (writes .png/.csv/.json)")
@_common
def density(checkpoints, out, **opts):
    """Spectral density of the Hessian by stochastic Lanczos quadrature (own Lanczos, full
    reorthogonalisation; Gaussian broadening). The perturbations of an adversarial loss are kept in
    .PREFIX.partial/ as they are found: after Ctrl-C, the same command reads them back."""
    from landscape.analysis import api
    from landscape.plots.hessian import plot_density

    done = _run_on_rank0("density", api.hessian_density, checkpoints, out, opts)
    if done is None:
        return
    table, meta, plan, (fig_path, csv_path, json_path) = done
    for m in meta["checkpoints"]:
        click.echo(f"{m['label']}: trace ≈ {m['trace_estimate']:.4g}, density integral {m['integral']:.4f}, "
                   f"{m['n_hvp']} HVPs, {m['wall_time_s']:.2f} s")
    write_results(table, meta, csv_path, json_path)
    curves = [(lab, g["eigenvalue"].to_numpy(), g["density"].to_numpy()) for lab, g in table.groupby("label", sort=False)]
    plot_density(curves, fig_path, title=_title("Hessian spectral density", meta["checkpoints"][0], plan))
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}", err=True)
