"""Datasets of square crops at the model's resolution, held in memory as uint8 or streamed from files.

Each image is decoded once and resized so its shorter side equals the working size; training
crops are random (position, optional flip), evaluation crops are central and deterministic. All
randomness comes from a ``torch.Generator`` handed in by the caller, so a batch is a pure function
of (seed, step): this is what makes resumed runs bit-identical to uninterrupted ones.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import ScvaeError
from .images import LUMA, center_crop, find_images, load_image, match_channels, resize_shorter, to_tensor
from .readers import array_files, read_array_file
from .splits import group_keys, near_duplicates, split_groups, split_indices
from .streaming import LazyImages, use_memory_cache


class CropDataset:
    """Images (uint8 (H, W, C), shorter side >= size) from which size x size crops are drawn."""

    def __init__(self, images: list[np.ndarray], size: int, names: list[str] | None = None,
                 random_crop: bool = True, flip: bool = False):
        if not images:
            raise ScvaeError("dataset is empty")
        self.images, self.size, self.random_crop, self.flip = images, size, random_crop, flip
        self.names = names or [f"image{i:05d}" for i in range(len(images))]

    def __len__(self) -> int:
        return len(self.images)

    def crop(self, index: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(C, size, size) in [-1, 1]: random crop/flip with ``generator``, central crop without."""
        arr = self.images[index]
        h, w = arr.shape[:2]
        if generator is None or not self.random_crop:
            out = center_crop(arr, self.size)
        else:
            top = int(torch.randint(0, h - self.size + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - self.size + 1, (1,), generator=generator))
            out = arr[top:top + self.size, left:left + self.size]
        if generator is not None and self.flip and bool(torch.rand((), generator=generator) < 0.5):
            out = out[:, ::-1]
        return to_tensor(out)

    def batch(self, indices: list[int], generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.stack([self.crop(i, generator) for i in indices])

    def eval_batches(self, batch_size: int, limit: int | None = None):
        """Deterministic central crops, in order: yields (names, (B, C, size, size))."""
        n = len(self) if limit is None else min(limit, len(self))
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            yield [self.names[i] for i in idx], self.batch(idx)


@dataclass
class LoadReport:
    loaded: int
    skipped: list[tuple[str, str]]
    kept: list[Path] = field(default_factory=list)  # the paths that were read, in order


def load_folder(paths: list[Path], size: int, channels: int, desc: str = "loading images"
                ) -> tuple[list[np.ndarray], list[str], LoadReport]:
    """Decode and resize ``paths``; unreadable files are skipped and counted (see :func:`warn_skipped`)."""
    images, names, skipped, kept = [], [], [], []
    # None: shown on a terminal only, so that logs and CI output are not flooded with bar updates
    for path in tqdm(paths, desc=desc, unit="img", leave=False, disable=True if len(paths) < 200 else None):
        try:
            images.append(resize_shorter(load_image(path, channels), size))
            names.append(path.stem)
            kept.append(path)
        except ScvaeError as exc:
            skipped.append((str(path), str(exc)))
    return images, names, LoadReport(len(images), skipped, kept)


def warn_skipped(report: LoadReport) -> None:
    if report.skipped:
        first = report.skipped[0][1]
        warnings.warn(f"skipped {len(report.skipped)} unreadable image(s); first: {first}", stacklevel=2)


def open_images(source: str | os.PathLike, size: int, channels: int = 3) -> tuple[list[np.ndarray], list[str]]:
    """All images of ``source`` resized to shorter side ``size``: a folder tree of image files, or CIFAR
    python batches / MNIST idx files (a file, or a folder holding them). Unreadable image files are skipped
    with one counted warning; if none are left it is an error."""
    root = Path(source)
    if not root.exists():
        raise ScvaeError(f"{root}: no such data folder")
    arrays = array_files(root)
    if arrays:
        images, names = [], []
        for path in arrays:
            for i, arr in enumerate(read_array_file(path)):
                images.append(resize_shorter(match_channels(arr, channels), size))
                names.append(f"{path.name}_{i:05d}")
        return images, names
    images, names, _ = _load_files(root, find_images(root), size, channels)
    return images, names


def _load_files(root: Path, paths: list[Path], size: int, channels: int):
    """Decode ``paths`` (skipping unreadable ones with one counted warning); returns images, names, kept paths."""
    images, names, report = load_folder(paths, size, channels)
    warn_skipped(report)
    if not images:
        raise ScvaeError(f"{root}: none of the {len(report.skipped)} image files could be read")
    return images, names, report.kept


def folder_datasets(data: str | os.PathLike, size: int, channels: int = 3, val_data: str | None = None,
                    val_ratio: float = 0.1, flip: bool = True, split_seed: int = 0, scale: float = 1.0,
                    cache: str = "memory", split_group: str = "none") -> tuple[CropDataset, CropDataset]:
    """Train and val crop datasets from ``data`` (see :func:`open_images`) and an optional val source.

    Images are resized so their shorter side is ``scale * size``: with scale 1 a crop is the whole
    (centre of the) image; with scale s > 1 crops are patches of 1/s of the image's shorter side.
    ``cache``: 'memory' decodes every image once up front; 'stream' decodes on the fly
    (:class:`~scvae.data.streaming.LazyImages`); 'auto' picks memory while the decoded images fit the limit
    in :mod:`scvae.data.streaming`. Both modes draw the same crops (they split the same way unless some
    files are unreadable). ``split_group`` ('none', 'folder', 'prefix'): hold out whole groups of files
    (see :mod:`scvae.data.splits`). In memory, validation images with a near-duplicate in training are
    counted in one warning."""
    if not scale >= 1:
        raise ScvaeError(f"data_scale must be >= 1, got {scale}")
    working = max(size, round(scale * size))
    images, names, keys = _read_source(data, working, channels, cache, split_group if val_data is None else "none")
    if val_data is None:
        train_idx, val_idx = (split_indices(len(images), val_ratio, split_seed) if keys is None
                              else split_groups(keys, val_ratio, split_seed))
        val_images, val_names = _take(images, val_idx), [names[i] for i in val_idx]
        images, names = _take(images, train_idx), [names[i] for i in train_idx]
    else:
        val_images, val_names, _ = _read_source(val_data, working, channels, cache, "none")
    if isinstance(images, list) and isinstance(val_images, list):
        _warn_near_duplicates(images, names, val_images, val_names)
    return (CropDataset(images, size, names, True, flip), CropDataset(val_images, size, val_names, random_crop=False))


def _read_source(source, working: int, channels: int, cache: str, split_group: str):
    """(images, names, group keys or None) of a folder tree (in memory or streamed) or array files."""
    root = Path(source)
    paths = find_images(root) if root.is_dir() and not array_files(root) else []
    if not paths:
        if split_group != "none":
            raise ScvaeError(f"split_group={split_group} needs a folder of image files, not {root}")
        images, names = open_images(source, working, channels)
        return images, names, None
    if use_memory_cache(cache, len(paths), working, channels):
        images, names, paths = _load_files(root, paths, working, channels)
    else:
        images, names = LazyImages(paths, working, channels), [p.stem for p in paths]
    return images, names, None if split_group == "none" else group_keys(paths, root, split_group)


def _take(images, indices: list[int]):
    if isinstance(images, LazyImages):
        return LazyImages([images.paths[i] for i in indices], images.working, images.channels)
    return [images[i] for i in indices]


def _warn_near_duplicates(train, train_names, val, val_names) -> None:
    pairs = near_duplicates(train, val)
    if pairs:
        v, t, d = pairs[0]
        warnings.warn(f"{len(pairs)} of {len(val)} validation images have a near-duplicate in training (e.g. "
                      f"{val_names[v]} ~ {train_names[t]}, distance {d:.3f}): the held-out score will overstate "
                      f"generalisation; hold out whole groups (split_group=folder|prefix) or pass val_data",
                      stacklevel=3)


def image_tensor(path: str | os.PathLike, size: int | None = None, channels: int = 3) -> torch.Tensor:
    """One photo as the (1, C, H, W) tensor in [-1, 1] a model takes: whole, or with its shorter side resized to
    ``size`` (aspect kept, no crop). Feed it to ``model.reconstruct_any_size`` or ``encode_any_size``."""
    arr = load_image(path, channels)
    return to_tensor(resize_shorter(arr, size) if size else arr)[None]


def image_batch(paths: list[str | os.PathLike], size: int, channels: int = 3) -> torch.Tensor:
    """Load specific files as a (N, C, size, size) batch (shorter side resized, central crop)."""
    arrs = [center_crop(resize_shorter(load_image(p, channels), size), size) for p in paths]
    return torch.stack([to_tensor(a) for a in arrs])


def tile_mosaic(crops: torch.Tensor, m: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, s, s) crops -> (B / m^2, C, m s, m s): each group of m^2 consecutive crops laid out row by row,
    then, with ``generator``, each mosaic rolled by a random (dy, dx), so its seams fall anywhere.

    A model trained on small crops alone sees every position near the zero-padded border and learns to read
    position from it (docs/results.md, *Whole images*); mosaics give it positions far from any border at the
    same pixels per step. Seams at fixed places would be one more thing to read position from: a model
    trained on unrolled 2 x 2 mosaics fell to 15 dB on single crops."""
    if m == 1:
        return crops
    b, c, h, w = crops.shape
    mosaics = crops.reshape(b // m ** 2, m, m, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b // m ** 2, c, m * h, m * w)
    if generator is None:
        return mosaics
    shifts = torch.randint(0, m * h, (len(mosaics), 2), generator=generator).tolist()
    return torch.stack([x.roll((dy, dx), (1, 2)) for x, (dy, dx) in zip(mosaics, shifts)])


def mask_cells(images: torch.Tensor, ratio: float, cell: int, generator: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) images in [-1, 1] with ``ratio`` of their ``cell`` x ``cell`` cells (one latent
    position each) set to 0, mid-grey, chosen independently per image: the masked-input pretext of context
    encoders and MAE. Training reconstructs the whole clean image, so the encoder has to fill each masked
    cell from its neighbours."""
    b, _, h, w = images.shape
    rows, cols = -(-h // cell), -(-w // cell)
    n_masked = round(ratio * rows * cols)
    if n_masked == 0:
        return images
    order = torch.rand(b, rows * cols, generator=generator).argsort(1)
    keep = torch.ones(b, rows * cols)
    keep.scatter_(1, order[:, :n_masked], 0.0)
    keep = keep.reshape(b, 1, rows, cols).repeat_interleave(cell, 2).repeat_interleave(cell, 3)[:, :, :h, :w]
    return images * keep.to(images.device, images.dtype)  # masks drawn on the CPU, so any device gets the same


def paired_views(images: torch.Tensor, generator: torch.Generator, min_scale: float = 0.4, jitter: float = 0.4
                 ) -> torch.Tensor:
    """(B, C, H, W) images in [-1, 1], B even -> (B, C, H, W): the first B / 2 images, then their
    :func:`second_views`. The batch keeps its size, so a step costs what it did; the invariance term pulls
    the pairs' pooled latents together."""
    half = images[: len(images) // 2]
    return torch.cat([half, second_views(half, generator, min_scale, jitter)])


def second_views(images: torch.Tensor, generator: torch.Generator, min_scale: float = 0.4, jitter: float = 0.4
                 ) -> torch.Tensor:
    """(b, C, H, W) images in [-1, 1] -> (b, C, H, W): a second view of each (SimCLR's augmentations: a random
    square crop of ``min_scale``-1 of the side, resized back, a horizontal flip half the time, brightness,
    contrast and (RGB) saturation jitter of +-``jitter``)."""
    b, c = len(images), images.shape[1]
    rand = torch.rand(b, 7, generator=generator)
    scale = min_scale + (1 - min_scale) * rand[:, 0]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale * torch.where(rand[:, 1] < 0.5, -1.0, 1.0)  # a negative x-scale flips
    theta[:, 1, 1] = scale
    theta[:, :, 2] = (1 - scale)[:, None] * (2 * rand[:, 2:4] - 1)  # the crop anywhere inside the image
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    view = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    factors = (jitter * (2 * rand[:, 4:7] - 1) + torch.tensor([0.0, 1.0, 1.0])).to(images.device, images.dtype)
    brightness, contrast, saturation = (j.view(b, 1, 1, 1) for j in factors.unbind(1))
    mean = view.mean((1, 2, 3), keepdim=True)
    view = (view - mean) * contrast + mean + brightness
    if c == 3:
        grey = (view * torch.tensor(LUMA, device=view.device, dtype=view.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
        view = grey + saturation * (view - grey)
    return view.clamp(-1, 1)
