"""Run the steps of the reproduction recipes several at a time (``landscape reproduce --jobs N``).

Steps depend on each other only through their files: a step depends on every earlier step whose
``--out`` path it names (a training step's run folder, the checkpoint inside it, or a result's
stem), and on every earlier step writing to the same path. A step without ``--out`` is a barrier:
it waits for all earlier steps and all later ones wait for it. Within those constraints steps run in
recipe order, ``jobs`` at a time, each in one of ``jobs`` worker processes started once (``spawn``:
no state of this process is shared) that run the ``landscape`` commands in process (no interpreter
start-up per step) or, without the CLI's entry point, as child processes.

Each step's output goes to its own log file (appended to, never replaced); this process prints one
line when a step starts and one when it ends, with the steps left and an estimate of the time left.
Ctrl-C reaches the workers too (the running steps save and stop); a SIGTERM to this process is
passed on to the workers, which stop their steps as Ctrl-C does. Either way :func:`run_parallel` raises ``KeyboardInterrupt``
once the running steps have stopped, and the caller's ledger of finished steps is left as it was.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shlex
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from .errors import LandscapeError


def out_path(command: str) -> str | None:
    """The value of a command's ``--out`` option, or None."""
    argv = shlex.split(command)
    for i, tok in enumerate(argv):
        if tok == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if tok.startswith("--out="):
            return tok.split("=", 1)[1]
    return None


def _names(token: str, path: str) -> bool:
    return token == path or token.startswith(path.rstrip("/") + "/") or token.startswith(path + ".")


def dependencies(commands: list[str]) -> list[set[int]]:
    """For each command, the indices of the earlier commands it must wait for (module docstring)."""
    outs = [out_path(c) for c in commands]
    tokens = [shlex.split(c)[1:] for c in commands]
    deps: list[set[int]] = []
    for j in range(len(commands)):
        mine = set()
        for i in range(j):
            if outs[i] is None or outs[j] is None or outs[i] == outs[j] \
                    or any(_names(t, outs[i]) for t in tokens[j] if t != outs[j]):
                mine.add(i)
        deps.append(mine)
    return deps


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv and argv[0] == "landscape":
        return [sys.executable, "-m", "analysis_cli", *argv[1:]]
    raise LandscapeError(f"recipe steps must be landscape commands, got {command!r}")


def _run_child(argv: list[str], env: dict, stdout=None) -> int:
    """Run one step as a child process and return its exit code (its output to ``stdout``, a file,
    if given, else to this process's).

    A SIGTERM to this process (a scheduler's stop, ``kill``) is passed on to the child as SIGINT, which
    makes a training step save at the next step boundary and exit, and then raises KeyboardInterrupt
    here: no step is left running behind a stopped ``reproduce``, and rerunning resumes it.
    """
    proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=None if stdout is None else subprocess.STDOUT)
    stopped = []

    def forward(signum, frame):
        stopped.append(signum)
        proc.send_signal(signal.SIGINT)

    try:
        old = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread
        old = None
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group: the child stops by itself
        proc.wait()
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    if stopped:
        raise KeyboardInterrupt
    return code


def _run_in_process(command: str, run_command) -> int:
    """Run a landscape command in this process with ``run_command(argv)`` (the CLI's entry point, given
    by the caller: the library does not import the CLI); no interpreter start-up (the quick scale)."""
    try:
        run_command(shlex.split(command)[1:])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _run_logged(command: str, run_command, log: str) -> int:
    """Run one step with its output appended to ``log``; its exit code (130: interrupted)."""
    with open(log, "a", buffering=1) as fh:
        fh.write(f"$ {command}\n")
        try:
            if run_command is None:
                return _run_child(_argv(command), dict(os.environ), stdout=fh)
            with redirect_stdout(fh), redirect_stderr(fh):
                return _run_in_process(command, run_command)
        except KeyboardInterrupt:
            return 130


def _stop(signum, frame):
    raise KeyboardInterrupt


def _worker(tasks, results, run_command, env: dict) -> None:
    """A worker process: run the steps it is sent until it is sent None. A SIGTERM (from
    :func:`run_parallel`) stops the running step as Ctrl-C does: a training step saves first (its own
    handler), a child process is passed a SIGINT (:func:`_run_child`)."""
    os.environ.update(env)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while True:
            item = tasks.get()
            if item is None:
                return
            key, command, log = item
            t0 = time.perf_counter()
            code = _run_logged(command, run_command, log)
            results.put((key, code, time.perf_counter() - t0))
    except KeyboardInterrupt:  # idle when Ctrl-C came: nothing to save
        return


def _tail(path: str | Path, lines: int = 15) -> str:
    try:
        return "".join(open(path, errors="replace").readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def worker_threads(jobs: int) -> str | None:
    """The torch thread count each of ``jobs`` workers gets: None where the user chose one
    (``LANDSCAPE_THREADS``/``OMP_NUM_THREADS``, inherited by the workers), else the free cores
    shared among the workers, at least one each."""
    from .threads import default_threads, requested_threads
    if requested_threads()[0] is not None:
        return None
    return str(max(1, default_threads() // max(1, jobs)))


def run_parallel(commands: list[str], jobs: int, *, logs: list[str | Path], run_command=None,
                 labels: list[str] | None = None, on_done=None, echo=print, env: dict | None = None) -> None:
    """Run ``commands`` (``landscape ...`` lines) ``jobs`` at a time in the order their
    :func:`dependencies` allow, the output of command ``i`` appended to ``logs[i]``.

    ``on_done(i, seconds)`` is called in this process as each step succeeds (the caller's ledger).
    A failing step stops new steps from starting; the running ones finish, then
    :class:`LandscapeError` names the step, its exit code, its log and the log's last line. ``env``
    is added to the workers' environment (and so to their child processes')."""
    if jobs < 1:
        raise LandscapeError(f"`jobs` must be at least 1, got {jobs}")
    if len(logs) != len(commands):
        raise LandscapeError("`logs` needs one log file per command")
    labels = labels or [f"step {i + 1}" for i in range(len(commands))]
    if not commands:
        return
    deps = dependencies(commands)
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    env = dict(env or {})
    threads = worker_threads(jobs)
    if threads is not None:
        env["LANDSCAPE_THREADS"] = threads
    n_workers = min(jobs, len(commands))
    procs = [ctx.Process(target=_worker, args=(tasks, results, run_command, env), daemon=True)
             for _ in range(n_workers)]
    for p in procs:
        p.start()
    pending, running, finished = list(range(len(commands))), {}, set()
    durations: list[float] = []
    failed: list[str] = []
    stopped: list[int] = []
    t_start = time.perf_counter()

    def forward(signum, frame):  # SIGTERM: the workers stop their steps as after Ctrl-C
        stopped.append(signum)
        for p in procs:
            if p.is_alive() and p.pid:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except OSError:
                    pass

    try:
        old = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread
        old = None

    def left() -> str:
        if not durations:
            return ""
        rest = (len(pending) + len(running)) * (sum(durations) / len(durations)) / n_workers
        return f", about {_clock(rest)} left"

    try:
        while pending or running:
            if not failed and not stopped:
                for i in list(pending):
                    if len(running) >= n_workers:
                        break
                    if deps[i] <= finished:
                        pending.remove(i)
                        running[i] = time.perf_counter()
                        Path(logs[i]).parent.mkdir(parents=True, exist_ok=True)
                        tasks.put((i, commands[i], str(logs[i])))
                        echo(f"[{labels[i]}] started: {commands[i]}")
            if not running:
                break
            try:
                i, code, seconds = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if not p.is_alive()]
                if dead and not stopped:
                    names = ", ".join(labels[k] for k in running)
                    failed.append(f"a worker process ended (exit {dead[0].exitcode}) while running {names}")
                    break
                if stopped and all(not p.is_alive() for p in procs):
                    break
                continue
            running.pop(i, None)
            if code == 0:
                finished.add(i)
                durations.append(seconds)
                if on_done is not None:
                    on_done(i, seconds)
                echo(f"[{labels[i]}] done in {seconds:.1f} s ({len(finished)} of {len(commands)} steps, "
                     f"{_clock(time.perf_counter() - t_start)} so far{left()})")
            elif code == 130:
                stopped.append(signal.SIGINT)
            else:
                last = _tail(logs[i], 1)
                failed.append(f"step [{labels[i]}] failed (exit {code}): {commands[i]}; its log is {logs[i]}"
                              + (f", ending: {last}" if last else ""))
    except KeyboardInterrupt:  # Ctrl-C reached the workers too: let the running steps save and stop
        stopped.append(signal.SIGINT)
        try:
            deadline = time.perf_counter() + 600
            while running and time.perf_counter() < deadline and any(p.is_alive() for p in procs):
                try:
                    running.pop(results.get(timeout=0.5)[0], None)
                except queue.Empty:
                    pass
        except KeyboardInterrupt:
            pass
    finally:
        for p in procs:
            if p.is_alive():
                tasks.put(None)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    if stopped:
        raise KeyboardInterrupt
    if failed:
        raise LandscapeError(failed[0])
