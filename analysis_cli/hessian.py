"""``landscape hessian`` (top eigenvalues, trace) and ``landscape density`` (SLQ spectral density).

Under ``torchrun --nproc_per_node G -m analysis_cli hessian ...`` every rank holds a shard of the
sample's batches and the Hessian-vector products are all-reduced; rank 0 prints and writes.
"""

from __future__ import annotations

import os

import click

from .common import checkpoint_argument, checkpoint_label, data_dir_option, device_option, echo_table, out_paths, seed_option, write_results

LOSS_HELP = ("clean; adversarial (perturbations from the threat model's attack at the checkpoint, held fixed); "
             "recipe (the checkpoint's training loss: soft labels, trade-off, TRADES). "
             "Default: adversarial for adversarially trained checkpoints, else clean")


def _common(f):
    opts = [
        click.option("--loss", type=click.Choice(["clean", "adversarial", "recipe"]), default=None, help=LOSS_HELP),
        click.option("--norm", default=None, help="threat model norm for the adversarial loss (default: the checkpoint's)"),
        click.option("--eps", default=None, help="budget, e.g. 20 (l0 pixels) or 8/255 (default: the checkpoint's)"),
        click.option("--attack", default=None,
                     help="attack for the adversarial loss (default: sparse-AutoAttack for l0, PGD/APGD otherwise)"),
        click.option("--attack-steps", type=int, default=None, help="iterations of --attack (per stage for saa)"),
        click.option("--attack-queries", type=int, default=None, help="Sparse-RS queries of --attack (saa, rs)"),
        click.option("--n-examples", default=1000, show_default=True, type=int, help="size of the fixed sample"),
        click.option("--batch-size", default=256, show_default=True, type=int, help="examples per HVP batch"),
        click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
                     help="split the sample is drawn from (soft labels exist for train only)"),
        click.option("--params", default=None, help="parameters by name: glob or regex, comma-separated (default all)"),
        click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True),
        click.option("--mode", "model_mode", type=click.Choice(["eval", "train"]), default="eval", show_default=True,
                     help="model mode for the products (train: BatchNorm batch statistics)"),
        device_option, seed_option, data_dir_option,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _init_distributed(device: str) -> tuple[int, str]:
    """Join the process group torchrun set up (if any); returns (rank, device)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, device
    import torch
    import torch.distributed as dist
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
        dist.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
    return dist.get_rank(), device


def _label(ck, meta: dict) -> str:
    stem = checkpoint_label(ck.path) if ck.path else "model"
    t = meta.get("threat") or meta.get("ckpt_threat")
    parts = [stem]
    if t:
        from landscape.threat import ThreatModel
        parts.append(str(ThreatModel(t["norm"], t["eps"])))
    if meta.get("recipe_name"):
        parts.append(str(meta["recipe_name"]))
    return " · ".join(parts) + f" [{meta['loss']}]"


def _operator(path, opts: dict, progress=None):
    from landscape.analysis.hessian import operator_from_checkpoint
    from landscape.checkpoint import Checkpoint
    from landscape.device import resolve_device
    ck = Checkpoint.load(path)
    op, meta = operator_from_checkpoint(
        ck, loss=opts["loss"], norm=opts["norm"], eps=opts["eps"], n_examples=opts["n_examples"],
        batch_size=opts["batch_size"], split=opts["split"], params=opts["params"], dtype=opts["dtype"],
        mode=opts["model_mode"], device=resolve_device(opts["device"]), seed=opts["seed"],
        data_dir=opts["data_dir"], progress=progress, attack=opts["attack"],
        attack_kwargs={"steps": opts["attack_steps"], "n_queries": opts["attack_queries"]})
    return ck, op, meta


@click.command("hessian")
@checkpoint_argument(multiple=True)
@click.option("--topk", default=20, show_default=True, type=int, help="number of top eigenvalues")
@click.option("--method", type=click.Choice(["lanczos", "power"]), default="lanczos", show_default=True,
              help="lanczos (ARPACK eigsh) or power (PyHessian's power iteration, the reference)")
@click.option("--tol", default=None, type=float, help="relative tolerance (default 1e-4 float32, 1e-8 float64; power: 1e-3)")
@click.option("--maxiter", default=None, type=int, help="iteration limit of the eigensolver")
@click.option("--trace/--no-trace", default=False, help="also estimate the trace (Hutchinson, Rademacher)")
@click.option("--trace-samples", default=100, show_default=True, type=int)
@click.option("--out", default=None, help="output prefix: writes PREFIX.csv, PREFIX.json and PREFIX.png")
@_common
def hessian(checkpoints, topk, method, tol, maxiter, trace, trace_samples, out, **opts):
    """Top eigenvalues (and trace) of the Hessian of the clean, adversarial or training loss.

    Several checkpoints are drawn side by side in one figure (e.g. l0 against l1/l2/l∞, or one norm
    across budgets). Each eigenvalue is reported with its residual ||Hv-λv|| and a converged flag.
    """
    import pandas as pd

    from landscape.analysis.estimators import hutchinson_trace, lanczos_topk, power_iteration_pyhessian
    from landscape.errors import LandscapeError
    from landscape.plots.hessian import plot_spectra

    if topk <= 0:
        raise LandscapeError(f"--topk must be positive, got {topk}")
    rank, opts["device"] = _init_distributed(opts["device"])
    out = out or (checkpoint_label(checkpoints[0]) + "_hessian")
    fig_path, csv_path, json_path = out_paths(out)
    frames, metas, traces = [], [], {}
    for path in checkpoints:
        ck, op, meta = _operator(path, opts)
        if method == "lanczos":
            res = lanczos_topk(op, topk, tol=tol, maxiter=maxiter, seed=opts["seed"])
        else:
            res = power_iteration_pyhessian(op, topk, tol=1e-3 if tol is None else tol,
                                            maxiter=100 if maxiter is None else maxiter, seed=opts["seed"])
        label = _label(ck, meta)
        df = res.to_frame()
        df.insert(0, "label", label)
        df.insert(1, "checkpoint", str(path))
        df.insert(2, "loss", meta["loss"])
        t = meta.get("threat") or {}
        df.insert(3, "norm", t.get("norm"))
        df.insert(4, "eps", t.get("eps"))
        meta.update(label=label, **res.summary(), hvp_time_s=round(op.hvp_time, 4))
        if trace:
            tr = hutchinson_trace(op, trace_samples, seed=opts["seed"])
            df["trace"], df["trace_stderr"] = tr.trace, tr.stderr
            traces[label] = (tr.trace, tr.stderr)
            meta.update(tr.summary())
        frames.append(df)
        metas.append(meta)
    if rank != 0:
        return
    table = pd.concat(frames, ignore_index=True)
    cols = ["label", "rank", "eigenvalue", "residual", "converged"] + (["trace", "trace_stderr"] if trace else [])
    echo_table(table[cols])
    for m in metas:
        click.echo(f"{m['label']}: {m['n_hvp']} HVPs (+{m['n_hvp_check']} residual checks), "
                   f"{m['wall_time_s']:.2f} s, all converged: {m['all_converged']}", err=True)
    write_results(table, {"analysis": "hessian", "method": method, "topk": topk, "checkpoints": metas},
                  csv_path, json_path)
    plot_spectra(table, fig_path, traces=traces or None,
                 title=f"top-{topk} Hessian eigenvalues ({metas[0]['loss']} loss, {metas[0]['n_examples']} examples)")
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}", err=True)


@click.command("density")
@checkpoint_argument(multiple=True)
@click.option("--n-v", default=10, show_default=True, type=int, help="random start vectors")
@click.option("--n-steps", default=80, show_default=True, type=int, help="Lanczos steps per start vector")
@click.option("--sigma", default=None, type=float, help="Gaussian broadening (default 1%% of the spectral range)")
@click.option("--grid", "grid_points", default=1000, show_default=True, type=int, help="points of the density grid")
@click.option("--out", default=None, help="figure path or prefix (writes .png/.csv/.json)")
@_common
def density(checkpoints, n_v, n_steps, sigma, grid_points, out, **opts):
    """Spectral density of the Hessian by stochastic Lanczos quadrature (own Lanczos, full
    reorthogonalisation; Gaussian broadening)."""
    import pandas as pd

    from landscape.analysis.estimators import slq_density
    from landscape.errors import LandscapeError
    from landscape.plots.hessian import plot_density

    if n_v <= 0 or n_steps <= 0 or grid_points < 2:
        raise LandscapeError("--n-v and --n-steps must be positive and --grid at least 2")
    rank, opts["device"] = _init_distributed(opts["device"])
    out = out or (checkpoint_label(checkpoints[0]) + "_density")
    fig_path, csv_path, json_path = out_paths(out)
    frames, metas, curves = [], [], []
    for path in checkpoints:
        ck, op, meta = _operator(path, opts)
        res = slq_density(op, n_v=n_v, n_steps=n_steps, grid=grid_points, sigma=sigma, seed=opts["seed"])
        label = _label(ck, meta)
        df = res.to_frame()
        df.insert(0, "label", label)
        frames.append(df)
        meta.update(label=label, **res.summary(), hvp_time_s=round(op.hvp_time, 4))
        metas.append(meta)
        curves.append((label, res.grid, res.density))
    if rank != 0:
        return
    table = pd.concat(frames, ignore_index=True)
    for m in metas:
        click.echo(f"{m['label']}: trace ≈ {m['trace_estimate']:.4g}, density integral {m['integral']:.4f}, "
                   f"{m['n_hvp']} HVPs, {m['wall_time_s']:.2f} s")
    write_results(table, {"analysis": "density", "checkpoints": metas}, csv_path, json_path)
    plot_density(curves, fig_path, title=f"Hessian spectral density ({metas[0]['loss']} loss)")
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}", err=True)
