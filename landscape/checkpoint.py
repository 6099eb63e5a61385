"""Checkpoints: one file, the state dict plus plain metadata.

A checkpoint is a ``dict`` of tensors and plain Python values only, so it loads with
``torch.load(path, weights_only=True)``; a file holding arbitrary pickled objects is refused. It
carries everything needed to rebuild the model, its dataset and its threat model with no flags:

=============  ===================================================================================
key            value
=============  ===================================================================================
format         ``"landscape-checkpoint"``; ``version``: 1
arch           ``{"name": "small-cnn", "kwargs": {...}}`` (the arguments of ``build_model``)
dataset        ``ImageDataset.describe()``: name, shape, classes, mean/std, data_dir
threat         ``{"norm": "l0", "eps": 20.0}`` or None (a clean model)
recipe         the training recipe as a plain dict (None for imported models)
epoch, step    epochs completed, and steps done in the current epoch (0 at an epoch boundary)
state_dict     the model's weights
optimizer      optimiser / scheduler state, RNG states, soft labels: ``train_state`` (optional)
metrics        list of per-epoch metric dicts
=============  ===================================================================================

Writes are atomic: a temporary file in the same folder, flushed and fsynced, then renamed over the
target, so an interrupted write never destroys the previous checkpoint; and no write replaces a
file that this run did not make (:mod:`landscape.outputs`).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .errors import LandscapeError
from .models import build_model
from .threat import ThreatModel

FORMAT = "landscape-checkpoint"
VERSION = 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_target(path: str | Path, suffix: str = ".tmp", *, arg: str | None = None, owned=None,
                  overwrite: bool = False):
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``, on any failure
    it is removed and ``path`` is untouched.

    Before anything is written, :func:`landscape.outputs.check_replace` enforces the one rule for
    every file landscape writes: an existing ``path`` is replaced only if this run made it, it is an
    earlier result of the same command, or replacing was asked for (``overwrite=True``); ``arg`` names
    the argument that chose the path for the error message. A replaced file keeps its permission
    bits; a new one gets those an ordinary file would get."""
    from .outputs import check_replace, claim
    path = Path(path)
    check_replace(path, arg=arg, owned=owned, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    claim(path)


def atomic_save(obj, path: str | Path, *, arg: str | None = None, overwrite: bool = False) -> Path:
    """``torch.save`` to ``path`` through a temporary file and a rename (see :func:`atomic_target`)."""
    with atomic_target(path, arg=arg, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, arg: str | None = None, overwrite: bool = False) -> Path:
    """Write a text file atomically (results beside checkpoints use it too; see :func:`atomic_target`)."""
    with atomic_target(path, arg=arg, overwrite=overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)


def read_weights_only(path: str | Path, map_location="cpu", *, note: bool = True):
    """``torch.load(weights_only=True)`` with every failure turned into one clear error. The file is
    recorded as an input of this process (``note=False``: not), so that no write replaces it."""
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise LandscapeError(f"{path} is a directory, not a checkpoint file")
    if note:
        from .outputs import note_input
        note_input(path)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as e:
        raise LandscapeError(f"cannot read {path}: {e.strerror or e}") from None
    # torch.save writes a zip archive ("PK"); its legacy format and plain pickles start with the
    # pickle PROTO opcode (0x80). Anything else (a text file, an image, an empty file) is not a checkpoint.
    if not head:
        raise LandscapeError(f"{path} is empty, not a checkpoint")
    if head[:2] != b"PK" and head[:1] != b"\x80":
        raise LandscapeError(f"{path} is not a checkpoint (not a file written by torch.save)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Unsupported global" in msg or "GLOBAL" in msg:
            raise LandscapeError(f"{path} holds arbitrary pickled objects; refusing to load it "
                                 "(only plain tensors and values are accepted)") from None
        raise LandscapeError(f"{path} is not a readable checkpoint (corrupt or truncated)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, KeyError, IndexError):
        raise LandscapeError(f"{path} is not a readable checkpoint (corrupt or truncated)") from None


class Checkpoint:
    """A loaded checkpoint: ``ck.model()``, ``ck.threat``, ``ck.dataset``, ``ck.recipe``, ``ck.metrics``."""

    def __init__(self, data: dict, path: str | Path | None = None):
        self.data = data
        self.path = Path(path) if path else None

    # ---------------------------------------------------------------- constructors
    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> "Checkpoint":
        data = read_weights_only(path, map_location)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            hint = ""
            if isinstance(data, dict) and ("state_dict" in data or all(isinstance(v, torch.Tensor) for v in data.values())):
                hint = "; if it is a state dict trained elsewhere, convert it with `landscape import FILE --arch ...`"
            raise LandscapeError(f"{path} is not a landscape checkpoint{hint}")
        if data.get("version", 0) > VERSION:
            raise LandscapeError(f"{path} was written by a newer landscape (format version {data.get('version')})")
        for key in ("arch", "state_dict", "dataset"):
            if key not in data:
                raise LandscapeError(f"{path} is a damaged landscape checkpoint (no {key!r})")
        return cls(data, path)

    @classmethod
    def create(cls, model: nn.Module, *, arch: str, model_kwargs: dict, dataset: dict,
               threat: ThreatModel | dict | None = None, recipe: dict | None = None, epoch: int = 0,
               step: int = 0, metrics: list | None = None, train_state: dict | None = None,
               extra: dict | None = None) -> "Checkpoint":
        model = model.module if hasattr(model, "module") else model
        model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
        if isinstance(threat, ThreatModel):
            threat = threat.to_dict()
        data = {
            "format": FORMAT, "version": VERSION,
            "arch": {"name": arch, "kwargs": dict(model_kwargs)},
            "dataset": dict(dataset), "threat": threat, "recipe": recipe,
            "epoch": int(epoch), "step": int(step),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "metrics": list(metrics or []),
            "train_state": train_state,
            "extra": dict(extra or {}),
            "torch_version": str(torch.__version__),
        }
        return cls(data)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the checkpoint atomically; an existing file this run did not make is refused unless
        ``overwrite=True`` (see :mod:`landscape.outputs`)."""
        self.path = atomic_save(self.data, path, arg="out", overwrite=overwrite)
        return self.path

    # ---------------------------------------------------------------- accessors
    @property
    def arch(self) -> str:
        return self.data["arch"]["name"]

    @property
    def model_kwargs(self) -> dict:
        return dict(self.data["arch"]["kwargs"])

    @property
    def dataset(self) -> dict:
        return dict(self.data["dataset"])

    @property
    def threat(self) -> ThreatModel | None:
        t = self.data.get("threat")
        return ThreatModel.from_dict(t) if t else None

    @property
    def recipe(self) -> dict | None:
        return self.data.get("recipe")

    @property
    def metrics(self) -> list:
        return list(self.data.get("metrics") or [])

    @property
    def epoch(self) -> int:
        return int(self.data.get("epoch", 0))

    @property
    def step(self) -> int:
        return int(self.data.get("step", 0))

    @property
    def state_dict(self) -> dict:
        return self.data["state_dict"]

    @property
    def train_state(self) -> dict | None:
        return self.data.get("train_state")

    def model(self, device="cpu", eval: bool = True) -> nn.Module:
        """Rebuild the model with its weights, on ``device``, in eval mode by default."""
        try:
            m = build_model(self.arch, **self.model_kwargs)
        except LandscapeError as e:
            raise LandscapeError(f"{self.path or 'checkpoint'}: its stored architecture does not fit "
                                 f"(damaged or edited metadata?): {e}") from None
        try:
            m.load_state_dict(self.state_dict)
        except RuntimeError as e:
            why = state_dict_mismatch(m.state_dict(), self.state_dict) or (str(e).splitlines() or ["mismatch"])[0]
            kw = ", ".join(f"{k}={v}" for k, v in self.model_kwargs.items() if k not in ("mean", "std"))
            raise LandscapeError(f"{self.path or 'checkpoint'}: the weights do not fit {self.arch} ({kw}): {why}") from None
        m.to(device)
        return m.eval() if eval else m

    def load_dataset(self, split: str = "test", data_dir: str | None = None):
        """The dataset this checkpoint was trained on (``split`` of it)."""
        from .data import load_dataset
        ds = self.dataset
        stored = ds.get("data_dir")
        if data_dir is None and stored and Path(stored).is_dir():
            data_dir = stored  # where it was trained, if that folder is still here; else the usual search
        return load_dataset(ds["name"], split, data_dir=data_dir,
                            image_size=ds.get("image_size") or ds.get("height"))

    def summary(self) -> str:
        t = self.threat
        return (f"{self.arch} on {self.dataset.get('name')}, threat {t if t else 'none'}, epoch {self.epoch}"
                + (f" (+{self.step} steps)" if self.step else ""))


def load_checkpoint(path: str | Path, map_location="cpu") -> Checkpoint:
    """Load and validate a landscape checkpoint (see :class:`Checkpoint`)."""
    return Checkpoint.load(path, map_location)


def state_dict_mismatch(expected: dict, given: dict, limit: int = 6) -> str:
    """Say how ``given`` differs from the ``expected`` state dict: missing and unexpected key names and
    shape mismatches (the first ``limit`` of each, with the count of the rest); '' if they fit."""
    def names(keys):
        keys = sorted(keys)
        more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
        return ", ".join(keys[:limit]) + more

    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f"{k} {list(given[k].shape)} in the file, {list(expected[k].shape)} in the model"
              for k in expected if k in given and hasattr(given[k], "shape") and given[k].shape != expected[k].shape]
    parts = []
    if missing:
        parts.append(f"missing keys {names(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {names(unexpected)}")
    if shapes:
        more = f" and {len(shapes) - limit} more" if len(shapes) > limit else ""
        parts.append("shape mismatch " + "; ".join(shapes[:limit]) + more)
    return "; ".join(parts)


def import_state_dict(src: str | Path, out: str | Path, *, arch: str, dataset: dict,
                      model_kwargs: dict | None = None, threat: ThreatModel | None = None,
                      key: str | None = None, overwrite: bool = False) -> Checkpoint:
    """Wrap a state dict trained elsewhere into a landscape checkpoint.

    ``src`` is read with ``weights_only=True``; the weights are taken from ``key`` if given, else from
    ``state_dict``/``model``/``net`` if present, else from the top level. A ``module.`` prefix (from
    DataParallel) is stripped. The weights must fit ``arch`` exactly. An existing ``out`` is refused
    (before anything is read) unless it is an earlier import or ``overwrite=True``.
    """
    from .outputs import check_replace
    if Path(out).exists() and Path(out).resolve() == Path(src).resolve():
        raise LandscapeError(f"{out} is the state dict being imported; choose another `out`")
    check_replace(out, arg="out", overwrite=overwrite)
    raw = read_weights_only(src)
    if not isinstance(raw, dict):
        raise LandscapeError(f"{src} does not hold a state dict")
    sd = None
    for k in ([key] if key else ["state_dict", "model", "net", "model_state_dict"]):
        if k in raw and isinstance(raw[k], dict):
            sd = raw[k]
            break
    if sd is None:
        if key:
            raise LandscapeError(f"{src} has no key {key!r}; keys: {', '.join(map(str, list(raw)[:10]))}")
        sd = raw
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise LandscapeError(f"{src} does not hold a state dict of tensors")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    kwargs = dict(model_kwargs or {})
    ck = Checkpoint.create(build_model(arch, **kwargs), arch=arch, model_kwargs=kwargs, dataset=dataset,
                           threat=threat, recipe=None, extra={"imported_from": str(src)})
    ck.data["state_dict"] = sd
    try:
        ck.model()  # raises a clear error if the weights do not fit
    except LandscapeError as e:
        msg = str(e)
        raise LandscapeError(f"{src}:" + msg.split(":", 1)[1] if msg.startswith("checkpoint:") else msg) from None
    ck.save(out, overwrite=overwrite)
    return ck
