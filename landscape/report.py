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
    if isinstance(v, (list, dict)):
        return json.dumps(v)[:60]
    return str(v)


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
            sec = Section(str(rel), command=str(meta.get("command", "")), table=pd.DataFrame(data["rows"]))
            for key in ("cragginess", "mode", "loss", "threat", "attack", "checkpoint"):
                if key in meta:
                    sec.notes.append(f"{key}: {_fmt(meta[key])}")
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
    md = atomic_write_text(root / "report.md", render_markdown(sections, root, title))
    page = atomic_write_text(root / "report.html", render_html(sections, root, title))
    return md, page, len(sections)
