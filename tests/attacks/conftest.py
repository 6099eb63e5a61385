"""Fixtures of the attack tests."""

import pytest
import torch

from landscape.checkpoint import Checkpoint
from landscape.threat import ThreatModel


@pytest.fixture
def tiny_ckpt(tmp_path):
    """A tiny untrained small-cnn checkpoint for fashion-mnist-mini at l0, k = 3 (``tmp_path/tiny.pt``)."""
    from landscape.data import load_dataset
    from landscape.models import build_model, model_kwargs_for
    ds = load_dataset("fashion-mnist-mini", "test")
    kw = model_kwargs_for("small-cnn", ds.describe(), width=4, hidden=8)
    torch.manual_seed(0)
    model = build_model("small-cnn", **kw)
    path = tmp_path / "tiny.pt"
    Checkpoint.create(model, arch="small-cnn", model_kwargs=kw, dataset=ds.describe(),
                      threat=ThreatModel("l0", 3)).save(path)
    return path
