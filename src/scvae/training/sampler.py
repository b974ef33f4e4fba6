"""Stateless batch sampling: the batch at a step is a pure function of (seed, step).

Indices walk through seeded per-epoch permutations of the training set; crop/flip randomness comes
from a generator seeded by (seed, step). Resuming at step s therefore sees exactly the batches an
uninterrupted run would, with no sampler state to save.
"""
from __future__ import annotations

import torch


def seed_for(*values: int) -> int:
    """A 63-bit seed mixed from integers (e.g. seed, step, rank)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v + 0x632BE59BD9B4E019 + (h << 6) + (h >> 2))) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


class StepSampler:
    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(seed_for(self.seed, epoch))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def indices(self, step: int) -> list[int]:
        """This rank's share of the global batch at ``step`` (global batch = batch_size * world_size)."""
        start = (step * self.world_size + self.rank) * self.batch_size
        out = []
        for pos in range(start, start + self.batch_size):
            out.append(int(self._permutation(pos // self.n)[pos % self.n]))
        return out

    def generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed_for(self.seed, step, self.rank, 1))
