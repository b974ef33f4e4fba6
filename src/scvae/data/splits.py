"""Held-out splits that do not lie: by file, or by group (sub-folder or file-name prefix), and a check for
validation images with near-duplicates in training.

A random per-file split of video frames (CamVid) puts neighbouring frames on both sides: its "held-out"
PSNR measured 25.5 dB where the test sequences gave 16.0 dB. Splitting by group keeps every sequence
(folder, or name prefix such as CamVid's ``0001TP`` in ``0001TP_006690.png``) on one side.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import ScvaeError

SPLIT_GROUPS = ("none", "folder", "prefix")


def split_indices(n: int, val_ratio: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic train/val split of range(n): a seeded permutation, the last ``val_ratio`` held out."""
    if not 0.0 < val_ratio < 1.0:
        raise ScvaeError(f"val_ratio must be in (0, 1), got {val_ratio}")
    n_val = max(1, round(n * val_ratio))
    if n - n_val < 1:
        raise ScvaeError(f"need at least 2 images to split into train and val, found {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[:n - n_val]), sorted(perm[n - n_val:])


def group_keys(paths: list[Path], root: Path, mode: str) -> list[str]:
    """The group of each file: its sub-folder below ``root`` ('folder') or its name up to the first
    '_' or '-' ('prefix')."""
    if mode == "folder":
        return [str(p.parent.relative_to(root)) for p in paths]
    if mode == "prefix":
        return [re.match(r"[^_\-]*", p.stem).group(0) for p in paths]
    raise ScvaeError(f"split_group must be one of {', '.join(SPLIT_GROUPS)}, got {mode!r}")


def split_groups(keys: list[str], val_ratio: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Whole groups to validation: in a seeded order, each group that keeps the held-out files within
    ``val_ratio`` of all files; if no group is that small, the smallest group alone."""
    groups = sorted(set(keys))
    if len(groups) < 2:
        raise ScvaeError(f"a group split needs at least 2 groups, found {len(groups)} ({groups[0]!r})")
    order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed)).tolist()
    sizes = {g: 0 for g in groups}
    for k in keys:
        sizes[k] += 1
    target, held, count = val_ratio * len(keys), set(), 0
    for g in order:
        if count + sizes[groups[g]] <= target and len(held) < len(groups) - 1:
            held.add(groups[g])
            count += sizes[groups[g]]
    if not held:
        held.add(min(groups, key=lambda g: (sizes[g], g)))
    val = [i for i, k in enumerate(keys) if k in held]
    return [i for i, k in enumerate(keys) if k not in held], val


def _thumbnail(image: np.ndarray, size: int = 16) -> np.ndarray:
    """Gray, centre-cropped, box-averaged to size x size, in [0, 1]."""
    gray = image.astype(np.float32).mean(-1) / 255.0
    h, w = gray.shape
    side = min(h, w) // size * size
    top, left = (h - side) // 2, (w - side) // 2
    crop = gray[top:top + side, left:left + side]
    return crop.reshape(size, side // size, size, side // size).mean((1, 3)).ravel()


def near_duplicates(train: list[np.ndarray], val: list[np.ndarray], threshold: float = 0.03
                    ) -> list[tuple[int, int, float]]:
    """(val index, nearest train index, distance) for every validation image whose 16 x 16 gray thumbnail
    is within ``threshold`` (mean absolute difference, pixel values in [0, 1]) of a training image's."""
    if not train or not val:
        return []
    a = torch.from_numpy(np.stack([_thumbnail(v) for v in val]))
    b = torch.from_numpy(np.stack([_thumbnail(t) for t in train]))
    dist = torch.cdist(a, b, p=1) / a.shape[1]
    best, index = dist.min(1)
    return [(i, int(index[i]), float(best[i])) for i in range(len(val)) if best[i] <= threshold]
