"""torch.distributed set-up for runs launched with torchrun (one process per GPU, any number of nodes).

A plain `python -m ...` run is a world of one and needs no process group. Under torchrun the usual environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) is present and we join the group: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from deco_bench.io import DecoBenchError


class DeviceError(DecoBenchError):
    """The device the parameters ask for is not on this machine."""



@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """The one device choice: 'cpu', 'cuda' (an error without a CUDA device), or 'auto' (CUDA when present)."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"run.device is {requested!r} but no CUDA device is visible on this machine; "
                          f"set run.device: cpu (or auto)")
    return torch.device("cuda", local_rank)


def init_distributed(requested_device: str = "auto") -> DistInfo:
    """Join the torchrun process group if launched by torchrun; otherwise a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
