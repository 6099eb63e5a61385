"""How many CPU threads torch uses (``--threads``, ``LANDSCAPE_THREADS``).

torch starts one intra-op thread per physical core and spins them while it waits. On a machine
whose cores are already busy (other jobs, other processes of a ``torchrun`` group) those threads
fight for the same cores and every parallel region waits for its slowest thread: on this project's
shared 2-core machine commands ran several times slower with torch's default than with one thread
(measured in ``benchmarks/RESULTS.md``, section "CPU threads").

:func:`default_threads` therefore counts the cores that are *free*: the cores this process may run
on (CPU affinity and a cgroup CPU quota both count) less the load already on them (the 1-minute
load average), shared among the local processes of a ``torchrun`` group, and at least one. An
explicit choice always wins: ``--threads N`` on the command line, else ``LANDSCAPE_THREADS``, else
``OMP_NUM_THREADS`` (which torch itself reads).
"""

from __future__ import annotations

import math
import os

from .errors import LandscapeError


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota if one is set."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _busy_cores() -> float:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def default_threads(cores: int | None = None, load: float | None = None, local_procs: int | None = None) -> int:
    """The thread count used when none is given: free cores (cores minus the 1-minute load, rounded
    to the nearest whole core) divided among ``torchrun``'s local processes, at least 1."""
    cores = available_cores() if cores is None else int(cores)
    load = _busy_cores() if load is None else float(load)
    if local_procs is None:
        from .distributed import from_env
        local_procs = from_env().local_world
    free = math.floor(cores - load + 0.5)
    return max(1, min(cores, free) // max(1, local_procs))


def requested_threads() -> tuple[int | None, str]:
    """``(n, source)`` from ``LANDSCAPE_THREADS`` or ``OMP_NUM_THREADS``; ``(None, "")`` if neither is set."""
    for var in ("LANDSCAPE_THREADS", "OMP_NUM_THREADS"):
        text = os.environ.get(var, "").strip()
        if text:
            try:
                n = int(text)
            except ValueError:
                raise LandscapeError(f"{var}={text!r} is not a whole number of threads") from None
            if n < 1:
                raise LandscapeError(f"{var} must be at least 1, got {n}")
            return n, var
    return None, ""


def configure(threads: int | None = None) -> tuple[int, str]:
    """Set torch's intra-op thread count and return ``(n, why)``.

    ``threads`` (from ``--threads``) wins, then the environment (:func:`requested_threads`), then
    :func:`default_threads`. ``why`` says which, for the record in results' metadata."""
    import torch

    if threads is not None:
        if threads < 1:
            raise LandscapeError(f"threads must be at least 1, got {threads}")
        n, why = int(threads), "--threads"
    else:
        n, why = requested_threads()
        if n is None:
            n, why = default_threads(), f"free cores ({available_cores()} cores, load {_busy_cores():.1f})"
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n, why


#: what the last :func:`configure` chose (None until it runs); results record it
CHOSEN: dict | None = None


def apply(threads: int | None = None) -> int:
    """:func:`configure` and remember the choice in :data:`CHOSEN`; returns the thread count."""
    global CHOSEN
    n, why = configure(threads)
    CHOSEN = {"threads": n, "source": why}
    return n
