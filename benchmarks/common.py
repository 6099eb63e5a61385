"""What several benchmarks share: a small-cnn on fashion-mnist-mini and a plain training loop.

The benchmark scripts run as ``python benchmarks/<script>.py``, so this folder is on ``sys.path``
and they import it as ``from common import small_cnn, fit``.
"""

from __future__ import annotations

import torch


def small_cnn(split: str = "train", *, n: int | None = None, seed: int = 0, **model_kwargs):
    """``(model, x, y, kwargs)``: a small-cnn (untrained, seeded with ``seed``) for fashion-mnist-mini and
    the ``split``'s images as floats in [0,1] (the first ``n`` of a seeded subset when given)."""
    from landscape.data import load_dataset
    from landscape.models import build_model, model_kwargs_for
    ds = load_dataset("fashion-mnist-mini", split)
    if n is not None:
        ds = ds.subset(n, seed=0)
    kw = model_kwargs_for("small-cnn", ds.describe(), **model_kwargs)
    torch.manual_seed(seed)
    model = build_model("small-cnn", **kw)
    return model, ds.images.float() / 255, ds.labels, kw


def fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, opt, epochs: int, batch_size: int = 128):
    """``epochs`` of plain cross-entropy training in shuffled batches; returns the model in eval mode."""
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def hessian_sample(checkpoint: str, n_images: int):
    """``(model, x, y)``: a checkpoint's model (CPU, eval mode) and the ``n_images`` held-out test images
    (in [0, 1]) and labels that ``bench_reference.py`` computes Hessians on (subset seed 1)."""
    from landscape.checkpoint import load_checkpoint
    ck = load_checkpoint(checkpoint)
    model = ck.model(device="cpu").eval()
    h = ck.load_dataset("test").subset(n_images, seed=1)
    return model, h.images.float().div(255), h.labels


def hessian_setup(a):
    """For a Hessian bench's parsed options: require ``--checkpoint``, set ``--threads`` and, when
    ``--allocator`` is ``tuned``, glibc's malloc as the CLI sets it; returns ``hessian_sample``'s
    ``(model, x, y)`` for ``--n-images``."""
    import torch
    if not a.checkpoint:
        raise SystemExit("give --checkpoint")
    torch.set_num_threads(a.threads)
    if a.allocator == "tuned":
        from landscape.device import tune_cpu_allocator
        tune_cpu_allocator()
    return hessian_sample(a.checkpoint, a.n_images)


def options(**defaults):
    """Parse the script's options: one ``--name`` per keyword, typed by its default (int, float,
    else text); a ``(default, help)`` pair adds a help line."""
    import argparse
    ap = argparse.ArgumentParser()
    for name, default in defaults.items():
        default, help_text = default if isinstance(default, tuple) else (default, None)
        kind = type(default) if isinstance(default, (int, float)) else str
        ap.add_argument("--" + name.replace("_", "-"), type=kind, default=default, help=help_text)
    return ap.parse_args()


def surface_args(**defaults: int):
    """The surface benchmarks' options: ``--n`` (examples, 256), ``--width`` (small-cnn width, 32) and
    the keywords' (``--batch-size`` for ``batch_size=256``)."""
    return options(n=256, width=32, **defaults)
