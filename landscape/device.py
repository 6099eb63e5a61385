"""Device selection shared by every command (``--device auto|cpu|cuda``)."""

from __future__ import annotations

import os

import torch

from .errors import LandscapeError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Return the torch device for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` picks CUDA when it is available and the CPU otherwise; asking for CUDA on a machine
    without it is a :class:`LandscapeError`.
    """
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LandscapeError(f"`device` {name} was asked for but CUDA is not available on this machine")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise LandscapeError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")


def channels_last_default(device: torch.device | str | None = None) -> bool:
    """Whether convolutional models run in the ``channels_last`` layout where nobody chose: a new
    training run's model, and the copy an eval-mode attack makes on the CPU
    (:func:`landscape.attacks.base.attack_model`). Yes on CUDA and on the CPU (small-cnn trains
    1.2-1.3x faster on this project's 2-core CPU, attacks run 1.2-1.5x faster; benchmarks/RESULTS.md),
    unless ``LANDSCAPE_CHANNELS_LAST=0`` (the layout of the versions before, bit for bit)."""
    env = os.environ.get("LANDSCAPE_CHANNELS_LAST", "").strip()
    if env:
        if env not in ("0", "1"):
            raise LandscapeError(f"LANDSCAPE_CHANNELS_LAST must be 0 or 1, got {env!r}")
        if env == "0":
            return False
    kind = getattr(device, "type", str(device or "cpu").split(":")[0])
    return kind in ("cpu", "cuda")
