"""``landscape surface``: loss surfaces on a plane of filter-normalised directions, with cragginess.

The loss defaults to the adversarial loss *recomputed* at every grid point (the attack re-run there)
for checkpoints with a threat model, and to the clean loss otherwise. The default attack is the
threat model's natural 1-step attack (``training_attack``: spgd1 for l0, onestep-l1, fgsm for l2/l∞):
the attack fast adversarial training optimises against, whose landscape is the one in question, and
cheap enough for a grid (one forward and backward pass per point and batch). ``--attack NAME`` picks
any registered attack (e.g. ``spgd`` with ``--attack-steps 20``) for a multi-step surface.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from landscape.errors import LandscapeError

from .common import checkpoint_argument, checkpoint_labels, device_option, out_paths, seed_option, write_results


def parse_span(text: str) -> tuple[float, float]:
    """``-1:1`` -> (-1.0, 1.0)."""
    parts = str(text).split(":")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise LandscapeError(f"cannot read --range {text!r}; use LOW:HIGH, e.g. -1:1") from None
    if not hi > lo:
        raise LandscapeError(f"--range {text!r}: HIGH must be above LOW")
    return lo, hi


def load_examples(ck, split: str, n: int | None, seed: int, device):
    """``(x, y)`` of a seeded, class-balanced subset of the checkpoint's dataset, on ``device``."""
    if n is not None and n < 1:
        raise LandscapeError(f"--n-examples must be positive, got {n}")
    ds = ck.load_dataset(split).subset(n, seed=seed)
    return ds.images.float().div(255).to(device), ds.labels.to(device), ds


def resolve_threat(ck, norm: str | None = None, eps=None):
    from landscape.threat import ThreatModel
    t = ck.threat
    if t is None and (norm is None or eps is None):
        if norm is None and eps is None:
            return None
        raise LandscapeError(f"{ck.path} has no threat model; give both --norm and --eps")
    return ThreatModel(norm or t.norm, eps if eps is not None else t.eps)


def load_adversarial(checkpoint, norm, eps, device, split: str, n: int | None, seed: int):
    """The checkpoint, its threat model (``--norm``/``--eps`` override it; one is required), the
    model on the device and a fixed sample: ``(ck, threat, model, x, y, ds)``."""
    from landscape.checkpoint import Checkpoint
    from landscape.device import resolve_device
    ck = Checkpoint.load(checkpoint)
    threat = resolve_threat(ck, norm, eps)
    if threat is None:
        raise LandscapeError(f"{checkpoint} has no threat model; give --norm and --eps")
    dev = resolve_device(device)
    model = ck.model(dev)
    x, y, ds = load_examples(ck, split, n, seed, dev)
    return ck, threat, model, x, y, ds


def _maybe_init_dist(device):
    import torch
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo" if device.type == "cpu" else "nccl")
        return True
    return False


@click.command()
@checkpoint_argument(multiple=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="figure path (.png/.pdf); the grid goes to <stem>.csv and <stem>.json")
@click.option("--loss", "loss_mode", type=click.Choice(["clean", "fixed", "recomputed"]), default=None,
              help="clean, adversarial with perturbations fixed at the centre, or recomputed at every point "
                   "[default: recomputed for adversarial checkpoints, else clean]")
@click.option("--attack", default=None, help="attack name [default: the threat model's natural 1-step attack]")
@click.option("--attack-steps", type=int, default=None, help="steps of --attack (multi-step attacks)")
@click.option("--norm", default=None, help="threat norm (overrides the checkpoint's)")
@click.option("--eps", default=None, help="threat budget (overrides the checkpoint's)")
@click.option("--directions", "dir_kind", type=click.Choice(["random", "hessian"]), default="random", show_default=True,
              help="filter-normalised Gaussian directions, or the top-2 Hessian eigenvectors")
@click.option("--directions-from", type=click.Path(dir_okay=False), default=None,
              help="reuse a saved direction file (compare checkpoints on one plane)")
@click.option("--save-directions", type=click.Path(dir_okay=False), default=None, help="save the directions used")
@click.option("--include-bn", is_flag=True, help="move biases and BatchNorm parameters too (zeroed by default)")
@click.option("--dims", type=click.IntRange(1, 2), default=2, show_default=True, help="2 for a plane, 1 for a line")
@click.option("--grid", "--steps", "grid", type=click.IntRange(2, 401), default=11, show_default=True,
              help="points per axis")
@click.option("--range", "span", default="-1:1", show_default=True, help="coefficient range LOW:HIGH per axis")
@click.option("--n-examples", type=int, default=256, show_default=True)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--chunk-size", type=click.IntRange(1), default=None, help="points per saved chunk [default: one grid row]")
@click.option("--max-chunks", type=int, default=None, hidden=True, help="stop after this many chunks (testing)")
@device_option
@seed_option
def surface(checkpoints, out, loss_mode, attack, attack_steps, norm, eps, dir_kind, directions_from,
            save_directions, include_bn, dims, grid, span, n_examples, split, batch_size, chunk_size,
            max_chunks, device, seed):
    """Loss surface(s) of CHECKPOINTS around their weights, with cragginess numbers.

    Several checkpoints give one figure with panels side by side on the same plane: the same
    direction seed (each direction filter-normalised against each model's own weights), or exactly
    the same direction tensors with --directions-from. Partial results are saved beside --out after
    every chunk; rerunning the same command resumes. Under torchrun the grid points are split across
    ranks (gloo on the CPU) and rank 0 writes the results.
    """
    import numpy as np
    import pandas as pd
    import torch

    from landscape.analysis import directions as D
    from landscape.analysis.objective import LossObjective, make_attack
    from landscape.analysis.surface import compute_surface, grid_array, tensor_digest
    from landscape.checkpoint import Checkpoint
    from landscape.device import resolve_device
    from landscape.plots.surface import plot_surfaces

    fig_path, csv_path, json_path = out_paths(out)
    lo, hi = parse_span(span)
    if directions_from and dir_kind == "hessian":
        raise LandscapeError("give either --directions hessian or --directions-from, not both")
    cks = [Checkpoint.load(p) for p in checkpoints]
    labels = checkpoint_labels(checkpoints)
    dev = resolve_device(device)
    if directions_from and not Path(directions_from).exists():
        raise LandscapeError(f"directions file not found: {directions_from}")
    started = _maybe_init_dist(dev)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    coeffs = [float(v) for v in np.linspace(lo, hi, grid)]
    b_coeffs = coeffs if dims == 2 else [0.0]
    panels, frames, metas = [], [], []
    try:
        for j, ck in enumerate(cks):
            model = ck.model(dev)
            threat = resolve_threat(ck, norm, eps)
            mode = loss_mode or ("recomputed" if threat is not None else "clean")
            atk = None
            if mode != "clean":
                if threat is None:
                    raise LandscapeError(f"{ck.path} is a clean checkpoint; give --norm and --eps for an adversarial loss")
                kw = {"steps": attack_steps} if attack_steps else {}
                atk = make_attack(attack, threat, kind="train", **kw)
            x, y, _ = load_examples(ck, split, n_examples, seed, dev)
            obj = LossObjective(model, x, y, mode, atk, batch_size, seed=seed)
            dinfo = {"kind": dir_kind, "include_bn": include_bn, "seed": seed}
            if directions_from:
                dirs, saved_meta = D.load_directions(directions_from, model, k=dims)
                dinfo = {"kind": "file", "file": str(directions_from), "saved": saved_meta}
            elif dir_kind == "hessian":
                dirs, hinfo = D.hessian_directions(obj, k=dims, seed=seed)
                dinfo.update(hinfo)
            else:
                dirs = D.random_directions(model, k=dims, seed=seed, include_bn=include_bn)
            if save_directions and j == 0 and rank == 0:
                D.save_directions(save_directions, dirs, {"checkpoint": str(ck.path), **{k: v for k, v in dinfo.items() if k != "saved"}})
            config = {"checkpoint": str(Path(ck.path).resolve()), "weights": tensor_digest(obj.center),
                      "split": split, "threat": threat.to_dict() if threat else None}
            partial = fig_path.with_name(f".{fig_path.stem}.partial{j if len(cks) > 1 else ''}.json")
            df, meta = compute_surface(obj, dirs, coeffs, b_coeffs, chunk_size=chunk_size, partial=partial,
                                       config=config, seed=seed, max_chunks=max_chunks)
            if df is None:  # a non-zero rank: rank 0 writes
                continue
            if not meta["complete"]:
                click.echo(f"landscape: stopped after {max_chunks} chunk(s) ({meta['points_done']}/{meta['points']} points); "
                           "rerun the same command to continue", err=True)
                return
            name = labels[j]
            meta.update({"checkpoint": str(ck.path), "label": name, "summary": ck.summary(), "directions": dinfo,
                         "loss_mode": mode, "range": [lo, hi]})
            metas.append(meta)
            frames.append(df.assign(checkpoint=name))
            z = grid_array(df, coeffs, b_coeffs)
            panels.append({"a": coeffs, "b": b_coeffs, "z": z if dims == 2 else z[:, 0],
                           "title": f"{name}: {mode} loss" + (f", {threat}" if mode != "clean" else ""),
                           "cragginess": meta["cragginess"]})
        if rank != 0 or not frames:
            return
        table = pd.concat(frames, ignore_index=True)[["checkpoint", "a", "b", "loss", "acc"]]
        result_meta = {"analysis": "surface", "surfaces": metas,
                       "cragginess": {m["label"]: m["cragginess"] for m in metas}}
        write_results(table, result_meta, csv_path, json_path)
        plot_surfaces(panels, fig_path)
        for m in metas:
            c = m["cragginess"]
            click.echo(f"{m['label']}: centre loss {m.get('center', {}).get('loss', float('nan')):.4g}, "
                       f"second_diff {c['second_diff']:.4g}, total_variation {c['total_variation']:.4g}, "
                       f"local_minima {c['local_minima']}")
        click.echo(f"wrote {fig_path}, {csv_path}, {json_path}")
    finally:
        if started:
            torch.distributed.destroy_process_group()
