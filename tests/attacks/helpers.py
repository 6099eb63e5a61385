"""Tiny models for attack tests."""

import torch
from torch import nn


def linear_model(in_shape=(3, 5, 5), classes=3, seed=0, scale=1.0):
    """A linear classifier: for it the worst single-pixel change is at a colour-cube corner (the margin
    is concave in the pixel's values), so exhaustive corner search is an exact k=1 reference."""
    torch.manual_seed(seed)
    c, h, w = in_shape
    lin = nn.Linear(c * h * w, classes)
    with torch.no_grad():
        lin.weight.mul_(scale)
    return nn.Sequential(nn.Flatten(), lin).eval()


def bn_model(in_shape=(1, 6, 6), classes=3, seed=0):
    """A small conv net with BatchNorm and Dropout (so a wrong mode changes its outputs)."""
    torch.manual_seed(seed)
    c, h, w = in_shape
    return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.3),
                         nn.Flatten(), nn.Linear(4 * h * w, classes))
