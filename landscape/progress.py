"""Progress bars for long loops, written to stderr, and the progress of attacks inside them.

A thin wrapper over ``tqdm`` so that every long loop in the library shows progress the same way and
can be silenced with ``LANDSCAPE_NO_PROGRESS=1`` (the test suite does) or ``progress=False``.

Attacks report their iterations through a small hook (:func:`attack_reporter`, used by
:class:`landscape.attacks.base.Attack` and the cascades): while an attack runs, every forward pass
of the model is one iteration, and the innermost open bar shows the stage, the iteration out of the
attack's budget, how many examples are still being attacked (the survivors) and the time this
stage still needs, e.g. ``spgd 1/3: it 412/10000, 37 survivors, ~3m12s left``. A notebook can
follow the same events with :func:`on_attack`.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

#: bars open now, innermost last (attack progress is shown on the innermost enabled one)
_open: list = []
#: callbacks that receive attack progress events (see :func:`on_attack`)
_listeners: list[Callable[[dict], None]] = []
#: seconds between two refreshes of an attack's progress text
REFRESH_S = 0.5
#: > 0 while forwards that are not iterations of an attack run (:func:`uncounted`)
_uncounted = 0


def enabled(progress: bool | None = None) -> bool:
    """On unless ``progress`` is False or ``LANDSCAPE_NO_PROGRESS`` is set (which always wins)."""
    if os.environ.get("LANDSCAPE_NO_PROGRESS", "") not in ("", "0"):
        return False
    return True if progress is None else bool(progress)


class _Bar(tqdm):
    """A tqdm bar that knows it is open (so attacks running inside it can write into it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _open.append(self)

    def close(self):
        if _open is not None and self in _open:  # None while the interpreter shuts down
            _open.remove(self)
        super().close()


def refresh_seconds() -> float:
    """Seconds between two redraws of a bar: 0.1 on a terminal; on a pipe or a log file (``nohup
    landscape ... > log``) ``LANDSCAPE_PROGRESS_INTERVAL`` (default 30), so a log holds a readable
    line every half minute instead of ten redraws a second."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        return 0.1
    try:
        return max(0.0, float(os.environ.get("LANDSCAPE_PROGRESS_INTERVAL", 30)))
    except ValueError:
        return 30.0


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
        progress: bool | None = None, initial: int = 0, unit: str = "it") -> "tqdm":
    """Return a tqdm progress bar on stderr (disabled when progress is off; redrawn every
    :func:`refresh_seconds`)."""
    every = refresh_seconds()
    return _Bar(iterable, total=total, desc=desc, disable=not enabled(progress), file=sys.stderr,
                initial=initial, unit=unit, dynamic_ncols=True, leave=False, mininterval=every,
                maxinterval=max(every, 10.0))


def track(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    yield from bar(iterable, **kwargs)


def note(message: str, progress: bool | None = None) -> None:
    """One line on stderr saying what a command is about to do (silenced like the bars)."""
    if enabled(progress):
        print(message, file=sys.stderr, flush=True)


def fmt_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


@contextmanager
def on_attack(callback: Callable[[dict], None]):
    """Within the block, ``callback(event)`` receives attack progress: ``event`` holds ``stage``,
    ``index``/``stages`` (position in a cascade), ``step``, ``total`` (the attack's budget of
    iterations, None if unknown), ``survivors`` (examples still attacked), ``elapsed_s`` and
    ``eta_s`` (time this stage still needs, None if unknown), and ``done`` (the stage finished)."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


@contextmanager
def uncounted():
    """Within the block, forwards of a watched model are not counted as attack iterations (sPGD's
    float32 check of a few examples of a bf16 search step is part of that step)."""
    global _uncounted
    _uncounted += 1
    try:
        yield
    finally:
        _uncounted -= 1


class AttackReport:
    """Counts an attack's iterations (forward passes of the model) and reports them (see module doc)."""

    def __init__(self, stage: str, total: int | None, index: int | None = None, stages: int | None = None):
        self.stage, self.total, self.index, self.stages = stage, total, index, stages
        self.steps, self.survivors = 0, None
        self.t0 = time.perf_counter()
        self.last = self.t0  # first shown after REFRESH_S: a one-step attack never writes anything

    def event(self, done: bool = False) -> dict:
        elapsed = time.perf_counter() - self.t0
        eta = None
        if self.total and self.steps:
            eta = 0.0 if done else elapsed / self.steps * max(0, self.total - self.steps)
        return {"stage": self.stage, "index": self.index, "stages": self.stages, "step": self.steps,
                "total": self.total, "survivors": self.survivors, "elapsed_s": elapsed, "eta_s": eta,
                "done": done}

    def text(self) -> str:
        e = self.event()
        where = f"{self.stage} {self.index}/{self.stages}" if self.stages else self.stage
        step = f"it {min(e['step'], self.total)}/{self.total}" if self.total else f"it {e['step']}"
        parts = [f"{where}: {step}"]
        if self.survivors is not None:
            parts.append(f"{self.survivors} survivor{'s' if self.survivors != 1 else ''}")
        if e["eta_s"] is not None:
            parts.append(f"~{fmt_seconds(e['eta_s'])} left")
        return ", ".join(parts)

    def hook(self, module, inputs, output) -> None:
        """A forward hook: one call is one iteration of the attack (none inside :func:`uncounted`)."""
        if _uncounted:
            return
        self.steps += 1
        x = inputs[0] if inputs else None
        if hasattr(x, "shape") and len(getattr(x, "shape", ())) > 0:
            self.survivors = int(x.shape[0])
        now = time.perf_counter()
        if now - self.last >= REFRESH_S:
            self.last = now
            self.emit()

    def emit(self, done: bool = False) -> None:
        for cb in list(_listeners):
            cb(self.event(done))
        shown = [b for b in _open if not getattr(b, "disable", True)]
        if shown and not done:  # the text always; a redraw at the bar's own pace (a log: every 30 s)
            b = shown[-1]
            b.set_postfix_str(self.text(), refresh=False)
            # Paced on the later of the bar's own last print and this hook's last redraw. tqdm's
            # ``last_print_t`` is left alone: tqdm measures its rate (and so the time left) as the
            # items since its last print over the time since it, and moving only the time made a
            # surface in a log show 6 points/s and a sixth of the real time left.
            now = time.time()
            if now - max(getattr(b, "last_print_t", 0.0), getattr(b, "_attack_redraw_t", 0.0)) >= b.mininterval:
                b.refresh()
                b._attack_redraw_t = now

    def close(self) -> None:
        self.emit(done=True)


def attack_reporter(stage: str, total: int | None, index: int | None = None,
                    stages: int | None = None) -> AttackReport | None:
    """An :class:`AttackReport` if anyone is watching (an open enabled bar or a listener), else None
    (then an attack runs with no hook at all)."""
    if not _listeners and not any(not getattr(b, "disable", True) for b in _open):
        return None
    return AttackReport(stage, total, index, stages)
