"""Models by name. Every model takes inputs in [0,1] and normalises them itself.

``build_model(arch, **kwargs)`` with ``arch`` one of :data:`ARCHS`; the keyword arguments are plain
values (stored in checkpoints) and the model is rebuilt from them alone.
"""

from __future__ import annotations

import inspect
import math

from torch import nn

from ..errors import LandscapeError
from .preact_resnet import PreActResNet18
from .small_cnn import SmallCNN

ARCHS = {"small-cnn": SmallCNN, "preact-resnet18": PreActResNet18}


def build_model(arch: str, **kwargs) -> nn.Module:
    key = str(arch).strip().lower().replace("_", "-")
    if key not in ARCHS:
        raise LandscapeError(f"unknown model {arch!r}; choose one of {', '.join(ARCHS)}")
    cls = ARCHS[key]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(kwargs) - accepted
    if unknown:
        raise LandscapeError(f"model {key} does not take {', '.join(sorted(unknown))}; it takes {', '.join(sorted(accepted))}")
    for name in ("in_channels", "num_classes", "image_size", "width", "hidden"):
        v = kwargs.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise LandscapeError(f"model {key}: {name} must be a positive number, got {v!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LandscapeError(f"model {key} cannot be built with {kwargs_text(kwargs)}: {first}") from None


def kwargs_text(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in ("mean", "std")) or "no arguments"


def model_kwargs_for(arch: str, dataset_meta: dict, **overrides) -> dict:
    """The keyword arguments that fit ``arch`` to a dataset described by ``ImageDataset.describe()``."""
    kw = {"in_channels": dataset_meta["channels"], "num_classes": dataset_meta["num_classes"],
          "mean": list(dataset_meta["mean"]), "std": list(dataset_meta["std"]),
          "image_size": dataset_meta["height"]}
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return kw


__all__ = ["ARCHS", "PreActResNet18", "SmallCNN", "build_model", "model_kwargs_for"]
