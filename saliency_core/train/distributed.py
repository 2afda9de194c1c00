"""Multi-process training helpers over ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc_per_node=N -m saliency_core.cli train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`init_distributed` joins them (NCCL on GPUs, gloo on
the CPU). The masker is wrapped in ``DistributedDataParallel``; the co-trained CA classifier's
gradients are averaged with :func:`all_reduce_mean_` (its loss gathers several forward passes per
step, which DDP's one-forward-one-backward reducer does not fit). A single process needs none of this.
"""
from __future__ import annotations

import gc
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun; returns the info and this process's device.

    On CUDA each process takes ``cuda:LOCAL_RANK``; on the CPU the gloo backend is used.
    """
    world = env_world_size()
    if world <= 1:
        return DistInfo(), device
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank), device


def cleanup() -> None:
    """Leave the process group, after freeing what still holds it.

    A trainer sits in reference cycles, so its ``DistributedDataParallel`` wrapper (whose reducer holds the
    group) would otherwise outlive ``destroy_process_group`` until interpreter shutdown, where freeing gloo's
    threads can abort the process ("terminate called without an active exception") after a finished run.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean_(tensors: Iterable[torch.Tensor], info: DistInfo) -> None:
    """Average tensors (e.g. gradients) over all processes in place, in one flat message."""
    tensors = [t for t in tensors if t is not None]
    if not info.enabled or not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t).to(t.dtype))
        offset += n


def broadcast_module_(module: nn.Module, info: DistInfo, buffers_only: bool = False, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and/or buffers into every process's module."""
    if not info.enabled:
        return
    with torch.no_grad():
        items = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
        for t in items:
            dist.broadcast(t.data, src)


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj`` (a list of one item without distribution)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def module_digest(*modules: nn.Module) -> str:
    """sha256 of the parameters and buffers of modules (to check that replicas are identical)."""
    h = hashlib.sha256()
    for m in modules:
        for name, t in [*m.named_parameters(), *m.named_buffers()]:
            h.update(name.encode())
            h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
