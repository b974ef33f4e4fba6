"""Streaming image data: decode, resize and crop on the fly from a file list, with bounded memory.

A :class:`LazyImages` list stands in for the in-memory list of decoded images inside a
:class:`~scvae.data.CropDataset`, so both modes draw exactly the same crops: a training batch stays a pure
function of (seed, step, rank) and resumed runs stay exact. :class:`StepBatches` hands whole steps to
``torch.utils.data.DataLoader`` workers, which decode in parallel; memory is bounded by the batches in
flight (``num_workers * prefetch_factor``), whatever the dataset size.

The in-memory cache is chosen automatically while the decoded images fit in :data:`MEMORY_CACHE_BYTES`.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ScvaeError
from .images import load_image, resize_shorter

MEMORY_CACHE_BYTES = 2**30  # "auto" keeps the decoded images in memory up to this estimate (1 GiB)


def estimated_bytes(n_images: int, working: int, channels: int) -> int:
    """Decoded size of ``n_images`` resized to shorter side ``working``, assuming a 4:3 aspect ratio."""
    return n_images * working * (working * 4 // 3) * channels


def use_memory_cache(mode: str, n_images: int, working: int, channels: int) -> bool:
    """``mode``: 'memory', 'stream' or 'auto' (memory while :func:`estimated_bytes` <= MEMORY_CACHE_BYTES)."""
    if mode not in ("auto", "memory", "stream"):
        raise ScvaeError(f"data_cache must be auto, memory or stream, got {mode!r}")
    return mode == "memory" or (mode == "auto" and estimated_bytes(n_images, working, channels) <= MEMORY_CACHE_BYTES)


class LazyImages(Sequence):
    """Image files decoded and resized (shorter side ``working``) each time an item is read: uint8 (H, W, C).

    A file that cannot be decoded is replaced by the next readable one in the list (deterministically, so
    batches stay reproducible), with one warning per bad file and process.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], working: int, channels: int = 3):
        if not paths:
            raise ScvaeError("dataset is empty")
        self.paths, self.working, self.channels = [Path(p) for p in paths], working, channels
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        for offset in range(len(self.paths)):
            i = (index + offset) % len(self.paths)
            if i in self._bad:
                continue
            try:
                return resize_shorter(load_image(self.paths[i], self.channels), self.working)
            except ScvaeError as exc:
                self._bad.add(i)
                warnings.warn(f"skipped unreadable image while streaming ({exc}); using the next file instead",
                              stacklevel=2)
        raise ScvaeError(f"none of the {len(self.paths)} image files could be read")


class StepBatches(torch.utils.data.Dataset):
    """Item i is the training batch of step ``start + i``: ``dataset.batch(sampler.indices(s),
    sampler.generator(s))``, (B, C, R, R). DataLoader workers take whole steps, round-robin."""

    def __init__(self, dataset, sampler, start: int, steps: int):
        self.dataset, self.sampler, self.start, self.steps = dataset, sampler, start, steps

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __getitem__(self, i: int) -> torch.Tensor:
        step = self.start + i
        return self.dataset.batch(self.sampler.indices(step), self.sampler.generator(step))


def step_loader(dataset, sampler, start: int, steps: int, num_workers: int) -> torch.utils.data.DataLoader:
    """Batches of steps ``start``..``steps - 1`` in order, built by ``num_workers`` processes (0: inline).

    The loader gets its own generator: creating its iterator draws a worker base seed, and drawn from the
    global RNG that draw would happen again on every resume, after the RNG state was restored, and shift
    every later random number of the run (a VAE's noise, a VQ's k-means and restarts)."""
    return torch.utils.data.DataLoader(StepBatches(dataset, sampler, start, steps), batch_size=None, shuffle=False,
                                       num_workers=num_workers, prefetch_factor=2 if num_workers > 0 else None,
                                       generator=torch.Generator().manual_seed(sampler.seed))


def default_workers(streaming: bool) -> int:
    """Decoding workers for 'auto' (num_workers = -1): none for in-memory images, else half the CPUs (<= 8)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2)) if streaming else 0
