"""``landscape eval CKPT``: robust accuracy of a checkpoint under an attack, with validity checks.
The work is :func:`landscape.analysis.api.evaluate_checkpoint`."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (budget_option, claim_outputs, checkpoint_argument, data_dir_option, device_option, echo_table,
                     keeps_partial, note_no_native_bf16, seed_option, write_results)

from landscape.attacks.spec import EVALUATION_ATTACKS

ATTACK_CHOICES = list(EVALUATION_ATTACKS)


def _outputs(path: Path, out, opts: dict) -> tuple[Path, Path]:
    """``PREFIX.csv`` and ``PREFIX.json``; the default prefix names the attack, which for the
    default attack depends on the norm (the checkpoint's unless --norm is given)."""
    from landscape.attacks import attack_for
    from landscape.checkpoint import load_checkpoint
    from landscape.threat import parse_norm
    if out:
        prefix = Path(out)
    else:
        name = opts.get("attack")
        if name is None:
            norm = opts.get("norm")
            if norm is None:
                t = load_checkpoint(path).threat
                norm = t.norm if t is not None else None
            name = attack_for(parse_norm(norm), "strong").name if norm is not None else None
        prefix = path.with_name(f"{path.stem}_eval_{name or 'attack'}")
    if prefix.suffix.lower() in (".csv", ".json"):
        prefix = prefix.with_suffix("")
    return Path(str(prefix) + ".csv"), Path(str(prefix) + ".json")


@click.command("eval")
@checkpoint_argument()
@click.option("--attack", "attack", type=click.Choice(ATTACK_CHOICES), default=None,
              help="attack (default: saa for l0, pgd for l2/linf, apgd for l1)")
@click.option("--norm", default=None, help="threat norm l0, l1, l2, linf (default: the checkpoint's; another norm needs --eps)")
@click.option("--eps", default=None, help="budget, e.g. 20, 12, 0.5 or 8/255 (default: the checkpoint's)")
@click.option("--scale-budget", is_flag=True, help="read the budget as a CIFAR-10 one and scale it to the image size")
@click.option("--steps", type=int, default=None, help="iterations (sPGD/PGD/APGD; queries for rs); attack default if unset")
@click.option("--queries", type=int, default=None, help="Sparse-RS queries (rs, saa); attack default if unset")
@click.option("--restarts", type=int, default=None, help="random restarts (pgd, apgd, rs)")
@click.option("--precision", type=click.Choice(["float32", "bfloat16"]), default=None,
              help="precision of sparse-PGD's search (spgd, spgd-projected, saa): bfloat16 is faster on GPUs and on "
                   "CPUs with avx512_bf16 or AMX (1.5-1.8x for sPGD on 1,000 images here); verdicts near the "
                   "decision boundary are settled in float32, and the robust accuracy is always counted in float32  "
                   "[default: float32]")
@budget_option
@click.option("--n-examples", type=int, default=None,
              help="size of the fixed held-out test subset (0 = the whole test split)")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--out", default=None, help="output prefix for PREFIX.csv and PREFIX.json "
              "(default: <checkpoint dir>/<stem>_eval_<attack>)")
@click.option("--save-adv", type=click.Path(dir_okay=False), default=None,
              help="save x_adv, y and test-split indices to this .pt file (weights_only-loadable)")
@device_option
@seed_option
@data_dir_option
def eval_cmd(checkpoint, out, save_adv, **opts):
    """Evaluate CHECKPOINT on a fixed subset of its test split under an attack.

    Prints clean accuracy, the robust accuracy after each stage (for the sparse-AutoAttack cascade:
    spgd, spgd-projected, rs), the worst case and the time; writes PREFIX.csv and PREFIX.json.
    Every adversarial example is checked against the threat model before it is counted.
    Finished batches are saved in .PREFIX.partial/ as they end: after Ctrl-C, rerunning the same
    command goes on from the next batch, with the same results as an uninterrupted run.
    """
    from landscape.analysis import api
    from landscape.checkpoint import atomic_save
    from landscape.errors import LandscapeError

    if opts["n_examples"] is not None and opts["n_examples"] < 0:
        raise LandscapeError(f"--n-examples must be 0 (all) or positive, got {opts['n_examples']}")
    from landscape import budgets
    path = Path(checkpoint)
    csv_path, json_path = _outputs(path, out, opts)
    claim_outputs({"out": csv_path, "save_adv": save_adv})  # refused now, not after the attack
    claim_outputs({"out": json_path})
    plan = budgets.prepare("eval", checkpoint, opts, budget=opts.pop("budget"))
    if opts.get("precision") == "bfloat16":
        note_no_native_bf16(opts["device"])
    df, meta = api.evaluate_checkpoint(checkpoint, save_adv=save_adv is not None,
                                       partial=keeps_partial(json_path), **opts)
    meta["plan"] = plan.record()
    adv = meta.pop("adv", None)
    name = meta["attack_name"]
    if save_adv is not None:
        atomic_save({"format": "landscape-adversarial-examples", "x_adv": adv["x_adv"], "y": adv["y"], "indices": adv["indices"], "robust": adv["robust"],
                     "clean_correct": adv["clean_correct"], "threat": meta["threat"], "attack": name,
                     "checkpoint": str(path), "split": "test"}, save_adv, arg="save_adv")
        meta["save_adv"] = str(save_adv)
    write_results(df, meta, csv_path, json_path)
    threat = meta["threat_str"]
    bf16 = " (sPGD's search in bfloat16, verdicts near the boundary settled in float32)" if opts.get("precision") == "bfloat16" else ""
    click.echo(f"{meta['checkpoint_summary']}; {meta['n_examples']} test images; attack {name} under {threat}{bf16}")
    echo_table(df[["stage", "accuracy", "correct", "n", "seconds"]])
    click.echo(f"robust accuracy {meta['robust_accuracy']:.4f} under {threat} in {meta['wall_seconds']:.1f}s; "
               f"wrote {csv_path} and {json_path}")
