"""Shared fixtures: tiny models and data so the whole suite runs in minutes on 2 CPU cores."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("LANDSCAPE_NO_PROGRESS", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_cnn():
    """A small-cnn for 1x12x12 inputs with BatchNorm, deterministic weights, in eval mode."""
    from landscape.models import build_model
    torch.manual_seed(0)
    return build_model("small-cnn", in_channels=1, num_classes=3, image_size=12, width=4, hidden=8,
                       batchnorm=True).eval()


@pytest.fixture
def tiny_batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 12, 12, generator=g)
    y = torch.randint(0, 3, (6,), generator=g)
    return x, y


@pytest.fixture
def mini_data():
    from landscape.data import load_dataset
    return load_dataset("fashion-mnist-mini", "train"), load_dataset("fashion-mnist-mini", "test")


def run_cli(args, **kwargs):
    """Run the ``landscape`` CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from analysis_cli import cli
    runner = CliRunner()
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)


@pytest.fixture
def cli_run():
    """``cli_run([...])`` runs the CLI in-process (see :func:`run_cli`)."""
    return run_cli
