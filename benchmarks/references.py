"""Run-time access to the reference implementations the benchmarks compare against.

Nothing of the references is copied into this repository. The authors' sparse-PGD / Sparse-RS code
(``CityU-MLO/sPGD``) is imported from a checkout named by the environment variable ``SPGD_REPO``
(or ``--spgd-repo``); PyHessian is the installed ``pyhessian`` package.

* :func:`load_spgd_reference` imports ``autoattack/spgd.py`` (``SparsePGD``) and
  ``autoattack/rs_attacks.py`` (``RSAttack``) and ``adversarial_training/spgd.py`` (the training-time
  ``SparsePGD``, used with ``t=1`` as the authors' 1-step attack).
* :func:`reference_saa` is the authors' sparse-AutoAttack cascade (``autoattack/saa.py``: the
  white-box stage with ``unprojected_gradient`` as given on the command line (default False, so the
  *projected* stage runs first), then the other one, then Sparse-RS with ``loss='ce'``), run on the
  survivors of each stage, without its CUDA-only data loading.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import torch


def spgd_repo(path: str | None = None) -> Path:
    p = path or os.environ.get("SPGD_REPO")
    if not p:
        raise SystemExit("set SPGD_REPO (or pass --spgd-repo) to a checkout of github.com/CityU-MLO/sPGD")
    root = Path(p).expanduser()
    if not (root / "autoattack" / "spgd.py").is_file():
        raise SystemExit(f"{root} does not look like a checkout of CityU-MLO/sPGD (no autoattack/spgd.py)")
    return root


def _import_file(name: str, path: Path, extra_path: Path):
    # the files import their siblings by bare name (``from utils import Logger``) and
    # ``skimage.util.random_noise``, which they never call: provide a stand-in when scikit-image is absent
    if "skimage" not in sys.modules and importlib.util.find_spec("skimage") is None:
        sk = types.ModuleType("skimage")
        sk.util = types.ModuleType("skimage.util")
        sk.util.random_noise = None
        sys.modules["skimage"], sys.modules["skimage.util"] = sk, sk.util
    sys.path.insert(0, str(extra_path))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(extra_path))
    return mod


def load_spgd_reference(path: str | None = None) -> types.SimpleNamespace:
    root = spgd_repo(path)
    aa = root / "autoattack"
    spgd = _import_file("_ref_spgd_aa", aa / "spgd.py", aa)
    rs = _import_file("_ref_rs_attacks", aa / "rs_attacks.py", aa)
    at = root / "adversarial_training"
    spgd_at = _import_file("_ref_spgd_at", at / "spgd.py", at)
    return types.SimpleNamespace(root=root, SparsePGD=spgd.SparsePGD, RSAttack=rs.RSAttack,
                                 TrainSparsePGD=spgd_at.SparsePGD)


def reference_saa(ref, model, x, y, *, k: int, steps: int, n_queries: int, p_init: float = 0.8,
                  unprojected_first: bool = False, rs_loss: str = "ce", batch_size: int = 500,
                  magnitude: float = 1.0):
    """The authors' sAA cascade on ``x, y``; returns ``(survivors per stage (list of bool (N,)), names)``.

    Mirrors ``autoattack/saa.py``'s ``SparseAutoAttack.__call__``: stage 1 on the clean-correct
    examples, stage 2 on its survivors, Sparse-RS (batch ``2 * batch_size``) on theirs.
    """
    att1 = ref.SparsePGD(model, epsilon=magnitude, k=k, t=steps, unprojected_gradient=unprojected_first)
    att2 = ref.SparsePGD(model, epsilon=magnitude, k=k, t=steps, unprojected_gradient=not unprojected_first)
    black = ref.RSAttack(model, norm="L0", eps=k, verbose=False, n_queries=n_queries, p_init=p_init,
                         targeted=False, loss=rs_loss)
    names = ["spgd" if unprojected_first else "spgd-projected", "spgd-projected" if unprojected_first else "spgd", "rs"]
    with torch.no_grad():
        alive = model(x).argmax(1) == y
    out = []
    for stage, att in enumerate((att1, att2, black)):
        idx = alive.nonzero().squeeze(1)
        bs = batch_size * (2 if stage == 2 else 1)
        for s in range(0, idx.numel(), bs):
            j = idx[s:s + bs]
            if stage < 2:
                x_adv, _, _ = att(x[j], y[j], targeted=False)
            else:
                with torch.no_grad():
                    _, x_adv = att.perturb(x[j], y[j])
            check_l0(x[j], x_adv, k)
            with torch.no_grad():
                fooled = model(x_adv).argmax(1) != y[j]
            alive[j[fooled]] = False
        out.append(alive.clone())
    return out, names


def check_l0(x: torch.Tensor, x_adv: torch.Tensor, k: int) -> None:
    """The reference's results go through the same validity check as ours: box and k pixels."""
    d = (x_adv - x).abs().amax(dim=1).flatten(1)
    if (d > 0).sum(1).max().item() > k or x_adv.min() < 0 or x_adv.max() > 1:
        raise AssertionError("a reference adversarial example leaves the l0 threat model")
