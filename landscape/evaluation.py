"""Honest robust evaluation: clean accuracy, robust accuracy under an attack or a cascade, with every
adversarial example checked against its threat model before it is counted.

``evaluate(model, x, y, attack)`` returns a tidy table and metadata::

    >>> df, meta = evaluate(model, x, y, SparseAutoAttack(eps=20))
    >>> df
          stage  accuracy  correct     n  seconds
          clean     0.812      812  1000     0.41
           spgd     0.655      655  1000    41.2
    spgd-projected  0.651  ...
             rs     0.640  ...
     worst-case     0.640  ...

Rows: ``clean``; one row per stage of a cascade (the share of examples surviving the clean pass and
every stage up to that one), or one row named after a single attack; and ``worst-case`` (surviving
everything; equal to the last stage). ``x`` may be a float tensor in [0,1] (N,C,H,W) or an
:class:`~landscape.data.ImageDataset` (uint8; ``y`` is then ignored and may be None).
"""

from __future__ import annotations

import time

import pandas as pd
import torch

from .attacks.base import Attack, budget_text, model_mode
from .attacks.saa import Cascade
from .device import resolve_device
from .errors import LandscapeError
from .progress import bar, note


def _as_tensors(x, y):
    from .data import ImageDataset
    if isinstance(x, ImageDataset):
        return x.images, x.labels
    if y is None:
        raise LandscapeError("evaluate needs labels y when x is a tensor")
    if len(x) != len(y):
        raise LandscapeError(f"{len(x)} images but {len(y)} labels")
    return x, y


def _batch_floats(xb: torch.Tensor) -> torch.Tensor:
    return xb.float().div(255) if xb.dtype == torch.uint8 else xb.float()


def evaluate(model: torch.nn.Module, x, y, attack: Attack, *, batch_size: int = 256, device=None,
             save_adv: bool = False, progress: bool | None = None) -> tuple[pd.DataFrame, dict]:
    """Robust accuracy of ``model`` under ``attack`` (an :class:`Attack` or a :class:`Cascade`).

    Returns ``(df, meta)``. ``df`` has columns ``stage, accuracy, correct, n, seconds``. ``meta``
    ``device=None`` uses the model's device; otherwise the model is moved there. ``meta``
    holds the attack's configuration, threat model, counts and wall time; with ``save_adv=True`` it
    also holds ``meta["adv"] = {"x_adv", "y", "robust", "clean_correct"}`` (CPU tensors; pop it before
    writing the metadata as JSON). Every adversarial batch passes ``threat.assert_valid`` first: a
    result outside the threat model raises instead of being counted.
    """
    if batch_size < 1:
        raise LandscapeError(f"batch size must be positive, got {batch_size}")
    x, y = _as_tensors(x, y)
    n = len(y)
    if n == 0:
        raise LandscapeError("nothing to evaluate: the data set is empty")
    if device is None:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = resolve_device(device)
        model = model.to(dev)
    threat = attack.threat
    threat.check_shape(x.shape)
    cascade = isinstance(attack, Cascade)
    names = [nm for nm, _ in attack.stages] if cascade else [attack.name]
    correct = {"clean": 0, **{nm: 0 for nm in names}}
    seconds = {"clean": 0.0, **{nm: 0.0 for nm in names}}
    advs, robust_all, clean_all = [], [], []
    t_start = time.perf_counter()
    note(f"eval: {n} images, {budget_text(attack)}; batches of {batch_size} on {dev}", progress)
    pbar = bar(total=n, desc=f"eval {attack.name} {threat}", progress=progress, unit="img")
    try:
        for i in range(0, n, batch_size):
            xb = _batch_floats(x[i:i + batch_size].to(dev))
            yb = y[i:i + batch_size].to(dev)
            t0 = time.perf_counter()
            with torch.no_grad(), model_mode(model, "eval"):
                clean_ok = model(xb).argmax(1) == yb
            seconds["clean"] += time.perf_counter() - t0
            correct["clean"] += int(clean_ok.sum())
            if cascade:
                res = attack.run(model, xb, yb)
                x_adv = res.x_adv
                for nm, alive, sec in zip(res.stage_names, res.survivors, res.seconds):
                    correct[nm] += int(alive.sum())
                    seconds[nm] += sec
                robust = res.survivors[-1]
            else:
                t0 = time.perf_counter()
                x_adv = attack(model, xb, yb)
                seconds[names[0]] += time.perf_counter() - t0
            threat.assert_valid(xb, x_adv, what=f"{attack.name} adversarial examples")
            with torch.no_grad(), model_mode(model, "eval"):
                adv_ok = model(x_adv).argmax(1) == yb
            if cascade:
                # the cascade's survivors must agree with a fresh forward pass on what it returned
                robust = robust & adv_ok & clean_ok
            else:
                robust = adv_ok & clean_ok
                correct[names[0]] += int(robust.sum())
            if save_adv:
                advs.append(x_adv.detach().cpu())
                robust_all.append(robust.cpu())
                clean_all.append(clean_ok.cpu())
            pbar.set_postfix(clean=f"{correct['clean'] / min(n, i + batch_size):.3f}",
                             robust=f"{correct[names[-1]] / min(n, i + batch_size):.3f}")
            pbar.update(len(yb))
            if cascade:
                correct.setdefault("_worst", 0)
                correct["_worst"] += int(robust.sum())
    finally:
        pbar.close()
    wall = time.perf_counter() - t_start
    worst = correct.pop("_worst", correct[names[-1]])
    rows = [{"stage": "clean", "accuracy": correct["clean"] / n, "correct": correct["clean"], "n": n,
             "seconds": seconds["clean"]}]
    rows += [{"stage": nm, "accuracy": correct[nm] / n, "correct": correct[nm], "n": n, "seconds": seconds[nm]}
             for nm in names]
    rows.append({"stage": "worst-case", "accuracy": worst / n, "correct": worst, "n": n, "seconds": wall})
    df = pd.DataFrame(rows)
    meta = {"attack": attack.config(), "threat": threat.to_dict(), "threat_str": str(threat), "n": n,
            "batch_size": batch_size, "device": str(dev), "wall_seconds": wall,
            "clean_accuracy": correct["clean"] / n, "robust_accuracy": worst / n,
            "validity_checked": True}
    if save_adv:
        meta["adv"] = {"x_adv": torch.cat(advs), "y": y.cpu().clone(), "robust": torch.cat(robust_all),
                       "clean_correct": torch.cat(clean_all)}
    return df, meta


def robust_accuracy(model: torch.nn.Module, x, y, attack: Attack, batch_size: int = 256, device=None) -> float:
    """Worst-case robust accuracy (a float in [0,1]) of ``model`` under ``attack``; no progress bar.

    ``device`` defaults to the device of the model's first parameter.
    """
    df, _ = evaluate(model, x, y, attack, batch_size=batch_size, device=device, progress=False)
    return float(df.loc[df["stage"] == "worst-case", "accuracy"].iloc[0])


__all__ = ["evaluate", "robust_accuracy"]
