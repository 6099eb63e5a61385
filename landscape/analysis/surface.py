"""Loss surfaces on a plane (or line) through the weights, chunked, resumable and rank-parallel.

``compute_surface(objective, [d1, d2], a_values, b_values)`` evaluates ``objective`` at
``θ₀ + a·d1 + b·d2`` for every grid point and returns a tidy DataFrame (``a, b, loss, acc``) and
metadata that carries the cragginess numbers of the surface and of its 1-D slices through the centre
(``b = 0`` along d1 and ``a = 0`` along d2, when those lines are on the grid).

Resuming: with ``partial=PATH`` the finished points are written to ``PATH`` (JSON, atomically) after
every chunk of ``chunk_size`` points, together with a key of the configuration (``config``: anything
that changes the values — weights, directions, grid, loss mode, attack, examples, seed). Rerunning with
the same configuration skips the finished points; a partial file of a different configuration is
not mixed in: it is reported and the run starts over. Every grid point runs its attack with the
**same** ``seed`` (torch's generator and the attack's own are seeded identically at every point), so
neighbouring points differ because the weights differ, not because of the attack's noise, and a
resumed grid equals an uninterrupted one exactly.

Batches of points: with ``points_per_batch = P > 1`` the points are evaluated ``P`` at a time with
stacked weights (:mod:`landscape.analysis.batched`); the values equal the one-at-a-time ones.

Ranks: with ``world > 1`` (e.g. under ``torchrun``) rank ``r`` evaluates the points ``i ≡ r (mod
world)`` into its own partial file; when ``torch.distributed`` is initialised rank 0 gathers all
points (``gather_object``, gloo on the CPU) and returns the full grid, the other ranks return ``None``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .. import progress as _progress
from ..distributed import rank_world
from ..errors import LandscapeError
from ..partial import config_key, tensor_digest  # noqa: F401  (tensor_digest: also imported from here)
from .cragginess import cragginess
from .objective import LossObjective, plane_offset


def rank_partial_path(partial: str | Path, rank: int, world: int) -> Path:
    partial = Path(partial)
    return partial if world <= 1 else partial.with_name(f"{partial.name}.rank{rank}")


def _load_partial(path: Path, key: str) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        print(f"landscape: warning: ignoring unreadable partial results {path}", file=sys.stderr)
        return {}
    if data.get("key") != key:
        print(f"landscape: warning: {path} holds partial results of a different configuration; "
              "starting over (it will be replaced)", file=sys.stderr)
        return {}
    return {int(i): tuple(v) for i, v in data.get("points", {}).items()}


def _save_partial(path: Path, key: str, config: Mapping, points: dict) -> None:
    from ..checkpoint import atomic_write_text
    atomic_write_text(path, json.dumps({"key": key, "config": dict(config),
                                        "points": {str(i): list(v) for i, v in sorted(points.items())}},
                                       default=str))


def compute_surface(objective: LossObjective, directions: Sequence[Mapping[str, torch.Tensor]],
                    a_values: Sequence[float], b_values: Sequence[float] | None = None, *,
                    chunk_size: int | None = None, partial: str | Path | None = None,
                    config: Mapping | None = None, seed: int = 0, rank: int | None = None,
                    world: int | None = None, progress: bool | None = None, max_chunks: int | None = None,
                    on_chunk: Callable[[int], None] | None = None, keep_partial: bool = False,
                    points_per_batch: int = 1):
    """Evaluate the loss on the grid ``a_values × b_values`` along ``directions`` (see module doc).

    Returns ``(df, meta)``; ``meta["complete"]`` is False when ``max_chunks`` stopped the run early
    (then ``df`` holds the finished points only). On a non-zero rank of an initialised process group,
    returns ``(None, meta)`` once its points are sent to rank 0.
    """
    if len(directions) not in (1, 2):
        raise LandscapeError("a surface needs one or two directions")
    d1 = directions[0]
    d2 = directions[1] if len(directions) == 2 else None
    a_values = [float(v) for v in a_values]
    b_values = [0.0] if d2 is None else [float(v) for v in (b_values if b_values is not None else a_values)]
    if not a_values or not b_values:
        raise LandscapeError("the surface grid is empty")
    dr, dw = rank_world()
    rank = dr if rank is None else rank
    world = dw if world is None else world
    na, nb = len(a_values), len(b_values)
    total = na * nb
    chunk_size = int(chunk_size or nb)
    if chunk_size < 1:
        raise LandscapeError("chunk size must be positive")
    cfg = dict(config or {})
    cfg.update({"a": a_values, "b": b_values, "seed": seed, "objective": objective.describe(),
                "directions": [tensor_digest(d) for d in directions], "world": world})
    key = config_key(cfg)
    ppath = rank_partial_path(partial, rank, world) if partial else None
    points = _load_partial(ppath, key) if ppath else {}
    mine = [i for i in range(total) if i % world == rank]
    todo = [i for i in mine if i not in points]
    t0 = time.perf_counter()
    if objective.mode == "fixed":  # the held perturbations come from one seed, whatever resumes
        objective.seed = int(seed)
        objective.fixed_perturbations()
    bar = _progress.bar(total=len(mine), initial=len(mine) - len(todo), desc="surface", progress=progress, unit="pt")
    try:
        def save(chunks_done: int) -> None:
            if ppath:
                _save_partial(ppath, key, cfg, points)
            if on_chunk is not None:
                on_chunk(chunks_done)

        def plane(i: int) -> dict:
            return plane_offset(d1, d2, a_values[i // nb], b_values[i % nb])
        _evaluate_chunks(objective, plane, todo, points, chunk_size=chunk_size, seed=seed, max_chunks=max_chunks,
                         points_per_batch=points_per_batch, on_point=bar.update, on_chunk=save)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    gathered, mine_done, points = _gather(points, mine, rank, world)
    if points is None:
        return None, {"complete": mine_done, "rank": rank, "world": world}
    complete = mine_done and gathered and len(points) == total

    rows = [{"a": a_values[i // nb], "b": b_values[i % nb], "loss": v[0], "acc": v[1]} for i, v in sorted(points.items())]
    df = pd.DataFrame(rows, columns=["a", "b", "loss", "acc"])
    meta = {"complete": complete, "points": total, "points_done": len(points), "grid": [na, nb],
            "a_values": a_values, "b_values": b_values, "dims": 1 if d2 is None else 2,
            "objective": objective.describe(), "seed": seed, "world": world, "config_key": key,
            "seconds": elapsed, "points_evaluated": sum(1 for i in todo if i in points)}
    meta["points_per_second"] = meta["points_evaluated"] / elapsed if meta["points_evaluated"] and elapsed > 0 else None
    if complete:
        meta.update(surface_summary(df, a_values, b_values))
        if ppath and not keep_partial:
            ppath.unlink(missing_ok=True)
    return df, meta


def _evaluate_chunks(objective: LossObjective, plane: Callable[[int], dict], todo: list[int], points: dict, *,
                     chunk_size: int, seed: int, max_chunks: int | None, points_per_batch: int,
                     on_point: Callable[[int], object], on_chunk: Callable[[int], None]) -> None:
    """Evaluate the grid points ``todo`` into ``points`` (index -> (loss, acc)), ``chunk_size`` at a
    time (each chunk reseeds the attack, then ``on_chunk(chunks done)`` saves), ``points_per_batch``
    points per forward pass; stops after ``max_chunks`` chunks."""
    per = max(1, int(points_per_batch))
    for chunks_done, start in enumerate(range(0, len(todo), chunk_size)):
        if max_chunks is not None and chunks_done >= max_chunks:
            break
        block = todo[start:start + chunk_size]
        objective.seed = int(seed)
        for s in range(0, len(block), per):
            group = block[s:s + per]
            offsets = [plane(i) for i in group]
            if len(group) == 1:
                values = [objective.evaluate(offsets[0])]
            else:
                from .batched import evaluate_points
                values = evaluate_points(objective, offsets)
            points.update(zip(group, values))
            on_point(len(group))
        on_chunk(chunks_done + 1)


def _gather(points: dict, mine: list[int], rank: int, world: int) -> tuple[bool, bool, dict | None]:
    """``(gathered, all done, points)``: under an initialised process group every rank sends its
    points to rank 0 (the others get None); alone, this rank's own."""
    mine_done = all(i in points for i in mine)
    if not (world > 1 and rank_world()[1] > 1):
        return world <= 1, mine_done, points
    import torch.distributed as dist
    flags = [None] * world if rank == 0 else None
    dist.gather_object((mine_done, {i: points[i] for i in mine if i in points}), flags, dst=0)
    if rank != 0:
        return False, mine_done, None
    merged = {}
    for f in flags:
        merged.update(f[1])
    return True, all(f[0] for f in flags), merged


def grid_array(df: pd.DataFrame, a_values, b_values, column: str = "loss") -> np.ndarray:
    """The ``column`` of a surface table as an array indexed ``[i_a, i_b]``."""
    z = np.full((len(a_values), len(b_values)), np.nan)
    ai = {round(float(v), 12): i for i, v in enumerate(a_values)}
    bi = {round(float(v), 12): j for j, v in enumerate(b_values)}
    for a, b, v in zip(df["a"], df["b"], df[column]):
        z[ai[round(float(a), 12)], bi[round(float(b), 12)]] = v
    return z


def surface_summary(df: pd.DataFrame, a_values, b_values) -> dict:
    """Cragginess of the surface and of its slices through the centre, and the centre's loss."""
    z = grid_array(df, a_values, b_values)
    out = {"cragginess": cragginess(z if len(b_values) > 1 else z[:, 0])}
    a0 = [j for j, v in enumerate(a_values) if abs(v) < 1e-12]
    b0 = [j for j, v in enumerate(b_values) if abs(v) < 1e-12]
    slices = {}
    if b0 and len(a_values) >= 3:
        slices["d1"] = cragginess(z[:, b0[0]])
    if a0 and len(b_values) >= 3:
        slices["d2"] = cragginess(z[a0[0], :])
    out["slice_cragginess"] = slices
    if a0 and b0:
        acc = grid_array(df, a_values, b_values, "acc")
        out["center"] = {"loss": float(z[a0[0], b0[0]]), "acc": float(acc[a0[0], b0[0]])}
    out["loss_min"] = float(np.nanmin(z))
    out["loss_max"] = float(np.nanmax(z))
    return out
