import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(min(2, os.cpu_count() or 1))

# A tiny backbone so that CLI and training tests take seconds on 2 CPU cores.
TINY = ["model.ch=8", "model.ch_mult=[1,2]", "model.z_channels=16", "model.n_atoms=36", "model.resolution=16",
        "batch_size=4", "val_images=8", "val_every=3", "save_every=3", "log_every=1", "warmup_steps=2"]


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """12 small real-content images (crops of a scikit-image photo) in nested folders and formats."""
    import skimage.data

    photo = skimage.data.astronaut()
    root = tmp_path / "images"
    for i in range(12):
        sub = root / ("a" if i % 2 else "b") / "deeper"
        sub.mkdir(parents=True, exist_ok=True)
        crop = photo[i * 30:i * 30 + 40, i * 25:i * 25 + 48]
        img = Image.fromarray(crop)
        if i % 3 == 0:
            img.convert("L").save(sub / f"img{i:02d}.png")
        elif i % 3 == 1:
            img.save(sub / f"img{i:02d}.jpg", quality=95)
        else:
            img.save(sub / f"img{i:02d}.bmp")
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
