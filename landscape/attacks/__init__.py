"""Attacks: ``attack(model, x, y) -> x_adv``, inputs in [0,1], always inside the threat model.

See :mod:`landscape.attacks.base` for the protocol. Concrete attacks are registered in
:data:`ATTACKS` by name and built with :func:`build_attack`.
"""

from .base import Attack, model_mode, no_param_grad

__all__ = ["Attack", "model_mode", "no_param_grad"]
