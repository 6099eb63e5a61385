"""Writing analysis results: a tidy table and its metadata, atomically, and short checkpoint labels.

Every analysis returns ``(pandas.DataFrame, meta: dict)``; :func:`write_results` writes
``<stem>.csv`` and ``<stem>.json`` (``{"meta": ..., "rows": [...]}``) through the atomic writer of
:mod:`landscape.checkpoint`, so an interrupted write never leaves a half file over an earlier result.
"""

from __future__ import annotations

import json
from pathlib import Path

GENERIC_STEMS = {"checkpoint", "ckpt", "model", "last", "best", "final"}


def write_results(df, meta: dict, csv_path: str | Path, json_path: str | Path, *, command: str | None = None) -> None:
    """Write ``df`` to ``csv_path`` and ``{"meta": meta, "rows": ...}`` to ``json_path`` (atomic writes);
    ``command`` (the command line that made them) goes into the metadata unless it holds one."""
    from .checkpoint import atomic_write_text
    meta = dict(meta)
    if command:
        meta.setdefault("command", command)
    # CSVs carry each float at float32 precision, in its shortest form (0.73, not the float32 noise
    # 0.7300000190734863); the JSON keeps full precision
    atomic_write_text(Path(csv_path), csv_frame(df).to_csv(index=False))
    atomic_write_text(Path(json_path), json.dumps({"meta": meta, "rows": json.loads(df.to_json(orient="records"))},
                                                  indent=2, default=str))


def csv_frame(df):
    """``df`` with its float columns as the shortest text that reads back as the same float32 value."""
    import numpy as np
    import pandas as pd
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = ["" if v != v else str(np.float32(v)) for v in out[c].to_numpy(dtype=float)]
    return out


def checkpoint_label(path) -> str:
    """A short name for a checkpoint in tables and figures: its file stem, or its run folder's name
    for generic file names (``runs/sat-1step-l0-20/checkpoint.pt`` -> ``sat-1step-l0-20``)."""
    p = Path(str(path))
    return p.parent.name if p.stem in GENERIC_STEMS and p.parent.name else p.stem


def checkpoint_labels(paths) -> list[str]:
    """:func:`checkpoint_label` of each path, made unique with ``#2``, ``#3``... where they collide."""
    labels, seen = [], {}
    for p in paths:
        lab = checkpoint_label(p)
        seen[lab] = seen.get(lab, 0) + 1
        labels.append(lab if seen[lab] == 1 else f"{lab}#{seen[lab]}")
    return labels


__all__ = ["checkpoint_label", "checkpoint_labels", "write_results"]
