"""Two gloo processes on the CPU under torchrun: DDP, sharded loader, shared soft labels."""

import os
import subprocess
import sys

import torch

from landscape.checkpoint import Checkpoint


def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, LANDSCAPE_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "analysis_cli", "train", "--norm", "l0", "--eps", "10", "--epochs", "2",
           "--batch-size", "16", "--max-train-examples", "64", "--eval-examples", "8", "--device", "cpu",
           "--out", str(out), "--set", "sat_start=0", "--set", "monitor_examples=8",
           "--set", 'monitor_attack_kwargs={"steps": 2, "n_queries": 4}', "--set", "eval_attack=spgd",
           "--set", 'eval_attack_kwargs={"steps": 2}']
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("robust accuracy") == 1          # only rank 0 reports
    data = torch.load(out / "checkpoint.pt", weights_only=True)   # single-process format
    ck = Checkpoint.load(out / "checkpoint.pt")
    ck.model()
    assert ck.data["extra"]["run"]["world_size"] == 2
    assert [m["examples"] for m in ck.metrics] == [64, 64]  # metrics all-reduced over both shards
    table = data["train_state"]["soft_labels"]["table"]
    # every example was updated once per epoch by one of the two ranks, and rank 0 holds them all
    assert (table.max(1).values < 1).all()
    assert torch.allclose(table.sum(1), torch.ones(64), atol=1e-5)
