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

Resuming: with ``partial=FOLDER`` every finished batch is saved into ``FOLDER`` (one file per batch,
written atomically, beside a key of everything that changes the numbers: the model's weights, the
images and labels, the attack's configuration, the threat model, the batch size and the device).
Run again with the same arguments, the evaluation reads the finished batches back, restores torch's
generator as it was after the last of them, and goes on from the next one, so an interrupted
evaluation ends with the same table (seconds aside) and the same adversarial examples as an
uninterrupted one. A folder with another key is not mixed in: it is reported and replaced. The
folder is removed when the evaluation completes.
"""

from __future__ import annotations

import time

import pandas as pd
import torch

from .attacks.base import Attack, attack_batches, budget_text, model_mode
from .attacks.saa import Cascade
from .device import resolve_device
from .errors import LandscapeError
from .partial import BatchStore, digest, model_digest, rng_state, set_rng_state
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


def _resolve_device(model: torch.nn.Module, device):
    """``(model, device)``: the model's own device when ``device`` is None, else the model moved there."""
    if device is None:
        p = next(model.parameters(), None)
        return model, (p.device if p is not None else torch.device("cpu"))
    dev = resolve_device(device)
    return model.to(dev), dev


class _Tally:
    """Counts and seconds per stage, and the per-example results kept for ``save_adv``, summed over
    per-batch records (:func:`_record`), whether computed now or read back from a partial folder."""

    def __init__(self, names: list[str], save_adv: bool):
        self.names = names
        self.correct = {"clean": 0, **{nm: 0 for nm in names}}
        self.seconds = {"clean": 0.0, **{nm: 0.0 for nm in names}}
        self.worst = 0
        self.seen = 0
        self.save_adv = save_adv
        self.advs, self.robust, self.clean = [], [], []

    def add(self, rec: dict) -> None:
        for nm in ("clean", *self.names):
            self.correct[nm] += rec["correct"][nm]
            self.seconds[nm] += rec["seconds"][nm]
        self.worst += int(rec["robust"].sum())
        self.seen += rec["n"]
        if self.save_adv:
            self.advs.append(rec["x_adv"])
            self.robust.append(rec["robust"])
            self.clean.append(rec["clean_ok"])

    def rows(self, n: int, wall: float) -> list[dict]:
        c, sec = self.correct, self.seconds
        rows = [{"stage": nm, "accuracy": c[nm] / n, "correct": c[nm], "n": n, "seconds": sec[nm]}
                for nm in ["clean", *self.names]]
        rows.append({"stage": "worst-case", "accuracy": self.worst / n, "correct": self.worst, "n": n,
                     "seconds": wall})
        return rows


def _record(batch, clean_ok: torch.Tensor, clean_seconds: float, adv_ok: torch.Tensor, names: list[str],
            cascade: bool, save_adv: bool) -> dict:
    """One batch's results: the examples surviving each stage, their seconds and (``save_adv``) the
    adversarial examples, on the CPU."""
    if cascade:
        res = batch.result
        correct = {nm: int(alive.sum()) for nm, alive in zip(res.stage_names, res.survivors)}
        seconds = dict(zip(res.stage_names, (float(t) for t in res.seconds)))
        # the cascade's survivors must agree with a fresh forward pass on what it returned
        robust = res.survivors[-1] & adv_ok & clean_ok
    else:
        robust = adv_ok & clean_ok
        correct, seconds = {names[0]: int(robust.sum())}, {names[0]: float(batch.seconds)}
    return {"start": int(batch.start), "n": len(batch.y), "correct": {"clean": int(clean_ok.sum()), **correct},
            "seconds": {"clean": float(clean_seconds), **seconds}, "robust": robust.cpu(),
            "clean_ok": clean_ok.cpu(), "x_adv": batch.x_adv.detach().cpu() if save_adv else None}


def _clean_correct(model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), model_mode(model, "eval"):
        return model(xb).argmax(1) == yb


def evaluate(model: torch.nn.Module, x, y, attack: Attack, *, batch_size: int = 256, device=None,
             save_adv: bool = False, progress: bool | None = None, partial=None,
             config: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Robust accuracy of ``model`` under ``attack`` (an :class:`Attack` or a :class:`Cascade`).

    Returns ``(df, meta)``. ``df`` has columns ``stage, accuracy, correct, n, seconds``.
    ``device=None`` uses the model's device; otherwise the model is moved there. ``meta``
    holds the attack's configuration, threat model, counts and wall time; with ``save_adv=True`` it
    also holds ``meta["adv"] = {"x_adv", "y", "robust", "clean_correct"}`` (CPU tensors; pop it before
    writing the metadata as JSON). Every adversarial batch passes ``threat.assert_valid`` first: a
    result outside the threat model raises instead of being counted.

    ``partial``: a folder for the finished batches, so that an interrupted evaluation resumes (see
    the module docstring); ``config`` adds the caller's own description to its key (e.g. the
    checkpoint's path). ``meta["resumed_examples"]`` counts the examples read back.
    """
    if batch_size < 1:
        raise LandscapeError(f"`batch_size` must be positive, got {batch_size}")
    x, y = _as_tensors(x, y)
    n = len(y)
    if n == 0:
        raise LandscapeError("nothing to evaluate: the data set is empty")
    model, dev = _resolve_device(model, device)
    threat = attack.threat
    threat.check_shape(x.shape)
    cascade = isinstance(attack, Cascade)
    names = [nm for nm, _ in attack.stages] if cascade else [attack.name]
    tally = _Tally(names, save_adv)
    t_start = time.perf_counter()
    store, wall_before = None, 0.0
    if partial is not None:
        store = BatchStore(partial, {"config": dict(config or {}), "attack": attack.config(), "threat": threat.to_dict(),
                                     "n": n, "batch_size": int(batch_size), "device": str(dev), "save_adv": bool(save_adv),
                                     "weights": model_digest(model), "images": digest(x), "labels": digest(y)},
                           what="evaluation")
        for rec in store.load():
            tally.add(rec)
            wall_before = rec["wall"]
        if tally.seen:
            set_rng_state(rec["rng"], dev)
    resumed = tally.seen
    note(f"eval: {n} images, {budget_text(attack)}; batches of {batch_size} on {dev}"
         + (f"; {resumed} done in an earlier run, read back from {partial}" if resumed else ""), progress)
    pbar = bar(total=n, initial=resumed, desc=f"eval {attack.name} {threat}", progress=progress, unit="img")
    try:
        for b in attack_batches(attack, model, x, y, batch_size, run=attack.run if cascade else None,
                                prepare=lambda xb, yb: (_batch_floats(xb.to(dev)), yb.to(dev)),
                                what=f"{attack.name} adversarial examples", start=resumed):
            t0 = time.perf_counter()
            clean_ok = _clean_correct(model, b.x, b.y)
            rec = _record(b, clean_ok, time.perf_counter() - t0, _clean_correct(model, b.x_adv, b.y), names,
                          cascade, save_adv)
            tally.add(rec)
            if store is not None:
                store.save({**rec, "rng": rng_state(dev), "wall": wall_before + time.perf_counter() - t_start})
            pbar.set_postfix(clean=f"{tally.correct['clean'] / tally.seen:.3f}",
                             robust=f"{tally.correct[tally.names[-1]] / tally.seen:.3f}")
            pbar.update(len(b.y))
    finally:
        pbar.close()
    wall = wall_before + time.perf_counter() - t_start
    if store is not None:
        store.remove()
    meta = {"attack": attack.config(), "threat": threat.to_dict(), "threat_str": str(threat), "n": n,
            "batch_size": batch_size, "device": str(dev), "wall_seconds": wall,
            "clean_accuracy": tally.correct["clean"] / n, "robust_accuracy": tally.worst / n,
            "validity_checked": True, "resumed_examples": resumed}
    if save_adv:
        meta["adv"] = {"x_adv": torch.cat(tally.advs), "y": y.cpu().clone(), "robust": torch.cat(tally.robust),
                       "clean_correct": torch.cat(tally.clean)}
    return pd.DataFrame(tally.rows(n, wall)), meta


def robust_accuracy(model: torch.nn.Module, x, y, attack: Attack, batch_size: int = 256, device=None,
                    partial=None) -> float:
    """Worst-case robust accuracy (a float in [0,1]) of ``model`` under ``attack``; no progress bar.

    ``device`` defaults to the device of the model's first parameter; ``partial`` as in :func:`evaluate`.
    """
    df, _ = evaluate(model, x, y, attack, batch_size=batch_size, device=device, progress=False, partial=partial)
    return float(df.loc[df["stage"] == "worst-case", "accuracy"].iloc[0])


__all__ = ["evaluate", "robust_accuracy"]
