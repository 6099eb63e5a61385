"""Interpolation figures: accuracy (and loss) against α, with the strong attack as a dashed line."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import save_figure  # noqa: E402


def _curves(ax, alpha, pairs, xlabel: str, ylabel: str):
    """Plot each ``(values, marker, label)`` of ``pairs`` that is present against ``alpha``."""
    for values, marker, label in pairs:
        if values is not None:
            ax.plot(alpha, values, marker, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def plot_interp(df, path: str | Path | None = None, *, title: str = "", xlabel: str = "α"):
    """``df`` from :func:`landscape.analysis.interp.interpolate_perturbations` or ``interpolate_weights``."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    d = df[df["kind"] == "interp"] if "kind" in df else df
    _curves(ax1, d["alpha"], [(100 * d["acc"], "o-", "accuracy"),
                              (100 * d["adv_acc"] if "adv_acc" in d else None, "s-", "robust accuracy")],
            xlabel, "accuracy (%)")
    if "kind" in df and (df["kind"] == "strong").any():
        s = float(df[df["kind"] == "strong"]["acc"].iloc[0])
        ax1.axhline(100 * s, ls="--", c="k", label=f"strong attack {100 * s:.1f}%")
    ax1.legend(fontsize=7)
    _curves(ax2, d["alpha"], [(d["loss"], "o-", "loss"),
                              (d["adv_loss"] if "adv_loss" in d else None, "s-", "adversarial loss")],
            xlabel, "cross-entropy")
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_overlap(df, path: str | Path | None = None, *, title: str = "", first: str = "the training attack",
                 second: str = "the strong attack"):
    """Two histograms over images: the paper's overlap rate (share of the ``second`` attack's pixels
    the ``first`` also perturbs, Fig. 2b) and the IoU, for all images and those where both succeed,
    with their means. Each axis spans its values (not [0, 1]); the legend sits below the panels."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.0))
    succ = [c for c in df.columns if c.startswith("success_")]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = {}
    for ax, col, xl in zip(axes, ("overlap_rate", "iou"),
                           ("overlap rate |S₁ ∩ S₂| / |S₂|", "IoU |S₁ ∩ S₂| / |S₁ ∪ S₂|")):
        if col not in df.columns:
            ax.set_visible(False)
            continue
        v = df[col].to_numpy(dtype=float)
        ok = ~np.isnan(v)
        top = float(np.nanmax(v)) if ok.any() else 1.0
        hi = min(1.0, max(0.02, np.ceil(top * 1.05 * 50) / 50))
        bins = np.linspace(0, hi, 21)
        h = ax.hist(v[ok], bins=bins, alpha=0.55, color=colors[0])[2]
        handles.setdefault("all images", h[0] if len(h) else None)
        if ok.any():
            ax.axvline(float(np.mean(v[ok])), color=colors[0], ls="--", lw=1.2)
        if len(succ) == 2:
            m = df[succ[0]].to_numpy(bool) & df[succ[1]].to_numpy(bool) & ok
            h = ax.hist(v[m], bins=bins, alpha=0.75, color=colors[1])[2]
            handles.setdefault("both attacks succeed", h[0] if len(h) else None)
            if m.any():
                ax.axvline(float(np.mean(v[m])), color=colors[1], ls=":", lw=1.5)
        ax.set_xlim(0, hi)
        ax.set_xlabel(xl, fontsize=8)
        ax.set_ylabel("images")
    from matplotlib.lines import Line2D
    items = [(h, k) for k, h in handles.items() if h is not None]
    items.append((Line2D([], [], color="0.3", ls="--"), "mean (dashed: all, dotted: both succeed)"))
    fig.legend([h for h, _ in items], [k for _, k in items], loc="lower center", ncol=len(items), fontsize=7.5,
               frameon=False)
    fig.suptitle((title + "\n" if title else "") + f"S₁: pixels perturbed by {first}; S₂: by {second}", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    if path is not None:
        save_figure(fig, path)
    return fig
