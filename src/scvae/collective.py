"""Cross-rank operations for statistics that live in buffers (usage counts, EMA codebooks, restarts).

DDP averages gradients, not buffers: every rank must update its buffers from the *global* batch or the
ranks drift apart (a known bug of unsynced EMA codebooks). These are no-ops outside torch.distributed,
so models stay usable on their own.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (and return it)."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def broadcast_from_main(tensor: torch.Tensor) -> torch.Tensor:
    """Overwrite ``tensor`` on every rank with rank 0's values in place (and return it)."""
    if is_distributed():
        dist.broadcast(tensor, src=0)
    return tensor


def all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` (N_r, ...) along dim 0 in rank order: the global batch's rows, in
    the order a single process with the whole batch would see them. Ranks must pass equal shapes."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)
