"""Soft labels by self-adaptive training (SAT, Huang et al. 2020).

Every training example ``i`` keeps a target row ``t_i`` (one-hot of its label at first). From epoch
``start`` on, after each training step the examples of the batch are updated with the model's
predicted probabilities on their clean inputs::

    t_i ← m · t_i + (1 - m) · softmax(f(x_i))            (m = momentum, 0.9 by default)

and the losses use ``t_i`` as targets. Before ``start`` the hard labels are used. The table lives on
the training device; under DDP every rank applies the updates of every rank (all-gathered) so the
tables stay identical. It is saved in the checkpoint's ``train_state``.
"""

from __future__ import annotations

import torch


class SoftLabels:
    def __init__(self, labels: torch.Tensor, num_classes: int, momentum: float = 0.9, start: int = 0):
        self.labels = labels
        self.momentum = float(momentum)
        self.start = int(start)
        self.table = torch.nn.functional.one_hot(labels.long(), num_classes).float()

    def active(self, epoch: int) -> bool:
        return epoch >= self.start

    def targets(self, idx: torch.Tensor, epoch: int) -> torch.Tensor:
        """Targets for examples ``idx``: soft rows once active, else the int labels."""
        if self.active(epoch):
            return self.table[idx]
        return self.labels[idx]

    @torch.no_grad()
    def update(self, idx: torch.Tensor, probs: torch.Tensor, epoch: int) -> None:
        """``t[idx] ← m t[idx] + (1-m) probs`` (only from the start epoch on)."""
        if not self.active(epoch):
            return
        m = self.momentum
        self.table[idx] = m * self.table[idx] + (1 - m) * probs.to(self.table.dtype)

    def state_dict(self) -> dict:
        return {"table": self.table.detach().cpu().clone(), "momentum": self.momentum, "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        self.table = state["table"].to(self.table.device, self.table.dtype).clone()
        self.momentum = float(state["momentum"])
        self.start = int(state["start"])
