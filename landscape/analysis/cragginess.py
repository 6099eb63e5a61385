"""Cragginess numbers for loss surfaces and 1-D slices, so that landscapes compare as numbers.

For values ``L`` on a regular grid (1-D, or 2-D indexed ``[i_a, i_b]``) with range
``R = max L - min L`` (finite values only):

* ``second_diff``: mean over grid lines (both axes for 2-D) of ``|L[i+1] - 2 L[i] + L[i-1]|``,
  divided by ``R``. A plane gives 0 and the parabola ``t²`` sampled at N points of [-1, 1] gives ``8/(N-1)²``
  (small, shrinking with the resolution); a craggy surface gives values of order 0.1–1.
* ``total_variation``: mean over grid lines of ``Σ|L[i+1] - L[i]|`` divided by ``R``. A monotone line
  gives at most 1 and a bowl at most 2; every extra wiggle adds about twice its relative height.
* ``local_minima``: the number of strict local minima (neighbours along the grid axes), 1 for a bowl.
* ``range``: ``R`` itself, in loss units.

Normalising by the range makes the numbers independent of the loss scale, so an l0 surface can be
compared with an l∞ one even when their losses differ by an order of magnitude. But a range-normalised
mean cannot tell craggy from smooth: the range of a bowl swamps the few local jumps that make a
surface craggy. Two statistics look at the jumps themselves (``D2`` the set of ``|L[i+1] - 2 L[i] +
L[i-1]|`` over all grid lines, ``D1`` the set of first differences ``|L[i+1] - L[i]|``):

* ``jump_ratio = max D2 / median D2`` (the median floored at ``1e-9·R`` so that a flat surface gives
  a finite number). A sampled quadratic bowl gives exactly 1, any smooth bowl stays of order 1 to 10
  (the ratio of its largest to its typical curvature); one step of height ``s`` gives about
  ``s / median D2``, i.e. hundreds on a fine grid.
* ``jump_fraction``: the share of first differences larger than ``k = 4`` times the median of the
  first differences in a window of 7 steps centred on them along the same grid line, and larger than
  ``1e-3·R`` (so that round-off at a flat bottom does not count). A smooth surface gives 0; every
  step crossed by a grid line adds one.

Both are scale-free and see jumps the range-normalised mean averages away (tests on synthetic bowls
with and without steps: ``tests/analysis/test_surface.py``).
"""

from __future__ import annotations

import numpy as np


def _lines(z: np.ndarray) -> list[np.ndarray]:
    if z.ndim == 1:
        return [z]
    return [z[i, :] for i in range(z.shape[0])] + [z[:, j] for j in range(z.shape[1])]


def cragginess(values) -> dict:
    """Cragginess numbers (see the module docstring) for a 1-D or 2-D grid of losses."""
    z = np.asarray(values, dtype=np.float64)
    if z.ndim not in (1, 2):
        raise ValueError("cragginess needs a 1-D or 2-D grid")
    z = np.squeeze(z) if z.ndim == 2 and 1 in z.shape else z
    finite = z[np.isfinite(z)]
    rng = float(finite.max() - finite.min()) if finite.size else float("nan")
    denom = rng if rng and rng > 0 else 1.0
    sd, tv = [], []
    for line in _lines(z):
        if line.size >= 3:
            sd.append(np.abs(np.diff(line, n=2)))
        if line.size >= 2:
            tv.append(np.abs(np.diff(line)).sum())
    second = float(np.nanmean(np.concatenate(sd)) / denom) if sd else float("nan")
    total = float(np.nanmean(tv) / denom) if tv else float("nan")
    return {"second_diff": second, "total_variation": total, "local_minima": int(local_minima(z)),
            "range": rng, "jump_ratio": jump_ratio(z), "jump_fraction": jump_fraction(z)}


def jump_ratio(values) -> float:
    """``max |Δ²L| / median |Δ²L|`` over every grid line (see the module docstring)."""
    z = np.asarray(values, dtype=np.float64)
    d2 = [np.abs(np.diff(line, n=2)) for line in _lines(z) if line.size >= 3]
    if not d2:
        return float("nan")
    d2 = np.concatenate(d2)
    d2 = d2[np.isfinite(d2)]
    if not d2.size:
        return float("nan")
    finite = z[np.isfinite(z)]
    rng = float(finite.max() - finite.min())
    floor = max(1e-9 * rng, 1e-300)
    return float(d2.max() / max(float(np.median(d2)), floor))


def jump_fraction(values, k: float = 4.0, window: int = 7, rel_floor: float = 1e-3) -> float:
    """Share of grid steps whose |ΔL| exceeds ``k`` times the median |ΔL| of the ``window`` steps
    centred on it (same grid line) and ``rel_floor`` times the range (see the module docstring)."""
    z = np.asarray(values, dtype=np.float64)
    finite = z[np.isfinite(z)]
    if finite.size < 2:
        return float("nan")
    rng = float(finite.max() - finite.min())
    half = window // 2
    jumps, steps = 0, 0
    for line in _lines(z):
        d = np.abs(np.diff(line))
        for i in range(d.size):
            if not np.isfinite(d[i]):
                continue
            lo, hi = max(0, i - half), min(d.size, i + half + 1)
            local = d[lo:hi]
            local = local[np.isfinite(local)]
            steps += 1
            if d[i] > k * float(np.median(local)) and d[i] > rel_floor * rng:
                jumps += 1
    return float(jumps / steps) if steps else float("nan")


def local_minima(z: np.ndarray) -> int:
    """Strict local minima of a 1-D or 2-D grid (axis neighbours; edges compare to the neighbours they have)."""
    z = np.asarray(z, dtype=np.float64)
    pad = np.pad(z, 1, mode="constant", constant_values=np.inf)
    if z.ndim == 1:
        core = pad[1:-1]
        return int(np.sum((core < pad[:-2]) & (core < pad[2:])))
    core = pad[1:-1, 1:-1]
    m = (core < pad[:-2, 1:-1]) & (core < pad[2:, 1:-1]) & (core < pad[1:-1, :-2]) & (core < pad[1:-1, 2:])
    return int(m.sum())


def format_cragginess(c: dict) -> str:
    """A short label for figure titles: ``craggy 0.123 · TV 2.34``."""
    if "jump_ratio" in c:
        return (f"jump ratio {c['jump_ratio']:.3g} · jumps {100 * c['jump_fraction']:.2g}% · "
                f"minima {c['local_minima']}")
    return f"Δ² {c['second_diff']:.3g} · TV {c['total_variation']:.3g} · minima {c['local_minima']}"
