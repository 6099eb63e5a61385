"""``landscape eval CKPT``: robust accuracy of a checkpoint under an attack, with validity checks."""

from __future__ import annotations

from pathlib import Path

import click

from .common import checkpoint_argument, data_dir_option, device_option, echo_table, seed_option, write_results

ATTACK_CHOICES = ["saa", "spgd", "spgd-projected", "rs", "pgd", "apgd", "fgsm", "onestep-l1", "spgd1"]


@click.command("eval")
@checkpoint_argument()
@click.option("--attack", "attack_name", type=click.Choice(ATTACK_CHOICES), default=None,
              help="attack (default: saa for l0, pgd for l2/linf, apgd for l1)")
@click.option("--norm", default=None, help="threat norm l0, l1, l2, linf (default: the checkpoint's)")
@click.option("--eps", default=None, help="budget, e.g. 20, 12, 0.5 or 8/255 (default: the checkpoint's)")
@click.option("--steps", type=int, default=None, help="iterations (sPGD/PGD/APGD; queries for rs); attack default if unset")
@click.option("--queries", type=int, default=None, help="Sparse-RS queries (rs, saa); attack default if unset")
@click.option("--restarts", type=int, default=None, help="random restarts (pgd, apgd, rs)")
@click.option("--n-examples", type=int, default=1000, show_default=True,
              help="size of the fixed held-out test subset (0 = the whole test split)")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--out", default=None, help="output prefix for PREFIX.csv and PREFIX.json "
              "(default: <checkpoint dir>/<stem>_eval_<attack>)")
@click.option("--save-adv", type=click.Path(dir_okay=False), default=None,
              help="save x_adv, y and test-split indices to this .pt file (weights_only-loadable)")
@device_option
@seed_option
@data_dir_option
def eval_cmd(checkpoint, attack_name, norm, eps, steps, queries, restarts, n_examples, batch_size, out, save_adv,
             device, seed, data_dir):
    """Evaluate CHECKPOINT on a fixed subset of its test split under an attack.

    Prints clean accuracy, the robust accuracy after each stage (for the sparse-AutoAttack cascade:
    spgd, spgd-projected, rs), the worst case and the time; writes PREFIX.csv and PREFIX.json.
    Every adversarial example is checked against the threat model before it is counted.
    """
    import torch

    from landscape.attacks import build_attack
    from landscape.checkpoint import atomic_save, load_checkpoint
    from landscape.device import resolve_device
    from landscape.errors import LandscapeError
    from landscape.evaluation import evaluate
    from landscape.threat import ThreatModel, parse_eps, parse_norm

    if n_examples < 0:
        raise LandscapeError(f"--n-examples must be 0 (all) or positive, got {n_examples}")
    if batch_size < 1:
        raise LandscapeError(f"--batch-size must be positive, got {batch_size}")
    for nm, v in (("--steps", steps), ("--queries", queries), ("--restarts", restarts)):
        if v is not None and v < 1:
            raise LandscapeError(f"{nm} must be positive, got {v}")
    path = Path(checkpoint)
    if not path.exists():
        raise LandscapeError(f"checkpoint {checkpoint} does not exist")
    ck = load_checkpoint(path)
    ck_threat = ck.threat
    if norm is None and ck_threat is None:
        raise LandscapeError(f"{checkpoint} stores no threat model; give --norm and --eps")
    norm = parse_norm(norm) if norm is not None else ck_threat.norm
    if eps is not None:
        eps = parse_eps(eps)
    elif ck_threat is not None and ck_threat.norm == norm:
        eps = ck_threat.eps
    else:
        raise LandscapeError(f"give --eps: the checkpoint's threat model is {ck_threat}, not {norm}")
    threat = ThreatModel(norm, eps)
    dev = resolve_device(device)
    torch.manual_seed(seed)

    if attack_name is None:
        attack_name = {"l0": "saa", "l1": "apgd", "l2": "pgd", "linf": "pgd"}[norm]
    kwargs = {"seed": seed}
    if attack_name in ("saa", "rs"):
        kwargs["n_queries"] = queries
    elif queries is not None:
        raise LandscapeError(f"--queries applies to rs and saa, not {attack_name}")
    if steps is not None:
        kwargs["steps"] = steps
    if restarts is not None:
        kwargs["restarts"] = restarts
    attack = build_attack(attack_name, norm, threat.eps, **kwargs)

    ds = ck.load_dataset("test", data_dir=data_dir)
    threat.check_shape(ds.shape)
    n = None if n_examples == 0 else n_examples
    sub = ds.subset(n, seed=seed)
    model = ck.model(device=dev)
    df, meta = evaluate(model, sub.images, sub.labels, attack, batch_size=batch_size, device=dev,
                        save_adv=save_adv is not None)
    df.insert(0, "attack", attack_name)
    df.insert(1, "norm", threat.norm)
    df.insert(2, "eps", threat.eps)
    adv = meta.pop("adv", None)
    meta.update({"checkpoint": str(path), "checkpoint_summary": ck.summary(), "dataset": ds.name, "split": "test",
                 "subset_seed": seed, "n_examples": len(sub), "seed": seed})

    prefix = Path(out) if out else path.with_name(f"{path.stem}_eval_{attack_name}")
    if prefix.suffix.lower() in (".csv", ".json"):
        prefix = prefix.with_suffix("")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = Path(str(prefix) + ".csv"), Path(str(prefix) + ".json")
    if save_adv is not None:
        idx = ds.subset_indices(n, seed=seed)
        atomic_save({"x_adv": adv["x_adv"], "y": adv["y"], "indices": idx, "robust": adv["robust"],
                     "clean_correct": adv["clean_correct"], "threat": threat.to_dict(), "attack": attack_name,
                     "checkpoint": str(path), "split": "test"}, save_adv)
        meta["save_adv"] = str(save_adv)
    write_results(df, meta, csv_path, json_path)

    click.echo(f"{ck.summary()}; {len(sub)} test images; attack {attack_name} under {threat}")
    echo_table(df[["stage", "accuracy", "correct", "n", "seconds"]])
    click.echo(f"robust accuracy {meta['robust_accuracy']:.4f} under {threat} in {meta['wall_seconds']:.1f}s; "
               f"wrote {csv_path} and {json_path}")
