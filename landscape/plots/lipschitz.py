"""Lipschitz figures: the estimates against the radius, one line per loss variant (log-log)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import save_figure  # noqa: E402

PANELS = [("loss_lip", "|ΔL| / ‖Δθ‖"), ("grad_lip", "‖Δ∇L‖ / ‖Δθ‖ (δ recomputed)"),
          ("grad_lip_fixed", "‖Δ∇L‖ / ‖Δθ‖ (δ held)"), ("delta_l2", "mean ‖δ₁ − δ₂‖₂"),
          ("loc_change", "share of l0 locations changed")]


def plot_lipschitz(df, path: str | Path | None = None, *, title: str = ""):
    panels = [(c, t) for c, t in PANELS if c in df and not df[c].isna().all()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4), squeeze=False)
    g = df.groupby(["variant", "radius"], sort=False).mean(numeric_only=True).reset_index()
    for ax, (col, label) in zip(axes[0], panels):
        for v, d in g.groupby("variant", sort=False):
            y = d[col].to_numpy(float)
            ax.plot(d["radius"], np.where(y > 0, y, np.nan) if col != "loc_change" else y, "o-", label=v)
        ax.set_xscale("log")
        if col != "loc_change":
            ax.set_yscale("log")
        ax.set_xlabel("radius r")
        ax.set_title(label, fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
