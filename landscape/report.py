"""Gather the results of a directory of runs into one markdown and HTML report.

Every analysis writes ``<out>.csv``, ``<out>.json`` (``{"meta": {...}, "rows": [...]}``) and a figure
``<out>.png``; every training run writes ``metrics.csv`` and ``final.json`` beside its checkpoint.
:func:`build_report` walks a directory, turns each result into a section with its table and figure,
captions it with the command that made it (``meta["command"]``), and writes ``report.md`` and
``report.html`` in the directory. Paths in the report are relative, so the folder can be moved.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .checkpoint import atomic_write_text
from .errors import LandscapeError

MAX_ROWS = 40


@dataclass
class Section:
    title: str
    command: str = ""
    table: pd.DataFrame | None = None
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}"
    if isinstance(v, dict):
        return _fmt_dict(v)
    if isinstance(v, list):
        items = [_fmt(x) for x in v[:8]]
        return ", ".join(items) + (f", … ({len(v) - 8} more)" if len(v) > 8 else "")
    return str(v)


def _fmt_dict(d: dict) -> str:
    """A readable one-line summary of a metadata dict, cut only between whole items."""
    if set(d) >= {"norm", "eps"} and len(d) <= 3 and not {"attack", "steps"} & set(d):
        return f"{d['norm']}(eps={_fmt(d['eps']) if isinstance(d['eps'], float) else d['eps']})"
    if "attack" in d and isinstance(d["attack"], str):
        keep = [k for k in ("steps", "n_queries", "restarts", "seed") if k in d]
        return d["attack"] + (" (" + ", ".join(f"{k} {_fmt(d[k])}" for k in keep) + ")" if keep else "")
    if "budget" in d and "n_examples" in d:
        return f"{d['budget']} budget, {d['n_examples']} examples" + (f", {d['threads']} thread(s)" if "threads" in d else "")
    items, size = [], 0
    for k, v in d.items():
        text = f"{k}={_fmt(v) if not isinstance(v, (dict, list)) else '{…}' if isinstance(v, dict) else '[…]'}"
        if items and size + len(text) > 160:
            items.append(f"… ({len(d) - len(items)} more)")
            break
        items.append(text)
        size += len(text) + 2
    return ", ".join(items)


def summarize(meta: dict, df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The table a report shows for one result: a summary of the analysis (``(table, what)``), not its
    raw grid or per-image rows (those stay in the CSV)."""
    kind = meta.get("analysis")
    try:
        if kind == "hessian" and {"label", "rank", "eigenvalue"} <= set(df.columns):
            rows = []
            for label, g in df.groupby("label", sort=False):
                g = g.sort_values("rank")
                row = {"model": label, "λ_max": g["eigenvalue"].iloc[0], f"λ_{int(g['rank'].iloc[-1])}": g["eigenvalue"].iloc[-1],
                       "eigenvalues": len(g)}
                if "converged" in g:
                    row["all converged"] = bool(g["converged"].all())
                if "trace" in g:
                    row["trace"] = g["trace"].iloc[0]
                rows.append(row)
            return pd.DataFrame(rows), "top eigenvalues per model"
        if kind == "density" and meta.get("checkpoints"):
            rows = []
            for m in meta["checkpoints"]:
                g = df[df["label"] == m.get("label")] if "label" in df else df
                mass = g[g["density"] > g["density"].max() * 1e-3] if len(g) else g
                rows.append({"model": m.get("label"), "trace ≈": m.get("trace_estimate"),
                             "λ min": mass["eigenvalue"].min() if len(mass) else None,
                             "λ max": mass["eigenvalue"].max() if len(mass) else None,
                             "density integral": m.get("integral"), "HVPs": m.get("n_hvp")})
            return pd.DataFrame(rows), "spectral density per model (range where the density exceeds 0.1% of its peak)"
        if kind == "surface" and meta.get("surfaces"):
            rows = []
            for m in meta["surfaces"]:
                c = m.get("cragginess") or {}
                rows.append({"model": m.get("label"), "loss": m.get("loss_mode"),
                             "centre loss": (m.get("center") or {}).get("loss"), "loss min": m.get("loss_min"),
                             "loss max": m.get("loss_max"), "second difference": c.get("second_diff"),
                             "total variation": c.get("total_variation"), "local minima": c.get("local_minima"),
                             "jump ratio": c.get("jump_ratio"), "jump fraction": c.get("jump_fraction"),
                             "grid": m.get("grid")})
            return pd.DataFrame(rows), "cragginess per surface (the grid is in the CSV)"
        if kind == "overlap":
            keys = [("clean_acc", "clean acc"), ("acc_onestep", "1-step acc"), ("acc_strong", "strong acc"),
                    ("mean_iou_both_succeed", "mean IoU (both succeed)"), ("n_both_succeed", "images (both succeed)"),
                    ("mean_iou_all", "mean IoU (all)"), ("n_all", "images (all)")]
            keys += [("mean_rate_all", "mean overlap rate (all)"),
                     ("mean_rate_both_succeed", "mean overlap rate (both succeed)")]
            row = {"model": meta.get("label")} if meta.get("label") else {}
            row.update({label: meta.get(k) for k, label in keys if k in meta})
            if "iou" in df:
                row["median IoU (all)"] = float(df["iou"].median())
            if "overlap_rate" in df and df["overlap_rate"].notna().any():
                row["median overlap rate"] = float(df["overlap_rate"].median())
            return pd.DataFrame([row]), "pixel-location overlap (per-image rows in the CSV)"
        if kind == "gradients" and {"checkpoint", "grad_distance"} <= set(df.columns):
            keys = [("checkpoint", "model"), ("norm", "norm"), ("eps", "eps"), ("grad_distance", "gradient distance"),
                    ("relative_distance", "relative distance"), ("grad_norm_onestep", "gradient norm (1-step)"),
                    ("grad_norm_multistep", "gradient norm (multi-step)"), ("acc_onestep", "acc (1-step)"),
                    ("acc_multistep", "acc (multi-step)")]
            t = df[[k for k, _ in keys if k in df]].rename(columns=dict(keys))
            return t, "l2 distance between the parameter gradients at the 1-step and the multi-step perturbations"
        if kind == "lipschitz" and {"variant", "radius"} <= set(df.columns):
            cols = [c for c in ("loss_lip", "grad_lip", "grad_lip_fixed", "delta_l2", "loc_change") if c in df]
            t = df.groupby(["variant", "radius"], sort=False)[cols].mean().reset_index()
            return t, "mean over directions"
    except (KeyError, TypeError, ValueError):
        pass
    if len(df) > MAX_ROWS:
        num = df.select_dtypes("number")
        if len(num.columns):
            t = num.agg(["count", "mean", "min", "max"]).T.reset_index().rename(columns={"index": "column"})
            return t, f"summary of {len(df)} rows (all in the CSV)"
    return df, ""


def markdown_table(df: pd.DataFrame, max_rows: int = MAX_ROWS) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    shown = df.head(max_rows)
    cols = [str(c) for c in shown.columns]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for _, row in shown.iterrows():
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row.tolist()) + " |")
    if len(df) > max_rows:
        lines.append(f"\n*({len(df) - max_rows} more rows in the CSV)*")
    return "\n".join(lines)


def _figures_for(stem: Path) -> list[Path]:
    return [p for p in (stem.with_suffix(s) for s in (".png", ".svg")) if p.exists()]


def collect(runs_dir: str | Path) -> list[Section]:
    """The report's sections, one per result found under ``runs_dir`` (sorted by path)."""
    root = Path(runs_dir)
    if root.exists() and not root.is_dir():
        raise LandscapeError(f"{root} is a file; give the runs directory that holds the results")
    if not root.is_dir():
        raise LandscapeError(f"runs directory not found: {root}")
    sections: list[Section] = []
    used: set[Path] = set()
    for js in sorted(root.rglob("*.json")):
        if js.name.startswith("."):
            continue
        try:
            data = json.loads(js.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        rel = js.relative_to(root).with_suffix("")
        if isinstance(data, dict) and "rows" in data and "meta" in data:
            meta = data.get("meta") or {}
            table, what = summarize(meta, pd.DataFrame(data["rows"]))
            sec = Section(str(rel), command=str(meta.get("command", "")), table=table)
            for key in ("analysis", "mode", "loss", "threat", "attack", "attack_onestep", "attack_strong",
                        "strong_attack", "checkpoint", "plan"):
                if key in meta and meta[key] not in (None, "", {}):
                    sec.notes.append(f"{key}: {_fmt(meta[key])}")
            if what:
                sec.notes.append(f"table: {what}")
            figs = _figures_for(js.with_suffix(""))
            if meta.get("figure") and (js.parent / str(meta["figure"])).exists():
                figs.append(js.parent / str(meta["figure"]))
            sec.figures = list(dict.fromkeys(figs))
            used.update(sec.figures)
            sections.append(sec)
        elif js.name == "final.json" and isinstance(data, dict):
            sec = Section(str(rel.parent) + " (training run)", command=str(data.get("command", "")))
            flat = {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool)) and k != "command"}
            sec.table = pd.DataFrame([flat]) if flat else None
            metrics = js.parent / "metrics.csv"
            if metrics.exists():
                try:
                    m = pd.read_csv(metrics)
                    sec.notes.append(f"metrics.csv: {len(m)} epochs")
                    sec.table = m if sec.table is None else sec.table
                    if sec.table is not m:
                        sec.notes.append("last epochs:\n\n" + markdown_table(m.tail(5)))
                except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
                    pass
            sec.figures = sorted(p for p in js.parent.glob("*.png"))
            used.update(sec.figures)
            sections.append(sec)
    rest = sorted(p for p in root.rglob("*.png") if p not in used)
    if rest:
        sections.append(Section("Other figures", figures=rest))
    return sections


def render_markdown(sections: list[Section], root: Path, title: str) -> str:
    out = [f"# {title}", "", f"{len(sections)} results gathered from `{root}`.", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        if s.command:
            out += [f"Made by: `{s.command}`", ""]
        for n in s.notes:
            out += [f"- {n}"]
        if s.notes:
            out.append("")
        if s.table is not None and len(s.table):
            out += [markdown_table(s.table), ""]
        for f in s.figures:
            rel = f.relative_to(root)
            out += [f"![{rel}]({rel.as_posix()})", "", f"*{rel}*" + (f" — `{s.command}`" if s.command else ""), ""]
    return "\n".join(out) + "\n"


def render_html(sections: list[Section], root: Path, title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}"
             "code{background:#f4f4f4}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.command:
            parts.append(f"<p>Made by: <code>{html.escape(s.command)}</code></p>")
        if s.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n.splitlines()[0])}</li>" for n in s.notes) + "</ul>")
        if s.table is not None and len(s.table):
            parts.append(s.table.head(MAX_ROWS).to_html(index=False, float_format=lambda v: f"{v:.4g}"))
        for f in s.figures:
            rel = f.relative_to(root).as_posix()
            cap = html.escape(rel + (f" — {s.command}" if s.command else ""))
            parts.append(f"<figure><img src='{html.escape(rel)}'><figcaption>{cap}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(runs_dir: str | Path, title: str | None = None) -> tuple[Path, Path, int]:
    """Write ``report.md`` and ``report.html`` into ``runs_dir``; return their paths and the section count."""
    root = Path(runs_dir)
    sections = collect(root)
    if not sections:
        raise LandscapeError(f"no results (*.json with meta and rows, training runs, figures) under {root}")
    title = title or f"landscape report: {root.name}"
    mark = "\n<!-- written by landscape report -->\n"  # lets a rerun replace them (landscape.outputs)
    md = atomic_write_text(root / "report.md", render_markdown(sections, root, title) + mark)
    page = atomic_write_text(root / "report.html", render_html(sections, root, title) + mark)
    return md, page, len(sections)
