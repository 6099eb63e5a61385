"""Pieces shared by the models: the normalisation each model carries inside itself."""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; inputs stay in [0,1] outside the model.

    The statistics are non-persistent buffers: they are part of the model's metadata in a checkpoint
    (the dataset's mean and std), not of its state dict, so foreign state dicts load unchanged.
    """

    def __init__(self, mean, std, channels: int | None = None):
        super().__init__()
        if mean is None:
            mean = [0.0] * (channels or 1)
        if std is None:
            std = [1.0] * (channels or 1)
        mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, x):
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def activation(name: str) -> nn.Module:
    name = name.lower()
    if name == "relu":
        return nn.ReLU()
    if name.startswith("softplus"):
        beta = float(name[len("softplus"):] or 1)
        return nn.Softplus(beta=beta)
    from ..errors import LandscapeError
    raise LandscapeError(f"unknown activation {name!r}; use relu or softplus (softplusB for beta B)")
