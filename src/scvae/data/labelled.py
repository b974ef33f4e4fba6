"""Labelled image folders: ``ROOT/<class>/...`` read as a batch with integer labels, and a stratified split.

This is the input of the representation probes (:mod:`scvae.downstream.probe`): the labels come from the
first folder level below the root, and every image is resized (shorter side) and centre-cropped to one size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ScvaeError
from .images import IMAGE_EXTENSIONS, center_crop, load_image, resize_shorter, to_tensor


@dataclass
class LabelledImages:
    """images: (N, C, S, S) float32 in [-1, 1]; labels: (N,) int64 indices into ``classes``."""

    images: torch.Tensor
    labels: np.ndarray
    classes: list[str]

    def subset(self, indices: np.ndarray) -> "LabelledImages":
        return LabelledImages(self.images[torch.as_tensor(indices)], self.labels[indices], self.classes)


def class_folders(root: str | os.PathLike) -> dict[str, list[Path]]:
    """``{class name: sorted image paths}`` for every sub-folder of ``root`` holding images (recursively)."""
    root = Path(root)
    if not root.is_dir():
        raise ScvaeError(f"{root}: no such folder" if not root.exists() else f"{root}: is a file, not a folder")
    folders = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        paths = sorted(p for p in sub.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if paths:
            folders[sub.name] = paths
    if len(folders) < 2:
        raise ScvaeError(f"{root}: a labelled folder needs at least 2 class sub-folders of images, found "
                         f"{len(folders)} (expected ROOT/<class>/<image>)")
    return folders


def load_labelled(root: str | os.PathLike, size: int, channels: int = 3, classes: list[str] | None = None,
                  limit_per_class: int | None = None) -> LabelledImages:
    """Read ``root/<class>/*`` at ``size`` x ``size``. ``classes`` fixes the label order (a test folder must
    use the training folder's); a class it names that ``root`` lacks, or the reverse, is an error."""
    folders = class_folders(root)
    if classes is not None and set(folders) != set(classes):
        missing, extra = sorted(set(classes) - set(folders)), sorted(set(folders) - set(classes))
        raise ScvaeError(f"{root}: classes differ from the training folder's (missing {missing}, extra {extra})")
    order = classes or list(folders)
    arrays, labels = [], []
    for label, name in enumerate(order):
        for path in folders[name][:limit_per_class]:
            arrays.append(to_tensor(center_crop(resize_shorter(load_image(path, channels), size), size)))
            labels.append(label)
    return LabelledImages(torch.stack(arrays), np.asarray(labels, dtype=np.int64), list(order))


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): ``test_fraction`` of every class, drawn with ``seed``, both sorted."""
    if not 0.0 < test_fraction < 1.0:
        raise ScvaeError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(members) * test_fraction))
        if n_test < 1 or n_test >= len(members):
            raise ScvaeError(f"class {label} has {len(members)} images: too few to hold out {test_fraction:.0%}")
        test.extend(members[:n_test])
        train.extend(members[n_test:])
    return np.sort(np.asarray(train)), np.sort(np.asarray(test))
