"""Distributed training's helpers: :mod:`landscape.distributed` (one set of rank/world helpers for
training and analysis), under the name the trainer imports."""

from ..distributed import (DistInfo, all_gather_cat, all_reduce_sum, barrier, broadcast_flag, cleanup,  # noqa: F401
                           device_for, from_env, init, rank_world)
