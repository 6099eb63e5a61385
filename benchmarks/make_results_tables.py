"""Print the markdown tables of benchmarks/RESULTS.md from a reproduction folder.

    python benchmarks/make_results_tables.py runs/reproduce

Every number in the reproduction section of RESULTS.md comes from this script reading the CSV/JSON
files that `landscape reproduce` wrote; nothing is typed in by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def pct(v) -> str:
    return "" if pd.isna(v) else f"{100 * float(v):.1f}"


def main(root: str) -> None:
    root = Path(root)
    done = json.loads((root / ".done.json").read_text()) if (root / ".done.json").exists() else {}
    co = root / "co" / "co_summary.csv"
    if co.exists():
        df = pd.read_csv(co)
        print("#### Catastrophic overfitting (`landscape reproduce co`)\n")
        print("| model | epochs | clean | training-attack acc (last epoch) | strong monitor (last / best) | sAA | CO |")
        print("|---|---|---|---|---|---|---|")
        for _, r in df.iterrows():
            print(f"| {r['run']} | {r['epochs']} | {pct(r['clean'])} | {pct(r['final_train_attack_acc'])} | "
                  f"{pct(r['final_monitor_strong_acc'])} / {pct(r['best_monitor_strong_acc'])} | {pct(r['saa'])} | "
                  f"{'yes' if r['co'] else 'no'} |")
        print()
    t2 = root / "interp" / "table2.csv"
    if t2.exists():
        df = pd.read_csv(t2)
        print("#### Table 2: accuracy (%) on x + α·δ, δ from 1-step sPGD at k=20 (`landscape reproduce interp`)\n")
        print("| " + " | ".join(df.columns) + " |")
        print("|" + "---|" * len(df.columns))
        for _, r in df.iterrows():
            print("| " + " | ".join(str(v) for v in r.tolist()) + " |")
        print()
    ov = root / "overlap" / "overlap_sat1.json"
    if ov.exists():
        m = json.loads(ov.read_text())["meta"]
        print("#### Location overlap (`landscape reproduce overlap`)\n")
        print(f"Mean IoU of the perturbed pixel sets of 1-step sPGD and sAA on the 1-step sAT model (k=20): "
              f"**{m['mean_iou_both_succeed']:.3f}** over the {m['n_both_succeed']} images where both succeed, "
              f"**{m['mean_iou_all']:.3f}** over all {m['n_all']} images.\n")
    for folder, name, title in (("hessian", "norms", "l0 (ε=1) against l1 (24), l2 (0.5), l∞ (8/255)"),
                                ("hessian", "l0_eps", "l0 at ε_train = 1, 20, 120"),
                                ("smoothing", "eigenvalues", "1-step sAT against sTRADES, soft labels and Fast-LS-l0 (k=20)")):
        p = root / folder / f"{name}.csv"
        if p.exists():
            df = pd.read_csv(p)
            print(f"#### Top Hessian eigenvalues of the adversarial loss: {title} (`landscape reproduce {folder}`)\n")
            print("| model | λ1 | λ5 | λ20 | converged |")
            print("|---|---|---|---|---|")
            for label, g in df.groupby("label", sort=False):
                g = g.sort_values("eigenvalue", ascending=False).reset_index(drop=True)
                lam = g["eigenvalue"]
                print(f"| {label} | {lam.iloc[0]:.4g} | {lam.iloc[min(4, len(lam) - 1)]:.4g} | {lam.iloc[-1]:.4g} | "
                      f"{int(g['converged'].sum())}/{len(g)} |")
            print()
    for folder, stem, title in (("surfaces", "surfaces", "the four norms"), ("smoothing", "surfaces", "smoothing")):
        p = root / folder / f"{stem}.json"
        if p.exists():
            m = json.loads(p.read_text())["meta"]
            print(f"#### Cragginess of the recomputed adversarial loss surfaces: {title}\n")
            print("| model | second difference / range | total variation / range | local minima |")
            print("|---|---|---|---|")
            for label, c in m["cragginess"].items():
                print(f"| {label} | {c['second_diff']:.4g} | {c['total_variation']:.4g} | {c['local_minima']} |")
            print()
    for folder, name in (("table3", "table3"), ("final", "final")):
        p = root / folder / f"{name}.csv"
        if p.exists():
            df = pd.read_csv(p)
            print(f"#### {name} (`landscape reproduce {folder}`)\n")
            cols = [c for c in ("label", "clean", "spgd", "spgd-projected", "rs", "worst-case",
                                "final_train_attack_acc", "co", "train_minutes") if c in df]
            print("| " + " | ".join(cols) + " |")
            print("|" + "---|" * len(cols))
            for _, r in df.iterrows():
                cells = []
                for c in cols:
                    v = r[c]
                    cells.append(pct(v) if c not in ("label", "co", "train_minutes") else
                                 ("yes" if v is True or v == "True" else "no") if c == "co" else str(v))
                print("| " + " | ".join(cells) + " |")
            print()
    if done:
        print(f"Steps finished: {len(done)}; sum of their wall times {sum(done.values()) / 60:.0f} min.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/reproduce")
