"""landscape: adversarially robust training under l0/l1/l2/l∞ budgets, and loss-landscape analysis.

The names below are the Python API; the ``landscape`` command is a thin shell over them.
"""

from .checkpoint import Checkpoint, import_state_dict, load_checkpoint
from .data import DATASETS, DeviceLoader, ImageDataset, load_dataset
from .device import resolve_device
from .errors import LandscapeError
from .models import ARCHS, build_model
from .threat import NORMS, ThreatModel, parse_eps, parse_norm

__version__ = "0.1.0"

__all__ = [
    "ARCHS", "Checkpoint", "DATASETS", "DeviceLoader", "ImageDataset", "LandscapeError", "NORMS",
    "ThreatModel", "build_model", "import_state_dict", "load_checkpoint", "load_dataset", "parse_eps",
    "parse_norm", "resolve_device",
]
