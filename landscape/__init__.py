"""landscape: adversarially robust training under l0/l1/l2/l∞ budgets, and loss-landscape analysis.

The names below are the Python API; the ``landscape`` command is a thin shell over them. The
heavier ones (attacks, training, analysis) are imported on first use.
"""

from importlib import import_module

from .checkpoint import Checkpoint, import_state_dict, load_checkpoint
from .data import DATASETS, DeviceLoader, ImageDataset, load_dataset
from .device import resolve_device
from .errors import LandscapeError
from .models import ARCHS, build_model
from .threat import NORMS, ThreatModel, parse_eps, parse_norm

__version__ = "0.1.0"

_LAZY = {
    # attacks and evaluation (`landscape eval`)
    "build_attack": "attacks", "default_attack": "attacks", "training_attack": "attacks", "AttackSpec": "attacks",
    "attack_for": "attacks",
    "SparsePGD": "attacks", "SparseRS": "attacks", "SparseAutoAttack": "attacks", "PGD": "attacks",
    "APGDL1": "attacks", "FGSM": "attacks", "NFGSM": "attacks", "evaluate": "evaluation",
    "robust_accuracy": "evaluation",
    # training (`landscape train`, `landscape recipes`)
    "Recipe": "training.recipe", "get_preset": "training.presets", "train": "training.trainer",
    # analysis (`landscape hessian`, `density`, `surface`, `interp`, `lipschitz`, `overlap`)
    "HessianOperator": "analysis.hessian", "operator_from_checkpoint": "analysis.hessian",
    "lanczos_topk": "analysis.estimators", "hutchinson_trace": "analysis.estimators",
    "slq_density": "analysis.estimators", "power_iteration_pyhessian": "analysis.estimators",
    "LossObjective": "analysis.objective", "compute_surface": "analysis.surface",
    "random_directions": "analysis.directions", "cragginess": "analysis.cragginess",
    "interpolate_perturbations": "analysis.interp", "interpolate_weights": "analysis.interp",
    "lipschitz_estimates": "analysis.lipschitz", "location_overlap": "analysis.overlap",
    # the checkpoint-level layer: a checkpoint (path) in, (DataFrame, meta) out
    "hessian_spectrum": "analysis.api", "hessian_density": "analysis.api", "loss_surface": "analysis.api",
    "gradient_distance": "analysis.api", "pixel_overlap": "analysis.api", "evaluate_checkpoint": "analysis.api",
    "write_results": "results",
    # reports and reproduction (`landscape report`, `landscape reproduce`)
    "build_report": "report", "run_recipe": "reproduce", "list_recipes": "reproduce",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")


__all__ = [
    "ARCHS", "Checkpoint", "DATASETS", "DeviceLoader", "ImageDataset", "LandscapeError", "NORMS",
    "ThreatModel", "build_model", "import_state_dict", "load_checkpoint", "load_dataset", "parse_eps",
    "parse_norm", "resolve_device", *_LAZY,
]
