"""Device selection shared by every command (``--device auto|cpu|cuda``)."""

from __future__ import annotations

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
