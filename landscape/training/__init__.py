"""Training: recipes as data, presets, losses, soft labels, the trainer, the CO monitor, DDP.

>>> from landscape.training import get_preset, train
>>> recipe = get_preset("fast-ls-l0", eps=20, scale="small")
>>> result = train(recipe, out="runs/demo")          # doctest: +SKIP

Submodules are imported lazily where they pull in the attacks (``trainer``, ``monitor``), so
``from landscape.training.losses import recipe_loss`` needs nothing else.
"""

from .losses import cross_entropy, loss_from_logits, recipe_loss
from .presets import NATURAL, PRESETS, get_preset, preset_names
from .recipe import Recipe
from .soft_labels import SoftLabels


def train(*args, **kwargs):
    """See :func:`landscape.training.trainer.train`."""
    from .trainer import train as _train
    return _train(*args, **kwargs)


__all__ = ["NATURAL", "PRESETS", "Recipe", "SoftLabels", "cross_entropy", "get_preset", "loss_from_logits",
           "preset_names", "recipe_loss", "train"]
