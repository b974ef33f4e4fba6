"""The built-in dataset: crops of the real photographs shipped inside scikit-image (no download).

Each photo is resized so its shorter side is ``scale`` times the crop size. The bottom band of every
photo (one crop high) is held out: validation crops tile that band, training crops come from above it,
so no validation pixel is ever seen in training.
"""
from __future__ import annotations

import numpy as np

from .datasets import CropDataset
from .images import match_channels, resize_shorter

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
          "retina", "colorwheel", "camera", "coins", "moon", "brick", "grass", "gravel", "clock", "cell")


def _photo(name: str, channels: int) -> np.ndarray:
    import skimage.data

    arr = np.asarray(getattr(skimage.data, name)())
    arr = arr[:, :, None] if arr.ndim == 2 else arr[:, :, :3]
    return match_channels(arr, channels)


def builtin_datasets(size: int, channels: int = 3, scale: int = 4, flip: bool = True
                     ) -> tuple[CropDataset, CropDataset]:
    """Train crops (random) and held-out val crops (fixed tiles of each photo's bottom band)."""
    train, train_names, val, val_names = [], [], [], []
    for name in PHOTOS:
        arr = resize_shorter(_photo(name, channels), scale * size)
        h, w = arr.shape[:2]
        train.append(arr[:h - size])
        train_names.append(name)
        band = arr[h - size:]
        for j in range(w // size):
            val.append(np.ascontiguousarray(band[:, j * size:(j + 1) * size]))
            val_names.append(f"{name}_{j:02d}")
    return (CropDataset(train, size, train_names, random_crop=True, flip=flip),
            CropDataset(val, size, val_names, random_crop=False))
