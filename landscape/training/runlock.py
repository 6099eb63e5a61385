"""One training process per run folder.

:func:`locks_run_folder` wraps :func:`landscape.training.trainer.train`: while a process trains into
``out/``, the folder holds a lock file ``out/.lock`` with the process's pid, host, start time and
command. A second ``train`` into the same folder (the same command started twice, or another seed)
stops at once with one line naming the holder, before it reads or writes anything in the folder.
The lock is an advisory ``flock`` on that file where the platform has one, so a process killed with
SIGKILL leaves no live lock: the next run finds the file, sees that its process is gone (a stale
lock), and takes it over. Elsewhere the lock is the file itself (created exclusively) and a lock
whose pid no longer runs on this host is stale. The file is removed when the process finishes,
fails or is interrupted.

Under the lock the run folder's own files (``checkpoint.pt``, ``metrics.csv``, ``final.json``) are
claimed for this run (:mod:`landscape.outputs`): the trainer replaces them only after checking that
the folder holds the same run. A read-only checkpoint is refused (resuming would replace it), and
result files without a checkpoint beside them are not taken over.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import LandscapeError
from ..outputs import claim, ensure_writable

LOCK = ".lock"
RUN_FILES = ("checkpoint.pt", "metrics.csv", "final.json")

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS
    fcntl = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _describe(info: dict) -> str:
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    cmd = info.get("command") or ""
    return f"process {info.get('pid', '?')} on {info.get('host', '?')}, started {when}" + (f": {cmd}" if cmd else "")


class RunLock:
    """``with RunLock(folder):`` holds ``folder/.lock`` (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.fd: int | None = None
        self.stale: dict | None = None

    def _read(self) -> dict:
        try:
            text = self.path.read_text()
            info = json.loads(text) if text.strip() else {}
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _busy(self, info: dict):
        raise LandscapeError(f"run folder {self.folder} is in use by another training ({_describe(info)}); "
                             "wait for it to finish, or choose another `out` folder")

    def _mine(self) -> str:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                           "command": " ".join(["landscape" if Path(sys.argv[0]).name == "landscape" else sys.argv[0],
                                                *sys.argv[1:]]) if sys.argv else ""})

    def acquire(self) -> "RunLock":
        if self.folder.exists() and not self.folder.is_dir():
            raise LandscapeError(f"{self.folder} is a file, not a run folder; choose another `out`")
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            if fcntl is not None:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    self._busy(self._read())
                try:  # the file we locked must still be the one at the path (not unlinked by its last holder)
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                old = self._read()
                self.stale = old if old.get("pid") else None
                os.ftruncate(fd, 0)
                os.write(fd, self._mine().encode())
                self.fd = fd
                return self
            try:  # no flock: the file itself is the lock
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                old = self._read()
                pid = old.get("pid")
                if isinstance(pid, int) and (old.get("host") != socket.gethostname() or _alive(pid)):
                    self._busy(old)
                if not old and time.time() - self.path.stat().st_mtime < 5:
                    time.sleep(0.2)  # another process is just writing it
                    continue
                self.stale = old
                self.path.unlink(missing_ok=True)
                continue
            os.write(fd, self._mine().encode())
            self.fd = fd
            return self
        raise LandscapeError(f"could not lock the run folder {self.folder}; try again")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def claim_run_files(out: str | Path) -> None:
    """Claim the run folder's own files for this run (see the module docstring); refuse a read-only
    checkpoint and result files that no checkpoint accounts for."""
    out = Path(out)
    ck = out / RUN_FILES[0]
    if ck.exists():
        for name in RUN_FILES:
            ensure_writable(out / name, arg="out")
        claim(*(out / name for name in RUN_FILES))
        return
    for name in RUN_FILES[1:]:
        if (out / name).exists():
            raise LandscapeError(f"{out / name} exists but {out} holds no {RUN_FILES[0]}: it is not a run this "
                                 "command can continue; choose another `out` folder")
    claim(ck)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, innermost first (what ``mkdir(parents=True)``
    will create), so that a run failing before it writes anything leaves no empty folders behind."""
    out, d = [], folder.absolute()
    while not d.exists() and d != d.parent:
        out.append(d)
        d = d.parent
    return out


def locks_run_folder(train):
    """Decorate ``train(recipe, *, out=..., ...)``: lock ``out`` and claim its files while it runs
    (on the main process only; under torchrun the other ranks write nothing)."""

    @functools.wraps(train)
    def locked(*args, **kwargs):
        out = kwargs.get("out")
        from ..distributed import from_env
        if out is None or not from_env().is_main:
            return train(*args, **kwargs)
        folder = Path(out)
        created = _missing_folders(folder)
        lock = RunLock(folder).acquire()
        try:
            if lock.stale:
                print(f"landscape: took over a stale lock in {folder} ({_describe(lock.stale)}, no longer running)",
                      file=sys.stderr)
            claim_run_files(folder)
            return train(*args, **kwargs)
        finally:
            lock.release()
            for d in created:  # the folders this run made, innermost first: only those it left empty
                try:
                    d.rmdir()
                except OSError:
                    break

    return locked


__all__ = ["LOCK", "RunLock", "claim_run_files", "locks_run_folder"]
