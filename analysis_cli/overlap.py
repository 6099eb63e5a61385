"""``landscape overlap``: IoU of the pixel sets perturbed by the 1-step attack and by the strong attack
(sparse-AutoAttack for l0) on the same images."""

from __future__ import annotations


import click


from .common import checkpoint_argument, checkpoint_label, device_option, out_paths, seed_option, strong_attack_options, write_results
from .surface import load_adversarial


@click.command()
@checkpoint_argument()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="histogram; table to <stem>.csv/.json")
@click.option("--norm", default=None)
@click.option("--eps", default=None, help="budget [default: the checkpoint's]")
@click.option("--attack", default=None, help="first attack [default: the natural 1-step attack]")
@strong_attack_options("second attack")
@click.option("--n-examples", type=int, default=500, show_default=True)
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@device_option
@seed_option
def overlap(checkpoint, out, norm, eps, attack, strong_attack, strong_steps, strong_queries, n_examples, split, batch_size, device, seed):
    """Per-image and mean IoU of perturbed pixel locations (over images where both attacks succeed,
    and over all images where either perturbs a pixel)."""
    from landscape.analysis.objective import make_attack
    from landscape.analysis.overlap import location_overlap
    from landscape.plots.interp import plot_overlap

    fig_path, csv_path, json_path = out_paths(out)
    ck, threat, model, x, y, _ = load_adversarial(checkpoint, norm, eps, device, split, n_examples, seed)
    a = make_attack(attack, threat, kind="train")
    b = make_attack(strong_attack, threat, kind="strong", steps=strong_steps, n_queries=strong_queries)
    df, meta = location_overlap(model, x, y, a, b, batch_size=batch_size, seed=seed)
    meta.update({"analysis": "overlap", "checkpoint": str(checkpoint), "threat": threat.to_dict(), "split": split})
    write_results(df, meta, csv_path, json_path)
    plot_overlap(df, fig_path, title=f"{checkpoint_label(checkpoint)}: mean IoU {meta['mean_iou_both_succeed']:.3f} "
                                     f"(both succeed, n={meta['n_both_succeed']}), {meta['mean_iou_all']:.3f} (all)")
    click.echo(f"mean IoU (both succeed, n={meta['n_both_succeed']}): {meta['mean_iou_both_succeed']:.4f}")
    click.echo(f"mean IoU (all, n={meta['n_all']}): {meta['mean_iou_all']:.4f}")
    click.echo(f"wrote {fig_path}, {csv_path}, {json_path}")
