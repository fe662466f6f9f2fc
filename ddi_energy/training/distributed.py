"""Data-parallel training under `torchrun`: gloo on CPU, nccl on GPU."""

from __future__ import annotations

import os

import torch.distributed as dist
from torch import Tensor


def dist_info(device: str) -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def mean_across(value: Tensor, world: int) -> Tensor:
    if world > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= world
    return value
