"""Data-parallel Hessian-vector products: two gloo processes on the CPU equal one process."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from landscape.analysis.estimators import hutchinson_trace, lanczos_topk
from landscape.analysis.hessian import hessian_operator, make_batches, shard, HessianOperator
from landscape.models import build_model

N, BS = 11, 3  # four batches of 3, 3, 3, 2: rank 0 holds 6 examples... rank 1 holds 5


def _problem():
    torch.manual_seed(0)
    model = build_model("small-cnn", in_channels=1, num_classes=3, image_size=8, width=2, hidden=6,
                        batchnorm=True).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (N,), generator=g)
    return model, x, y


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, x, y = _problem()
        op = HessianOperator(model, "clean", shard(make_batches(x, y, BS), rank, world), dtype="float64")
        v = np.random.RandomState(0).standard_normal(op.shape[0])
        hv = op @ v
        g = op.gradient().numpy()
        res = lanczos_topk(op, 3, progress=False)
        tr = hutchinson_trace(op, 3, seed=0, progress=False)
        op32 = HessianOperator(model, "clean", shard(make_batches(x, y, BS), rank, world))
        bf16 = lanczos_topk(op32, 3, precision="bfloat16", progress=False)
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), hv=hv, g=g, lam=res.eigenvalues, trace=tr.trace,
                 n=op.n_examples, local=sum(b.n for b in op.batches), lam16=bf16.eigenvalues,
                 n16=bf16.meta["n_hvp_bfloat16"])
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    model, x, y = _problem()
    op = hessian_operator(model, x, y, batch_size=BS, dtype="float64")
    v = np.random.RandomState(0).standard_normal(op.shape[0])
    hv, g = op @ v, op.gradient().numpy()
    lam = lanczos_topk(op, 3, progress=False).eigenvalues
    tr = hutchinson_trace(op, 3, seed=0, progress=False).trace
    r = [np.load(tmp_path / f"rank{i}.npz") for i in range(2)]
    assert int(r[0]["n"]) == int(r[1]["n"]) == N and int(r[0]["local"]) == 6 and int(r[1]["local"]) == 5
    for ri in r:
        assert np.linalg.norm(ri["hv"] - hv) < 1e-10 * np.linalg.norm(hv)
        assert np.linalg.norm(ri["g"] - g) < 1e-10 * np.linalg.norm(g)
        assert np.allclose(ri["lam"], lam, rtol=1e-8)
        assert abs(float(ri["trace"]) - tr) < 1e-8 * abs(tr) + 1e-12
    assert np.array_equal(r[0]["hv"], r[1]["hv"])  # all ranks see the same all-reduced product
    # bf16 products, settled in float32: the ranks stay in lock-step and agree with the float64 values
    assert np.array_equal(r[0]["lam16"], r[1]["lam16"]) and int(r[0]["n16"]) == int(r[1]["n16"])
    assert np.allclose(r[0]["lam16"], lam, rtol=1e-3)
