"""Import weights trained elsewhere (e.g. the sparse-PGD authors' PreActResNet18) as checkpoints."""

from __future__ import annotations

import inspect

from .checkpoint import Checkpoint, import_state_dict
from .errors import LandscapeError
from .data.catalog import describe_dataset
from .models import ARCHS, build_model, model_kwargs_for


def import_checkpoint(src, out, *, arch, dataset="cifar10", activation=None, width=None, num_classes=None,
                      image_size=None, normalize=True, key=None, threat=None, hidden=None, batchnorm=None,
                      model_args: dict | None = None, overwrite=False) -> Checkpoint:
    """Wrap the state dict in ``src`` into a landscape checkpoint at ``out`` (``landscape import``).

    The model's arguments (input channels, classes, image size, mean/std) come from the static
    metadata of ``dataset`` (:func:`landscape.data.catalog.describe_dataset`), so the data need not
    be on disk. ``normalize=False`` builds the model with mean 0 and std 1, for weights trained on
    raw [0,1] inputs. ``threat`` (a :class:`ThreatModel`) records what the weights were trained for.
    ``width``, ``hidden``, ``batchnorm`` and ``activation`` set the architecture's arguments that a
    landscape checkpoint records (``landscape info`` prints them); ``model_args`` sets any other one by
    name. An argument the architecture does not take is an error naming the ones it does.
    """
    name = str(arch).strip().lower().replace("_", "-")
    if name not in ARCHS:
        build_model(arch)  # raises the standard "unknown model" error before anything is read
    meta = describe_dataset(dataset, image_size=image_size, num_classes=num_classes)
    accepted = set(inspect.signature(ARCHS[name].__init__).parameters)
    kwargs = model_kwargs_for(name, meta)
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    if not normalize:
        kwargs["mean"], kwargs["std"] = [0.0] * meta["channels"], [1.0] * meta["channels"]
    if activation is not None:
        kwargs["activation" if "activation" in accepted else "act"] = activation
    if width is not None:
        kwargs["width"] = int(width) if name == "small-cnn" else float(width)
    if hidden is not None:
        kwargs["hidden"] = int(hidden)
    if batchnorm is not None:
        kwargs["batchnorm"] = bool(batchnorm)
    kwargs.update(model_args or {})
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        takes = sorted(accepted - {"self"})
        raise LandscapeError(f"{name} does not take {', '.join(unknown)}; it takes {', '.join(takes)}")
    if threat is not None:
        threat.check_shape((meta["channels"], meta["height"], meta["width"]))
    return import_state_dict(src, out, arch=name, dataset=meta, model_kwargs=kwargs, threat=threat, key=key,
                             overwrite=overwrite)
