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


def plot_overlap(df, path: str | Path | None = None, *, title: str = ""):
    """Two histograms over images: the paper's overlap rate (share of the strong attack's pixels the
    training attack also perturbs, Fig. 2b) and the IoU, for all images and those where both succeed."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    bins = np.linspace(0, 1, 21)
    succ = [c for c in df.columns if c.startswith("success_")]
    for ax, col, xl in zip(axes, ("overlap_rate", "iou"),
                           ("overlap rate |S_train ∩ S_strong| / |S_strong|", "IoU of perturbed pixel sets")):
        if col not in df.columns:
            ax.set_visible(False)
            continue
        v = df[col].to_numpy(dtype=float)
        ax.hist(v[~np.isnan(v)], bins=bins, alpha=0.6, label="all")
        if len(succ) == 2:
            m = df[succ[0]].to_numpy(bool) & df[succ[1]].to_numpy(bool) & ~np.isnan(v)
            ax.hist(v[m], bins=bins, alpha=0.6, label="both succeed")
        ax.set_xlabel(xl, fontsize=8)
        ax.set_ylabel("images")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
