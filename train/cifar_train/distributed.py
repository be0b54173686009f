"""torchrun support: one process per device, gloo on CPU and nccl on CUDA. A plain run is world size 1."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """auto picks CUDA when present; under torchrun each process takes the GPU of its local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from cifar_train.errors import UserError

        raise UserError("--device cuda was asked for but PyTorch sees no CUDA device; use --device cpu")
    return device


def init_distributed() -> Dist:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Dist(rank=rank, world_size=world_size, local_rank=local_rank)


def all_reduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """Sum a tensor over all ranks (no-op for a single process)."""
    if d.enabled:
        # nccl reduces only CUDA tensors; gloo takes them where they are.
        on = t.cuda() if dist.get_backend() == "nccl" else t
        dist.all_reduce(on, op=dist.ReduceOp.SUM)
        t.copy_(on)
    return t


def gather(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """Every rank's rows of `t` (a CPU tensor), concatenated in rank order; the tensor itself without torchrun."""
    if not d.enabled:
        return t
    parts: list[torch.Tensor | None] = [None] * d.world_size
    dist.all_gather_object(parts, t)
    return torch.cat([p for p in parts if p is not None])


def broadcast_buffers(model: torch.nn.Module, d: Dist) -> None:
    """Copy rank 0's buffers (BatchNorm running stats) to every rank.

    DDP syncs gradients, so parameters agree; but each rank updates its running stats from its own batches.
    """
    if d.enabled:
        for b in model.buffers():
            on = b.cuda() if dist.get_backend() == "nccl" else b
            dist.broadcast(on, src=0)
            b.copy_(on)


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
