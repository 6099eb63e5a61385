"""The one rule for every file landscape writes: never replace a file this run did not make.

Every write of the library goes through :func:`landscape.checkpoint.atomic_target` (checkpoints,
result tables, figures, reports, direction files, adversarial examples), and that calls
:func:`check_replace` first. A file that already exists may be replaced only when

1. this process claimed it (:func:`claim`) or wrote it already: the trainer claims its own run
   folder's ``checkpoint.pt``, ``metrics.csv`` and ``final.json`` once it has checked that the
   folder holds the same run, and the CLI claims its output paths after checking them before any
   work (:func:`claim_outputs`);
2. it is an earlier result of the *same* command (:func:`made_by`): a result table's JSON records
   the command that wrote it (``meta.command``), so ``landscape eval`` replaces an earlier ``eval``
   result but never a ``surface`` result, a checkpoint or a file landscape did not write; figures and
   CSVs go with the JSON of the same stem; names starting with ``.`` (partial results, done-lists)
   are landscape's own bookkeeping;
3. replacing was asked for: ``overwrite=True`` at the call, or :func:`allow_overwrite` (the CLI's
   ``--overwrite``); the latter never replaces a file this process read as an input (``eval CK
   --save-adv CK --overwrite`` is still refused).

Anything else raises :class:`OverwriteRefused`, one sentence naming the file. A replacement keeps
the file's permission bits.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from .errors import LandscapeError

#: paths this process may replace: key -> strong (strong claims may replace a file read as input)
_claimed: dict[str, bool] = {}
#: paths this process read as inputs (checkpoints, state dicts, direction files)
_inputs: set[str] = set()
_overwrite: ContextVar[bool] = ContextVar("landscape_overwrite", default=False)
_command: ContextVar[str | None] = ContextVar("landscape_command", default=None)

ANY = "*"            # made_by(): bookkeeping any landscape command may replace
MARKER = "written by landscape"  # in the reports landscape writes


class OverwriteRefused(LandscapeError):
    """Writing would replace a file this run did not make."""

    def __init__(self, path, reason: str, arg: str | None = None, overwritable: bool = True):
        self.path, self.reason, self.overwritable = Path(path), reason, overwritable
        self.lib_alt = ", or pass overwrite=True" if overwritable else ""
        self.arg = arg
        where = f"another `{arg}`" if arg else "another path"
        super().__init__(f"refusing to replace {path}: {reason} (choose {where}{self.lib_alt})")

    def cli_message(self) -> str:
        msg = str(self) if self.arg else str(self).replace("another path", "another output path")
        return msg.replace(self.lib_alt, ", or add --overwrite to replace it") if self.lib_alt else msg


def _key(path) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def claim(*paths, strong: bool = True) -> None:
    """Mark ``paths`` as made for this run: later writes may replace them."""
    for p in paths:
        if p is not None:
            k = _key(p)
            _claimed[k] = _claimed.get(k, False) or strong


def note_input(path) -> None:
    """Record that this process read ``path`` as an input (it is never replaced by --overwrite)."""
    _inputs.add(_key(path))


def forget(*paths) -> None:
    """Drop claims and input records for ``paths`` (tests; long-lived processes)."""
    for p in paths:
        _claimed.pop(_key(p), None)
        _inputs.discard(_key(p))


@contextmanager
def allow_overwrite(on: bool = True):
    """Within the block, existing files that are not inputs of this process may be replaced."""
    token = _overwrite.set(bool(on))
    try:
        yield
    finally:
        _overwrite.reset(token)


@contextmanager
def producing(command: str | None):
    """Within the block, earlier results of ``command`` (a CLI command name) may be replaced."""
    token = _command.set(command)
    try:
        yield
    finally:
        _command.reset(token)


def current_command() -> str | None:
    return _command.get()


# ---------------------------------------------------------------------------- recognisers
def _read_small_json(path: Path):
    """The parsed JSON at ``path``, or None (missing, unreadable, not JSON, or over 64 MiB)."""
    try:
        if path.stat().st_size > 64 * 2 ** 20:
            return None
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _json_owner(path: Path, data=None) -> set[str]:
    data = _read_small_json(path) if data is None else data
    meta = data.get("meta") if isinstance(data, dict) else None
    if isinstance(data, dict) and {"recipe", "scale", "steps"} <= set(data):  # reproduce.json
        return {"reproduce"}
    if not isinstance(meta, dict):
        return set()
    owners = set()
    cmd = meta.get("command")
    if isinstance(cmd, str):
        words = cmd.split()
        if len(words) >= 2 and words[0] == "landscape":
            owners.add(words[1])
    return owners


def _figure_owner(path: Path) -> set[str]:
    """Owners of the tables beside figure ``path`` that name it (``meta.figure``)."""
    owners = set()
    for js in sorted(path.parent.glob("*.json"))[:200]:
        data = _read_small_json(js)
        meta = data.get("meta") if isinstance(data, dict) else None
        if isinstance(meta, dict) and meta.get("figure") == path.name:
            owners |= _json_owner(js, data)
    return owners


def _torch_owner(path: Path) -> set[str]:
    from .checkpoint import read_weights_only
    try:
        data = read_weights_only(path, note=False)
    except LandscapeError:
        return set()
    if not isinstance(data, dict):
        return set()
    fmt = data.get("format")
    if fmt == "landscape-checkpoint":
        extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
        return {"import"} if extra.get("imported_from") and not extra.get("run") else set()
    if fmt == "landscape-directions":
        return {"surface"}
    if fmt == "landscape-adversarial-examples" or {"x_adv", "indices", "attack"} <= set(data):
        return {"eval"}
    return set()


def made_by(path) -> set[str]:
    """The landscape commands whose earlier result ``path`` is (empty: not recognised as one)."""
    p = Path(path)
    if p.name.startswith("."):
        return {ANY}
    suffix = p.suffix.lower()
    if suffix == ".json":
        return _json_owner(p)
    if suffix == ".csv":
        return _json_owner(p.with_suffix(".json"))
    if suffix in (".png", ".pdf", ".svg"):
        # a figure goes with the JSON of its stem, or with the table that names it (meta.figure: the
        # combined figures of `reproduce`, e.g. co.png beside co_curves.json)
        return _json_owner(p.with_suffix(".json")) or _figure_owner(p)
    if suffix in (".md", ".html"):
        try:
            with open(p, "rb") as f:
                head = f.read(4096).decode("utf-8", "replace")
                f.seek(max(0, p.stat().st_size - 256))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            return set()
        first = head.lstrip().splitlines()[0] if head.strip() else ""
        if MARKER in tail or first.startswith("# landscape ") or "<title>landscape " in head:
            return {"report", "reproduce"}
        return set()
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError:
        return set()
    if magic[:2] == b"PK":  # torch's zip format
        return _torch_owner(p)
    return set()


def check_replace(path, *, arg: str | None = None, owned=None, overwrite: bool = False) -> None:
    """Raise :class:`OverwriteRefused` unless writing ``path`` keeps the rule (module docstring).

    ``arg`` names the argument that chose the path (for the message); ``owned(path) -> bool`` may
    recognise an earlier result of the caller's own; ``overwrite=True`` replaces anything."""
    p = Path(path)
    if not os.path.lexists(p):
        return
    if p.is_dir():
        raise LandscapeError(f"{p} is a directory; give a file path" + (f" for `{arg}`" if arg else ""))
    if overwrite:
        return
    k = _key(p)
    if _claimed.get(k):
        return
    if k in _inputs:
        raise OverwriteRefused(p, "it is an input of this command", arg, overwritable=False)
    if k in _claimed or _overwrite.get():
        return
    if owned is not None and owned(p):
        return
    owners = made_by(p)
    cmd = _command.get()
    if ANY in owners or (cmd is not None and cmd in owners):
        return
    if owners:
        what = " or ".join(f"`landscape {o}`" for o in sorted(owners))
        raise OverwriteRefused(p, f"it was written by {what}" + (f", not `landscape {cmd}`" if cmd else ""), arg)
    if _looks_like_weights(p):
        reason = "it is an existing checkpoint or weights file"
    else:
        reason = "it was not written by " + (f"`landscape {cmd}`" if cmd else "this run")
    raise OverwriteRefused(p, reason, arg)


def _looks_like_weights(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return f.read(2) == b"PK"
    except OSError:
        return False


def claim_outputs(paths, arg: str | None = None) -> None:
    """Check output paths before any work and claim them for this run (weakly: an input of this
    process is still refused at write time). ``paths`` is an iterable of paths, or a mapping
    ``{arg: path}`` when the paths come from different arguments."""
    items = paths.items() if isinstance(paths, dict) else ((arg, p) for p in paths)
    items = [(a, p) for a, p in items if p is not None]
    for a, p in items:
        check_replace(p, arg=a)
    for folder in dict.fromkeys(_nearest_folder(p, a) for a, p in items):
        _probe_writable(*folder)
    for _, p in items:
        claim(p, strong=False)


def _nearest_folder(path, arg):
    """``(folder, arg)``: the nearest existing ancestor of ``path``, where its folders would be made."""
    d = Path(path).absolute().parent
    while not d.exists() and d != d.parent:
        d = d.parent
    if not d.is_dir():
        raise LandscapeError(f"cannot write {path}: {d} is a file, not a folder; choose another "
                             + (f"`{arg}`" if arg else "output path"))
    return d, arg


def _probe_writable(folder: Path, arg) -> None:
    """Create and remove a hidden file in ``folder``, so that an output that cannot be written is
    refused before the work, not after it."""
    import tempfile
    try:
        fd, name = tempfile.mkstemp(prefix=".landscape-probe-", dir=folder)
    except OSError as e:
        raise LandscapeError(f"cannot write into {folder} ({e.strerror or e}); choose another "
                             + (f"`{arg}`" if arg else "output path")) from None
    os.close(fd)
    os.unlink(name)


def ensure_writable(path, arg: str | None = None, what: str = "file") -> None:
    """Refuse a read-only (or immutable) existing file that a run would have to replace."""
    p = Path(path)
    if not p.exists():
        return
    if not (p.stat().st_mode & 0o200) or not os.access(p, os.W_OK):
        raise LandscapeError(f"{p} is read-only; make it writable (chmod u+w) to continue, or choose another "
                             + (f"`{arg}`" if arg else what))


__all__ = ["OverwriteRefused", "allow_overwrite", "check_replace", "claim", "claim_outputs", "current_command",
           "ensure_writable", "made_by", "note_input", "producing"]
