"""Checks of user-given values, shared by the library and the CLI, run before any work.

Each raises :class:`~landscape.errors.LandscapeError` naming the argument in backquotes
(`n_examples`), which the CLI prints as its flag (--n-examples).
"""

from __future__ import annotations

import math

from .errors import LandscapeError

#: the most values a range (``start:stop:step``) or a list of values may hold
MAX_POINTS = 10_000


def count(arg: str, value, *, lo: int = 1, hi: int | None = None, what: str = "") -> int:
    """A whole number in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value:
        raise LandscapeError(f"`{arg}` must be a whole number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise LandscapeError(f"`{arg}` must be {bound}{what}, got {value}")
    return int(value)


def number(arg: str, value, *, lo: float | None = None, hi: float | None = None, positive: bool = False,
           allow_none: bool = False) -> float | None:
    """A finite number (optionally positive, or within ``[lo, hi]``)."""
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LandscapeError(f"`{arg}` must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise LandscapeError(f"`{arg}` must be a finite number, got {value}")
    if positive and not v > 0:
        raise LandscapeError(f"`{arg}` must be positive, got {value}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bound = f">= {lo}" if hi is None else (f"<= {hi}" if lo is None else f"in [{lo}, {hi}]")
        raise LandscapeError(f"`{arg}` must be {bound}, got {value}")
    return v


def values(arg: str, vals, *, positive: bool = False, max_count: int = MAX_POINTS) -> list[float]:
    """A non-empty list of at most ``max_count`` finite numbers."""
    vals = list(vals)
    if not vals:
        raise LandscapeError(f"`{arg}` is empty")
    if len(vals) > max_count:
        raise LandscapeError(f"`{arg}` has {len(vals):,} values; at most {max_count:,} are allowed")
    return [number(arg, v, positive=positive) for v in vals]


def parse_range(text: str, arg: str = "range", *, positive: bool = False, max_count: int = MAX_POINTS) -> list[float]:
    """``start:stop:step`` (stop included within rounding) or a comma list of numbers: at most
    ``max_count`` finite values. The count is checked before any list is built."""
    text = str(text).strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if not all(math.isfinite(v) for v in parts):
                raise LandscapeError(f"`{arg}` {text!r}: start, stop and step must be finite numbers")
            if step <= 0:
                raise LandscapeError(f"`{arg}` {text!r}: the step must be positive")
            if stop < start:
                raise LandscapeError(f"`{arg}` {text!r}: the stop is below the start")
            span = (stop - start) / step
            if span + 1 > max_count:
                raise LandscapeError(f"`{arg}` {text!r} has {span + 1:,.0f} values; at most {max_count:,} are "
                                     "allowed (use a larger step)")
            n = int(round(span))
            vals = [start + i * step for i in range(n + 1) if start + i * step <= stop + 1e-9]
            return values(arg, [round(v, 10) for v in vals], positive=positive, max_count=max_count)
        vals = [float(p) for p in text.split(",") if p.strip()]
        if not vals:
            raise ValueError
        return values(arg, vals, positive=positive, max_count=max_count)
    except ValueError:
        raise LandscapeError(f"cannot read `{arg}` {text!r}; use start:stop:step (e.g. 0:1:0.1) or a comma list") from None


def solver_options(*, topk=None, tol=None, maxiter=None, trace_samples=None) -> None:
    """The eigensolver's and trace estimator's settings (``None``: the default), checked before any
    Hessian-vector product: ``topk >= 1``, ``tol`` a finite number >= 0, ``maxiter >= 1``,
    ``trace_samples >= 2`` (a standard error needs two)."""
    if topk is not None:
        count("topk", topk, lo=1)
    if tol is not None:
        number("tol", tol, lo=0.0)
    if maxiter is not None:
        count("maxiter", maxiter, lo=1)
    if trace_samples is not None:
        count("trace_samples", trace_samples, lo=2)


def hessian_precision(precision, method="lanczos", dtype="float32") -> None:
    """``precision`` bfloat16 (bf16 products, settled in float32) needs Lanczos and a float32 operator;
    checked by the API and, before the plan line, by the CLI's budget step."""
    if str(precision) != "float32" and (method != "lanczos" or str(dtype).replace("torch.", "") != "float32"):
        raise LandscapeError("`precision` bfloat16 needs `method` lanczos and `dtype` float32")


__all__ = ["MAX_POINTS", "count", "hessian_precision", "number", "parse_range", "solver_options", "values"]
