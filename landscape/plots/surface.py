"""Loss-surface figures: a contour map over a 3-D view per surface, panels side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..analysis.cragginess import format_cragginess  # noqa: E402


def plot_surfaces(panels: list[dict], path: str | Path | None = None, *, levels: int = 20):
    """``panels``: dicts with ``a``, ``b`` (1-D grids), ``z`` (array ``[i_a, i_b]``, or 1-D), ``title``
    and ``cragginess``. 2-D panels get a contour (top) and a 3-D surface (bottom); 1-D panels a line.
    Returns the figure; saves it to ``path`` if given."""
    k = len(panels)
    two_d = any(np.asarray(p["z"]).ndim == 2 and min(np.asarray(p["z"]).shape) > 1 for p in panels)
    fig = plt.figure(figsize=(4.6 * k, 8.4 if two_d else 3.8))
    for j, p in enumerate(panels):
        z = np.asarray(p["z"], dtype=float)
        title = p.get("title", "")
        xl, yl = ("v1 (Hessian)", "v2 (Hessian)") if p.get("directions") == "hessian" else ("d1", "d2")
        if p.get("cragginess"):
            title += "\n" + format_cragginess(p["cragginess"])
        if z.ndim == 2 and min(z.shape) > 1:
            A, B = np.meshgrid(p["a"], p["b"], indexing="ij")
            ax = fig.add_subplot(2, k, j + 1)
            cs = ax.contour(A, B, z, levels=levels, cmap="viridis")
            ax.clabel(cs, inline=True, fontsize=6, fmt="%.2g")
            ax.plot([0], [0], "r+")
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            ax.set_title(title, fontsize=8)
            ax3 = fig.add_subplot(2, k, k + j + 1, projection="3d")
            ax3.plot_surface(A, B, z, cmap="viridis", linewidth=0, antialiased=True)
            ax3.set_xlabel(xl)
            ax3.set_ylabel(yl)
            ax3.set_zlabel("loss")
        else:
            ax = fig.add_subplot(1, k, j + 1)
            ax.plot(p["a"], z.reshape(-1), "o-", ms=3)
            ax.set_xlabel(xl)
            ax.set_ylabel("loss")
            ax.set_title(title, fontsize=8)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Save atomically and close the figure (see :func:`landscape.plots.save_figure`)."""
    from . import save_figure as _save
    return _save(fig, path, dpi=120)
