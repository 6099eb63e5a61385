"""Combined figures and tables of the reproduction recipes (``landscape/recipes/*.toml``).

Each builder reads results that ``landscape`` commands wrote (training runs' ``metrics.csv`` and
``final.json``, ``landscape eval`` and ``landscape interp`` JSON files) and writes one table
(``<name>.csv``/``.json``, via the same writer as every command) plus one figure into the recipe's
folder. A recipe names its builder and arguments in its ``[figure]`` table; paths there may use the
recipe's placeholders.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..errors import LandscapeError
from . import save_figure


def _read_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LandscapeError(f"cannot read result {path}: {e}") from None


#: the command line recorded in the tables' metadata (set by ``landscape.reproduce.run_recipe``)
COMMAND: str | None = None


def _write(df: pd.DataFrame, meta: dict, stem: Path) -> None:
    from ..results import write_results
    write_results(df, meta, stem.with_suffix(".csv"), stem.with_suffix(".json"), command=COMMAND)


def write_table(df: pd.DataFrame, meta: dict, stem: str | Path) -> None:
    """Write a table as ``<stem>.csv`` and ``<stem>.json`` through the commands' result writer."""
    _write(df, meta, Path(stem))


def seed_bars(df: pd.DataFrame, key: str, png: str | Path, *, title: str = "") -> list[Path]:
    """Clean, training-attack and sparse-AutoAttack accuracy per model over seeds: bars at the mean,
    whiskers ± one standard deviation, every seed's value as a dot; a model flagged CO in some seeds is
    labelled so (CO: sAA near zero while the training attack stays high)."""
    import numpy as np

    png = Path(png)
    n = len(df)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * n + 2.5), 4.4))
    xs = np.arange(n)
    saa = "worst-case" if "worst-case_mean" in df else "saa"
    bars = [(c, label, color) for c, label, color in (("clean", "clean", "C0"),
                                                      ("final_train_attack_acc", "training attack", "C7"),
                                                      (saa, "sAA (worst case)", "C3")) if f"{c}_mean" in df]
    width = 0.8 / max(1, len(bars))
    for i, (col, label, color) in enumerate(bars):
        off = (i - (len(bars) - 1) / 2) * width
        ax.bar(xs + off, 100 * df[f"{col}_mean"], width=width * 0.95, yerr=100 * df[f"{col}_sd"], capsize=3,
               color=color, alpha=0.55, label=f"{label}, mean ± sd")
        for x, vals in zip(xs, df[f"{col}_seeds"]):
            ax.plot([x + off] * len(vals), [100 * v for v in vals], "o", ms=3, color=color)
    labels = list(df[key])
    if "co_seeds" in df:
        labels = [f"{lab}\n(CO in {int(c)} of {int(k)})" if c else lab
                  for lab, c, k in zip(labels, df["co_seeds"], df["seeds"])]
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("accuracy on held-out images (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a bar
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, png)
    return [png]


#: the quantities a seed summary figure shows first (the ones the verdicts rest on)
SEED_POINTS_FIRST = ["λ_max", "jump ratio", "jump fraction", "gradient distance", "relative distance",
                     "mean overlap rate (all)", "mean overlap rate (both succeed)", "mean IoU (all)"]


def seed_points(df: pd.DataFrame, key: str, png: str | Path, *, title: str = "", most: int = 4) -> list[Path]:
    """An analysis summary over seeds: one panel per quantity that differs between seeds (at most
    ``most``), each model's mean ± sd as a point with whiskers and every seed's value as a dot; a
    quantity that spans more than two decades gets a log axis (labelled so)."""
    import numpy as np

    png = Path(png)
    cols = [c[:-5] for c in df.columns if c.endswith("_mean")]
    cols = (sorted((c for c in cols if c in SEED_POINTS_FIRST), key=SEED_POINTS_FIRST.index)
            + [c for c in cols if c not in SEED_POINTS_FIRST])[:most]
    if not cols:
        return []
    n = len(df)
    names = [str(v).split(" · ")[0] for v in df[key]]
    width = max(3.2, 0.45 * n + 1.6)
    fig, axes = plt.subplots(1, len(cols), figsize=(width * len(cols), 3.8), squeeze=False)
    xs = np.arange(n)
    for ax, col in zip(axes[0], cols):
        # a model whose seeds agree on this quantity has it as a plain value (no spread, no per-seed list)
        seeds = [v if isinstance(v, list) else [r] for v, r in zip(df[f"{col}_seeds"], df.get(col, df[f"{col}_mean"]))]
        mean = np.array([np.mean(v) for v in seeds], float)
        sd = df[f"{col}_sd"].fillna(0.0).to_numpy(float)
        ax.errorbar(xs, mean, yerr=sd, fmt="s", color="C0", capsize=4, ms=5, label="mean ± sd")
        for x, vals in zip(xs, seeds):
            ax.plot([x] * len(vals), vals, "o", ms=3, color="C3", alpha=0.7)
        ax.plot([], [], "o", ms=3, color="C3", label="one seed")
        values = np.concatenate([np.asarray(v, float) for v in seeds])
        finite = values[np.isfinite(values)]
        if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax.set_yscale("log")
            ax.set_ylabel(f"{col} (log scale)", fontsize=8)
        else:
            ax.set_ylabel(col, fontsize=8)
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
        ax.set_xlim(-0.6, n - 0.4)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    import textwrap

    fig.suptitle(textwrap.fill(title, int(14 * width * len(cols))), fontsize=9)
    fig.tight_layout()
    save_figure(fig, png)
    return [png]


def _eval_summary(path: str | Path) -> dict:
    """``{stage: accuracy}`` plus clean, worst-case and seconds from a ``landscape eval`` JSON."""
    data = _read_json(path)
    out = {}
    for row in data["rows"]:
        out[row["stage"]] = row["accuracy"]
        if row["stage"] == "worst-case":
            out["eval_seconds"] = row.get("seconds")
    return out


def _run_summary(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    out = {}
    metrics = run_dir / "metrics.csv"
    if metrics.exists():
        m = pd.read_csv(metrics)
        out["epochs"] = int(m["epoch"].max())
        out["train_minutes"] = round(float(m["epoch_time_s"].sum()) / 60, 2)
        last = m.iloc[-1]
        out["final_train_attack_acc"] = float(last["monitor_train_attack_acc"])
        out["final_monitor_strong_acc"] = float(last["monitor_strong_acc"])
        out["best_monitor_strong_acc"] = float(m["monitor_strong_acc"].max())
    final = run_dir / "final.json"
    if final.exists():
        f = _read_json(final)
        out["recipe"] = f.get("recipe")
    return out


def co_curves(out: str | Path, *, runs: dict, evals: dict | None = None, scale: str = "", name: str = "co") -> list[Path]:
    """Per-epoch accuracy under the training attack (dashed) and a strong attack (solid) of each run.

    ``runs`` maps a label to a training run folder; ``evals`` optionally maps the same labels to a
    ``landscape eval`` JSON (sparse-AutoAttack) of the final model, drawn as a dot at the last epoch.
    """
    from ..training.monitor import co_detected

    out = Path(out)
    rows, summary = [], []
    fig, ax = plt.subplots(figsize=(8.6, 4.2))
    for i, (label, run) in enumerate(runs.items()):
        path = Path(run) / "metrics.csv"
        if not path.exists():
            raise LandscapeError(f"no metrics.csv in {run}")
        m = pd.read_csv(path)
        color = f"C{i}"
        ax.plot(m["epoch"], 100 * m["monitor_train_attack_acc"], "--", color=color, label=f"{label}: training attack")
        ax.plot(m["epoch"], 100 * m["monitor_strong_acc"], "-", color=color, label=f"{label}: strong attack (monitor)")
        for _, r in m.iterrows():
            rows += [{"run": label, "epoch": int(r["epoch"]), "metric": k, "accuracy": float(r[k])}
                     for k in ("monitor_clean_acc", "monitor_train_attack_acc", "monitor_strong_acc")]
        s = {"run": label, **_run_summary(run)}
        if evals and label in evals:
            e = _eval_summary(evals[label])
            s["clean"] = e.get("clean")
            s["saa"] = e.get("worst-case")
            ax.plot([m["epoch"].max()], [100 * s["saa"]], "o", color=color, label=f"{label}: sAA (final)")
            s["co"] = bool(co_detected(s["final_train_attack_acc"], s["saa"]))
        summary.append(s)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy on held-out images (%)")
    ax.set_title("Catastrophic overfitting: training attack vs strong attacks")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = out / f"{name}.png"
    save_figure(fig, png)
    _write(pd.DataFrame(rows), {"figure": png.name, "scale": scale, "runs": {k: str(v) for k, v in runs.items()}},
           out / f"{name}_curves")
    _write(pd.DataFrame(summary), {"scale": scale, "co_rule": "sAA acc <= 0.05 and training-attack acc - sAA acc >= 0.3"},
           out / f"{name}_summary")
    return [png]


def results_table(out: str | Path, *, rows: list, name: str = "table", scale: str = "", title: str = "",
                  columns: list | None = None) -> list[Path]:
    """A table of final models: each row ``{label, run, eval, ...}`` becomes clean accuracy, every
    attack stage's accuracy, the worst case (sAA), training time and the CO flag. A bar chart of
    clean and worst-case accuracy is drawn beside it."""
    from ..training.monitor import co_detected

    out = Path(out)
    table = []
    for spec in rows:
        spec = dict(spec)
        row = {k: v for k, v in spec.items() if k not in ("run", "eval")}
        if spec.get("run"):
            row.update(_run_summary(spec["run"]))
        if spec.get("eval"):
            row.update(_eval_summary(spec["eval"]))
            if "final_train_attack_acc" in row:
                row["co"] = bool(co_detected(row["final_train_attack_acc"], row["worst-case"]))
        table.append(row)
    df = pd.DataFrame(table)
    if columns:
        df = df[[c for c in columns if c in df.columns] + [c for c in df.columns if c not in columns]]
    from matplotlib.patches import Patch
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(df) + 2), 4.3))
    xs = range(len(df))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    handles = []
    if "clean" in df:
        ax.bar([x - 0.2 for x in xs], 100 * df["clean"], width=0.4, color=colors[0])
        handles.append(Patch(facecolor=colors[0], label="clean"))
    if "worst-case" in df:
        bars = ax.bar([x + 0.2 for x in xs], 100 * df["worst-case"], width=0.4, color=colors[1])
        handles.append(Patch(facecolor=colors[1], label="robust (worst case)"))
        flagged = [bool(co) for co in df.get("co", [False] * len(df))]
        for b, co in zip(bars, flagged):
            if co:
                b.set_hatch("//")
        if any(flagged):
            # a legend entry of its own, so that the plain "robust" patch is never hatched
            handles.append(Patch(facecolor=colors[1], hatch="//", label="robust, catastrophic overfitting flagged"))
    ax.set_xticks(list(xs))
    ax.set_xticklabels(df["label"] if "label" in df else xs, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or name, fontsize=9, pad=24)
    # above the axes, between the title and the bars: it never covers a bar
    ax.legend(handles=handles, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles),
              frameon=False)
    fig.tight_layout()
    png = out / f"{name}.png"
    save_figure(fig, png)
    _write(df, {"figure": png.name, "scale": scale, "title": title}, out / name)
    return [png]


def interp_table(out: str | Path, *, runs: dict, scale: str = "", name: str = "table2") -> list[Path]:
    """The paper's Table 2: one row per model (e.g. per ε_train), accuracy at each α, and the strong
    attack's accuracy; ``runs`` maps a row label to a ``landscape interp`` JSON."""
    out = Path(out)
    rows = []
    fig, ax = plt.subplots(figsize=(6.2, 4))
    for i, (label, path) in enumerate(runs.items()):
        data = pd.DataFrame(_read_json(path)["rows"])
        interp = data[data["kind"] == "interp"]
        row = {"model": label, **{f"alpha={a:g}": round(100 * acc, 1) for a, acc in zip(interp["alpha"], interp["acc"])}}
        strong = data[data["kind"] == "strong"]
        if len(strong):
            row["sAA"] = round(100 * float(strong["acc"].iloc[0]), 1)
            ax.axhline(row["sAA"], color=f"C{i}", ls=":", lw=1)
        rows.append(row)
        ax.plot(interp["alpha"], 100 * interp["acc"], "o-", color=f"C{i}", label=label)
    ax.set_xlabel("α  (x + α·δ, δ from the 1-step attack)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Interpolation along the 1-step perturbation (dotted: sAA)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = out / f"{name}.png"
    save_figure(fig, png)
    _write(pd.DataFrame(rows), {"figure": png.name, "scale": scale}, out / name)
    return [png]
