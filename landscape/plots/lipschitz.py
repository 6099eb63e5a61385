"""Lipschitz figures: the estimates against the radius, one line per loss variant (log-log)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from matplotlib.ticker import FuncFormatter  # noqa: E402

from . import save_figure  # noqa: E402

PANELS = [("loss_lip", "|ΔL| / ‖Δθ‖"), ("grad_lip", "‖Δ∇L‖ / ‖Δθ‖ (δ recomputed)"),
          ("grad_lip_fixed", "‖Δ∇L‖ / ‖Δθ‖ (δ held)"), ("delta_l2", "mean ‖δ₁ − δ₂‖₂"),
          ("loc_change", "share of l0 locations changed")]


#: one look per loss variant: lines that coincide stay visible (different markers and dashes, the
#: later ones drawn smaller on top)
STYLES = [dict(marker="o", ls="-", ms=7), dict(marker="s", ls="--", ms=5.5), dict(marker="^", ls=":", ms=4.5),
          dict(marker="D", ls="-.", ms=3.5), dict(marker="v", ls=(0, (1, 1)), ms=3)]


def plot_lipschitz(df, path: str | Path | None = None, *, title: str = ""):
    """One panel per estimate (up to three a row) against the radius, one line per loss variant
    (hard/soft labels, CE/trade-off), averaged over directions; one legend for the figure, beside
    the panels, so it never covers a line."""
    panels = [(c, t) for c, t in PANELS if c in df and not df[c].isna().all()]
    n = len(panels)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols + 1.8, 2.9 * rows + 0.5), squeeze=False)
    g = df.groupby(["variant", "radius"], sort=False).mean(numeric_only=True).reset_index()
    variants = list(dict.fromkeys(g["variant"]))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (col, label) in zip(axes.flat, panels):
        for i, v in enumerate(variants):
            d = g[g["variant"] == v]
            y = d[col].to_numpy(float)
            st = STYLES[i % len(STYLES)]
            ax.plot(d["radius"], np.where(y > 0, y, np.nan) if col != "loc_change" else y, color=colors[i % len(colors)],
                    marker=st["marker"], ls=st["ls"], ms=st["ms"], lw=1.2, label=v, mfc="none" if i == 0 else None)
        ax.set_xscale("log")
        if col != "loc_change":
            ax.set_yscale("log")
            ax.set_ylabel("log scale", fontsize=7)
            vals = g[col].to_numpy(float)
            vals = vals[vals > 0]
            if len(vals) and vals.max() / vals.min() < 20:  # within about a decade: plain numbers
                plain = FuncFormatter(lambda v, _: f"{v:g}")
                ax.yaxis.set_major_formatter(plain)
                ax.yaxis.set_minor_formatter(plain)
        ax.set_xlabel("radius ‖θ₁ − θ₂‖ (log scale)", fontsize=8)
        ax.set_title(label, fontsize=8.5)
        ax.tick_params(labelsize=7, which="both")
        ax.grid(alpha=0.3, which="major")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
               title="loss variant", title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
