"""Progress bars for long loops, written to stderr.

A thin wrapper over ``tqdm`` so that every long loop in the library shows progress the same way and
can be silenced with ``LANDSCAPE_NO_PROGRESS=1`` (the test suite does) or ``progress=False``.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled(progress: bool | None = None) -> bool:
    """On unless ``progress`` is False or ``LANDSCAPE_NO_PROGRESS`` is set (which always wins)."""
    if os.environ.get("LANDSCAPE_NO_PROGRESS", "") not in ("", "0"):
        return False
    return True if progress is None else bool(progress)


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
        progress: bool | None = None, initial: int = 0, unit: str = "it") -> "tqdm":
    """Return a tqdm progress bar on stderr (disabled when progress is off)."""
    return tqdm(iterable, total=total, desc=desc, disable=not enabled(progress), file=sys.stderr,
                initial=initial, unit=unit, dynamic_ncols=True, leave=False)


def track(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    yield from bar(iterable, **kwargs)
