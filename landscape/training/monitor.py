"""Catastrophic-overfitting (CO) monitor.

Each epoch the monitor measures, on one fixed held-out batch (the first ``n`` examples of a seeded,
class-balanced test subset), the clean accuracy, the robust accuracy under the *training* attack (at
the evaluation budget, 1 step, as used in training) and under a *strong* multi-step attack. CO is
the state in which the model has learnt to defeat its own weak training attack while a real attack
still breaks it: the training-attack accuracy stays high while the strong accuracy collapses
(Table 3 of the paper: 1-step sAT ends with ~0% under sAA while its 1-step accuracy is high).

The rule used here is the paper's description of CO (robust test accuracy collapses towards zero
while the accuracy under the training attack stays high), with ``a_w`` the training-attack accuracy
and ``a_s`` the strong accuracy::

    CO  ⇔  a_s ≤ floor   and   a_w - a_s ≥ gap             (floor = recipe.co_floor, 0.05;
                                                            gap = recipe.co_gap, 0.3)

A model that keeps, say, 23% under sparse-AutoAttack with 70% under its training attack is a weak
model, not a collapsed one, and is not flagged.

Both attacks are seeded from the epoch, so the numbers are reproducible and resuming is exact.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from ..attacks.base import attack_batches, model_mode


@dataclass
class MonitorResult:
    clean_acc: float
    train_attack_acc: float
    strong_acc: float
    co: bool

    def as_metrics(self) -> dict:
        return {"monitor_clean_acc": self.clean_acc, "monitor_train_attack_acc": self.train_attack_acc,
                "monitor_strong_acc": self.strong_acc, "co": bool(self.co)}


def co_detected(train_attack_acc: float, strong_acc: float, gap: float = 0.3, floor: float = 0.05) -> bool:
    """The CO rule of the module docstring: the strong accuracy near zero (``≤ floor``) while the
    training attack's accuracy stays at least ``gap`` above it."""
    return strong_acc <= floor and (train_attack_acc - strong_acc) >= gap


@torch.no_grad()
def clean_accuracy(model, x, y, batch_size=500) -> float:
    """Accuracy of ``model`` (in eval mode) on ``x``, ``y`` in batches."""
    with model_mode(model, "eval"):
        correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                      for i in range(0, len(x), batch_size))
    return correct / max(1, len(x))


def _robust(model, x, y, attack, threat=None, batch_size=500) -> float:
    correct = 0
    for b in attack_batches(attack, model, x, y, batch_size, check=False):
        if threat is not None:  # never count an example outside the threat model as robust
            ok = threat.is_valid(b.x, b.x_adv)
        else:
            ok = torch.ones(len(b.x), dtype=torch.bool, device=b.x.device)
        with torch.no_grad(), model_mode(model, "eval"):
            correct += int(((model(b.x_adv).argmax(1) == b.y) & ok).sum())
    return correct / max(1, len(x))


class COMonitor:
    """Robust accuracy on a fixed held-out batch under the training attack and a strong attack."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, train_attack, strong_attack, *, threat=None,
                 gap: float = 0.3, floor: float = 0.05, stream=None):
        self.x, self.y = x, y
        self.train_attack = train_attack
        self.strong_attack = strong_attack
        self.threat = threat
        self.gap = gap
        self.floor = floor
        self.stream = stream or sys.stderr
        self.history: list[MonitorResult] = []

    def check(self, model, epoch: int, seed: int = 0) -> MonitorResult:
        torch.manual_seed(seed * 1_000_003 + 7_777 + epoch)
        clean = clean_accuracy(model, self.x, self.y)
        # the training attack may be noisy and unprojected (N-FGSM): it is reported as trained, unchecked
        weak = _robust(model, self.x, self.y, self.train_attack, None)
        strong = _robust(model, self.x, self.y, self.strong_attack, self.threat)
        res = MonitorResult(clean, weak, strong, co_detected(weak, strong, self.gap, self.floor))
        self.history.append(res)
        if res.co:
            print(f"landscape: warning: catastrophic overfitting at epoch {epoch + 1}: accuracy {weak:.1%} under "
                  f"the training attack but {strong:.1%} under the strong attack", file=self.stream)
        return res
