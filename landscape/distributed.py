"""Processes under torchrun: the rank layout and the few collectives training and analysis use.

One set of helpers for every multi-process code path: :func:`from_env` (the layout torchrun put in
the environment), :func:`rank_world` (of an initialised group), :func:`init` / :func:`join` (start
or join the process group: NCCL on GPUs, gloo on CPUs), :func:`leave`, and the collectives of
distributed training (:func:`all_gather_cat`, :func:`all_reduce_sum`, :func:`broadcast_flag`,
:func:`barrier`).

Training (:mod:`landscape.training.trainer`): run the ordinary command under torchrun::

    torchrun --nproc_per_node 2 -m analysis_cli train --norm l0 --eps 20 --epochs 5
    torchrun --nproc_per_node 8 $(which landscape) train --norm l0 --eps 20      # the same

Every rank holds the whole dataset on its device and reads its own shard of each epoch's seeded
order (``DeviceLoader(shard=(rank, world))``), so the global batch is ``world × batch_size``.
Gradients are averaged by DDP; soft labels are kept identical on every rank by all-gathering each
step's (index, probability) updates; epoch metrics are all-reduced; only rank 0 writes checkpoints,
CSV and logs, and the checkpoint is the plain single-process format (the bare model's state dict),
readable by every analysis.

Analysis (Hessian, surfaces): every rank holds a shard of the batches or grid points; the products
are all-reduced or the points gathered on rank 0, which writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistInfo:
    """The rank layout torchrun put in the environment (a single process when absent)."""
    def var(name: str, default: int) -> int:
        return int(os.environ.get(name, "") or default)
    return DistInfo(var("RANK", 0), var("WORLD_SIZE", 1), var("LOCAL_RANK", 0), var("LOCAL_WORLD_SIZE", 1))


def rank_world() -> tuple[int, int]:
    """``(rank, world)`` of an initialised ``torch.distributed`` group, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init(device: torch.device) -> DistInfo:
    """Initialise the process group if running under torchrun; return the layout."""
    info = from_env()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def join(device: str = "auto") -> tuple[int, str, bool]:
    """Join the process group torchrun set up (if any) for an analysis on ``device`` ('auto', 'cpu',
    'cuda', ...): ``(rank, device, started_here)``; on CUDA each rank gets ``cuda:LOCAL_RANK``."""
    info = from_env()
    if not info.enabled:
        return 0, device, False
    started = not dist.is_initialized()
    use_cuda = torch.cuda.is_available() and str(device) in ("auto", "cuda")
    init(torch.device("cuda" if use_cuda else "cpu"))
    if use_cuda and started:
        device = f"cuda:{info.local_rank}"
    return dist.get_rank(), device, started


def leave(started: bool = True) -> None:
    """Destroy the process group if this process started it (``join``'s third value)."""
    if started and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(device: torch.device, info: DistInfo) -> torch.device:
    """Each rank gets its own GPU (``cuda:LOCAL_RANK``) when training on CUDA."""
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def all_gather_cat(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``t`` from every rank (equal shapes on every rank) along dim 0."""
    if not info.enabled:
        return t
    parts = [torch.empty_like(t) for _ in range(info.world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_flag(flag: bool, info: DistInfo, device) -> bool:
    """Rank 0's boolean, on every rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
