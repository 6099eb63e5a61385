"""Figures of Hessian spectra: top eigenvalues side by side, and SLQ spectral densities.

``plot_spectra`` draws the paper's panel: several checkpoints (l0 against l1/l2/l∞, or one norm
across budgets) in one figure, the top-k eigenvalues against their rank on the left and the largest
eigenvalue (with the Hutchinson trace when measured) per checkpoint on the right.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path) -> Path:
    from . import save_figure
    return save_figure(fig, path, dpi=150)


def plot_spectra(df, path, *, traces: dict | None = None, title: str | None = None) -> Path:
    """Top eigenvalues per label (``df`` columns: label, rank, eigenvalue[, converged]).

    With several labels a right panel compares their largest eigenvalues (with the Hutchinson trace
    from ``traces``, ``label -> (trace, stderr)``, when measured); with one label λ_max and the trace
    go into the legend instead. Ranks are whole numbers; a log eigenvalue axis says so.
    """
    from matplotlib.ticker import MaxNLocator
    labels = list(dict.fromkeys(df["label"]))
    several = len(labels) > 1
    if several:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 3.6 + 0.25 * len(labels)),
                                       gridspec_kw={"width_ratios": [1.6, 1]})
    else:
        fig, ax1 = plt.subplots(figsize=(6.2, 4.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    positive = bool((df["eigenvalue"] > 0).all())
    tops = [float(df[df["label"] == lab]["eigenvalue"].max()) for lab in labels]
    unconverged = False
    for i, lab in enumerate(labels):
        d = df[df["label"] == lab].sort_values("rank")
        c = colors[i % len(colors)]
        text = lab
        if not several:
            text += f"\n$\\lambda_{{\\max}}$ = {tops[i]:.3g}"
            if traces and traces.get(lab) is not None:
                text += f", trace {traces[lab][0]:.3g} ± {traces[lab][1]:.2g}"
        ax1.plot(d["rank"], d["eigenvalue"], "o-", ms=3.5, lw=1.2, color=c, label=text)
        if "converged" in d and not d["converged"].all():
            bad = d[~d["converged"].astype(bool)]
            ax1.plot(bad["rank"], bad["eigenvalue"], "x", color="k", ms=6)
            unconverged = True
    if unconverged:
        ax1.plot([], [], "x", color="k", label="not converged")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    if positive:
        from matplotlib.ticker import FuncFormatter, NullFormatter
        ax1.set_yscale("log")
        ax1.set_ylabel("Hessian eigenvalue (log scale)")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax1.yaxis.set_major_formatter(plain)
        lo, hi = float(df["eigenvalue"].min()), float(df["eigenvalue"].max())
        # within about a decade the minor ticks (2, 3, ... x 10^k) carry the only readable labels
        ax1.yaxis.set_minor_formatter(plain if hi / lo < 20 else NullFormatter())
    else:
        ax1.set_ylabel("Hessian eigenvalue")
    ax1.set_xlabel("rank (1 = largest)")
    ax1.grid(alpha=0.3, which="both")
    if several:
        ax1.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16))
        x = np.arange(len(labels))
        ax2.bar(x, tops, color=[colors[i % len(colors)] for i in range(len(labels))])
        for i, lab in enumerate(labels):
            text = f"{tops[i]:.3g}"
            if traces and lab in traces and traces[lab] is not None:
                tr, se = traces[lab]
                text += f"\ntr {tr:.3g}±{se:.2g}"
            ax2.annotate(text, (i, tops[i]), ha="center", va="bottom", fontsize=7)
        ax2.set_xticks(x)
        ax2.set_xticklabels([lab.split(" · ")[0] for lab in labels], rotation=30, ha="right", fontsize=7)
        ax2.set_ylabel(r"largest eigenvalue $\lambda_{\max}$")
        ax2.margins(y=0.2)
    else:
        ax1.legend(fontsize=8, frameon=False, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_density(curves, path, *, title: str | None = None, floor: float = 1e-10) -> Path:
    """Spectral densities, ``curves`` a list of ``(label, grid, density)``, on a log density axis."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for lab, grid, dens in curves:
        ax.semilogy(grid, np.maximum(np.asarray(dens), floor), lw=1.2, label=lab)
    ax.set_xlabel("Hessian eigenvalue")
    ax.set_ylabel("spectral density (SLQ, log scale)")
    ax.grid(alpha=0.3, which="both")
    if len(curves) > 1 or curves and curves[0][0]:
        ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["plot_density", "plot_spectra"]
