"""Resumable batch loops: the finished batches of a long attack loop, kept on disk as they end.

:class:`BatchStore` holds one file per finished batch in a folder (written atomically), beside
``key.json``: a hash of everything that changes the batches' results (the caller's configuration:
weights, data, attack, threat, batch size, device). Reading back gives the batches of the same key
in order, contiguous from the first; a folder of another key is reported on stderr and cleared, never
mixed in. The caller removes the folder once its loop is complete.

Used by :func:`landscape.evaluation.evaluate` (``partial=``; ``landscape eval`` and the trainer's
final evaluation), :func:`landscape.attacks.base.run_attack` (``partial=``; the attacks of
``landscape interp`` and ``landscape overlap``) and the Hessian's perturbation search
(``landscape.analysis.api.hessian_operator_for``). The hashes of configurations and tensors
(:func:`config_key`, :func:`tensor_digest`) are the ones the surfaces' partial files use too. Each record also carries torch's generator state after its batch
(:func:`rng_state`), which the resumed loop restores, so an attack without a seed of its own draws
what it would have drawn uninterrupted. One file per batch, not one growing file: rewriting all the
adversarial examples after every batch would cost quadratic I/O on 10,000 CIFAR-10 images.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Mapping

import torch

from .errors import LandscapeError


def config_key(config: Mapping) -> str:
    """A stable hash of a JSON-able configuration (the key of a store; surfaces' partial files too)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:24]


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """A hash of named tensors (weights or directions), for configuration keys."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].detach().cpu().contiguous().to(torch.float32).numpy().tobytes())
    return h.hexdigest()[:24]


def model_digest(model: torch.nn.Module) -> str:
    """A hash of a model's parameters and buffers (:func:`tensor_digest` of its state dict)."""
    return tensor_digest(model.state_dict())


def digest(t: torch.Tensor) -> str:
    """A hash of one tensor's raw bytes (images, labels: no float copy of a uint8 dataset)."""
    raw = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()  # any dtype, bf16 too
    return hashlib.sha256(raw).hexdigest()[:24]


def rng_state(device) -> dict:
    """torch's generator state on the CPU (and on ``device`` where it is a GPU)."""
    device = torch.device(device)
    state = {"cpu": torch.random.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device) -> None:
    device = torch.device(device)
    torch.random.set_rng_state(state["cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


class BatchStore:
    """The finished batches of one loop in ``folder`` (see the module docstring). Records are dicts of
    tensors and plain values with ``start`` (the batch's first example) and ``n`` (its size)."""

    KEY = "key.json"

    def __init__(self, folder, config: dict, what: str = "run"):
        self.folder = Path(folder)
        self.config = config
        self.what = what
        self.key = config_key(config)

    def load(self) -> list[dict]:
        """The saved batches in order, contiguous from the first; [] when there are none or they are of
        another configuration (then the folder is cleared, with a warning)."""
        out, nxt = [], 0
        for f, r in self._read():
            if r.get("start") != nxt:   # after a gap: keep the run before it
                f.unlink()
                continue
            out.append(r)
            nxt += r["n"]
        return out

    def load_map(self) -> dict[int, dict]:
        """The saved batches by their first example, in any order (loops whose batches are independent
        and may be split across ranks)."""
        return {int(r["start"]): r for _, r in self._read()}

    def _read(self) -> list[tuple[Path, dict]]:
        if not self.folder.exists():
            return []
        if not (self.folder / self.KEY).exists():
            self.remove()               # nothing readable (stopped before its first batch was saved)
            return []                   # (only a store's own files go: see remove)
        from .checkpoint import read_weights_only
        files = sorted(self.folder.glob("batch_*.pt"))
        try:
            key = json.loads((self.folder / self.KEY).read_text()).get("key")
            recs = [read_weights_only(f, note=False) for f in files]
        except (OSError, ValueError, LandscapeError):
            print(f"landscape: warning: ignoring unreadable partial results in {self.folder}; starting over",
                  file=sys.stderr)
            self.remove()
            return []
        if key != self.key:
            print(f"landscape: warning: {self.folder} holds partial results of a different {self.what}; "
                  "starting over (they will be replaced)", file=sys.stderr)
            self.remove()
            return []
        out = []
        for f, r in zip(files, recs):
            if isinstance(r, dict) and isinstance(r.get("start"), int) and isinstance(r.get("n"), int):
                out.append((f, r))
            else:
                f.unlink()
        return out

    def save(self, rec: dict) -> None:
        from .checkpoint import atomic_save, atomic_write_text
        if not (self.folder / self.KEY).exists():
            atomic_write_text(self.folder / self.KEY, json.dumps({"key": self.key, "config": self.config},
                                                                default=str, indent=1))
        atomic_save(rec, self.folder / f"batch_{rec['start']:09d}.pt")

    def remove(self) -> None:
        """Remove the store's own files (``key.json``, ``batch_*.pt`` and their temporary files) and the
        folder if that leaves it empty: a file someone else put there is never deleted."""
        clear_stores(self.folder)


def _own(p: Path) -> bool:
    n = p.name
    return p.is_file() and (n == BatchStore.KEY or (n.startswith("batch_") and n.endswith(".pt"))
                            or n.startswith((f".{BatchStore.KEY}.", ".batch_")))  # atomic writes' temporaries


def clear_stores(folder) -> None:
    """Remove every store under ``folder`` (its own files only, see :meth:`BatchStore.remove`), then the
    folders that leaves empty, ``folder`` included."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for sub in sorted((p for p in folder.iterdir() if p.is_dir()), reverse=True):
        clear_stores(sub)
    for f in folder.iterdir():
        if _own(f):
            f.unlink(missing_ok=True)
    remove_empty(folder)


def remove_empty(folder) -> None:
    """Remove ``folder`` if it exists and is empty (the parent of several loops' stores)."""
    try:
        Path(folder).rmdir()
    except OSError:
        pass


__all__ = ["BatchStore", "clear_stores", "config_key", "digest", "model_digest", "remove_empty", "rng_state", "set_rng_state",
           "tensor_digest"]
