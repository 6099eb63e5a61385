"""Per-example attack losses (larger = more adversarial), shared by the attacks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` per example: negative exactly when the example is misclassified."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return z_y - other


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The negative margin (an unnormalised DLR loss): positive once the example is misclassified."""
    return -margin(logits, y)


def adaptive_loss(logits: torch.Tensor, y: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Cross-entropy where the model is confident, the negative margin where its margin < ``threshold``.

    This is the loss of sparse-PGD (Zhong & Liu 2024): the margin gives a useful gradient near the
    decision boundary, where cross-entropy saturates less informatively.
    """
    with torch.no_grad():
        low = margin(logits, y) < threshold
    return torch.where(low, margin_loss(logits, y), ce_loss(logits, y))


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference-of-logits-ratio loss (Croce & Hein 2020), larger = more adversarial."""
    srt, _ = logits.sort(dim=1)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    top_is_y = (logits.argmax(1) == y).to(logits.dtype)
    other = srt[:, -2] * top_is_y + srt[:, -1] * (1 - top_is_y)
    if logits.shape[1] >= 3:
        denom = srt[:, -1] - srt[:, -3] + 1e-12
    else:
        denom = (srt[:, -1] - srt[:, 0]).abs() + 1e-12
    return -(z_y - other) / denom


LOSSES = {"ce": ce_loss, "margin": margin_loss, "adaptive": adaptive_loss, "dlr": dlr_loss}


def get_loss(name: str):
    from ..errors import LandscapeError
    if callable(name):
        return name
    if name not in LOSSES:
        raise LandscapeError(f"unknown attack loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def generator_for(seed, device) -> torch.Generator | None:
    """A generator seeded with ``seed`` on ``device``, or None to use torch's global generator."""
    if seed is None:
        return None
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g
