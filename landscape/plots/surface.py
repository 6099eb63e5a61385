"""Loss-surface figures: a contour map over a 3-D view per surface, panels side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def cragginess_words(c: dict) -> str:
    """The cragginess numbers in words, for figure titles."""
    m = int(c.get("local_minima", 0))
    minima = f"{m} local minim{'um' if m == 1 else 'a'}"
    if "jump_ratio" in c:
        return (f"cragginess: jump ratio {c['jump_ratio']:.3g}, {100 * c['jump_fraction']:.2g}% of steps are jumps, "
                f"{minima}")
    return (f"cragginess: mean |second difference| {c['second_diff']:.3g}, total variation "
            f"{c['total_variation']:.3g}, {minima}")


def _wrap(text: str, width: int = 58) -> str:
    """Wrap each line of a panel title so that neighbouring panels' titles never run into each other."""
    import textwrap
    return "\n".join(textwrap.fill(line, width) if line else line for line in text.split("\n"))


def _title(p: dict) -> str:
    title = p.get("title", "")
    if p.get("cragginess"):
        title += "\n" + cragginess_words(p["cragginess"])
    return _wrap(title)


def shared_limits(panels: list[dict]) -> tuple[float, float] | None:
    """The smallest and largest finite loss over every panel (None if there is none), widened where
    they are equal, so that a constant surface still gets a scale."""
    finite = [z[np.isfinite(z)] for z in (np.asarray(p["z"], dtype=float).ravel() for p in panels)]
    finite = np.concatenate(finite) if finite else np.empty(0)
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        pad = max(abs(lo) * 1e-3, 1e-6)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def plot_surfaces(panels: list[dict], path: str | Path | None = None, *, levels: int = 20,
                  shared_scale: bool = False):
    """``panels``: dicts with ``a``, ``b`` (1-D grids), ``z`` (array ``[i_a, i_b]``, or 1-D), ``title``
    (words: model, loss, attack and budget; may hold line breaks), ``cragginess`` and ``directions``.

    2-D panels get a filled contour map with its colour bar (loss) above a 3-D view of the same
    grid; 1-D panels a line. The trained weights sit at the origin (marked). ``shared_scale``: one
    loss scale for every panel (the same contour levels, colours, 3-D z-axis and, for lines, y-axis),
    so that models side by side compare at a glance; otherwise each panel spans its own values.
    Returns the figure; saves it to ``path`` if given."""
    lim = shared_limits(panels) if shared_scale else None
    if lim is not None:      # round levels that cover every panel's values
        levels = MaxNLocator(nbins=int(levels)).tick_values(*lim)
    k = len(panels)
    two_d = any(np.asarray(p["z"]).ndim == 2 and min(np.asarray(p["z"]).shape) > 1 for p in panels)
    n_title = max((_title(p).count("\n") + 1 for p in panels), default=1)
    fig = plt.figure(figsize=(5.0 * k, (8.2 if two_d else 3.6) + 0.16 * n_title))
    for j, p in enumerate(panels):
        z = np.asarray(p["z"], dtype=float)
        title = _title(p)
        hess = p.get("directions") == "hessian"
        xl, yl = ("top Hessian eigenvector v1", "second eigenvector v2") if hess else ("direction 1", "direction 2")
        if z.ndim == 2 and min(z.shape) > 1:
            A, B = np.meshgrid(p["a"], p["b"], indexing="ij")
            ax = fig.add_subplot(2, k, j + 1)
            filled = ax.contourf(A, B, z, levels=levels, cmap="viridis")
            ax.contour(A, B, z, levels=filled.levels, colors="k", linewidths=0.3, alpha=0.5)
            bar = fig.colorbar(filled, ax=ax, fraction=0.046, pad=0.03)
            bar.set_label("loss")
            ax.plot([0], [0], marker="+", color="r", ms=9, mew=1.5, ls="none")
            ax.set_xlabel(f"{xl} (red + : the trained weights)", fontsize=8.5)
            ax.set_ylabel(yl, fontsize=8.5)
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(MaxNLocator(5))
            ax.set_aspect("equal", adjustable="box")
            ax.set_title(title, fontsize=8.5)
            ax3 = fig.add_subplot(2, k, k + j + 1, projection="3d")
            span = {} if lim is None else {"vmin": lim[0], "vmax": lim[1]}
            ax3.plot_surface(A, B, z, cmap="viridis", linewidth=0, antialiased=True, **span)
            if lim is not None:
                ax3.set_zlim(*lim)
            ax3.set_xlabel(xl.split(" (")[0], fontsize=7)
            ax3.set_ylabel(yl, fontsize=7)
            ax3.set_zlabel("loss", fontsize=8)
            ax3.tick_params(labelsize=7)
            for axis in (ax3.xaxis, ax3.yaxis, ax3.zaxis):
                axis.set_major_locator(MaxNLocator(5))
        else:
            ax = fig.add_subplot(1, k, j + 1)
            ax.plot(p["a"], z.reshape(-1), "o-", ms=3)
            ax.axvline(0, color="r", lw=0.8, ls=":", label="trained weights")
            ax.legend(fontsize=7, frameon=False)
            ax.set_xlabel(f"{xl} (coefficient)")
            ax.set_ylabel("loss")
            if lim is not None:
                pad = 0.05 * (lim[1] - lim[0])
                ax.set_ylim(lim[0] - pad, lim[1] + pad)
            ax.set_title(title, fontsize=8.5)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Save atomically and close the figure (see :func:`landscape.plots.save_figure`)."""
    from . import save_figure as _save
    return _save(fig, path, dpi=120)
