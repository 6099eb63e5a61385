"""Training curves: accuracy per epoch (training attack vs strong attack) with CO epochs marked."""

from __future__ import annotations

from pathlib import Path


def plot_training_curves(metrics, out: str | Path | None = None, title: str = ""):
    """Plot a run's ``metrics.csv`` (a path, a DataFrame or a list of dicts); returns the figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    if isinstance(metrics, (str, Path)):
        path = Path(metrics)
        df = pd.read_csv(path / "metrics.csv" if path.is_dir() else path)
    else:
        df = pd.DataFrame(metrics)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for col, label, style in (("monitor_clean_acc", "clean", "-"), ("monitor_train_attack_acc", "training attack", "--"),
                              ("monitor_strong_acc", "strong attack", "-"), ("train_adv_acc", "train (adv)", ":")):
        if col in df and df[col].notna().any():
            ax.plot(df["epoch"], 100 * df[col], style, marker="o", ms=3, label=label)
    if "co" in df:
        co = df[df["co"].astype(str).str.lower() == "true"]
        for e in co["epoch"]:
            ax.axvline(e, color="red", alpha=0.2, lw=6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    if out is not None:
        from . import save_figure
        save_figure(fig, out, dpi=150, close=False)  # the caller gets the figure back
    return fig
