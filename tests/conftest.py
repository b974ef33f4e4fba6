import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from .reference.states import TAPS, VGG_CONVS, lpips_states

# With pytest-xdist's workers sharing the cores, each worker and the subprocesses it starts (CLI runs, torchrun)
# get an equal share, so that no two torch jobs compete for one core.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, os.cpu_count() or 1) // _WORKERS)
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(_THREADS)
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"  # its pool of compile processes took 110 s instead of 10 s
torch.set_num_threads(_THREADS)

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


def _write_photo_crops(root: Path, n: int = 12) -> Path:
    import skimage.data

    photo = skimage.data.astronaut()
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(photo[i * 30:i * 30 + 40, i * 25:i * 25 + 48]).save(root / f"img{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny SC-VAE run (3 steps on 12 photo crops), trained once per test session; treat it as read-only."""
    from scvae.cli import main

    base = tmp_path_factory.mktemp("tiny")
    data = _write_photo_crops(base / "images")
    out = base / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--no-progress", "--steps", "3", *TINY,
                 "val_ratio=0.25"]) == 0
    return out


def interrupted_then_resumed(monkeypatch, train, out: Path, step: int) -> None:
    """``train(out)`` (a CLI training call returning its exit code) interrupted by Ctrl-C as it reaches
    ``step``, then ``scvae train --out OUT --resume`` to the end; asserts both exit codes."""
    from scvae.cli import main
    from scvae.training import sampler

    original = sampler.StepSampler.indices

    def interrupt(self, at):
        if at == step:
            raise KeyboardInterrupt
        return original(self, at)

    monkeypatch.setattr(sampler.StepSampler, "indices", interrupt)
    assert train(out) == 2
    monkeypatch.setattr(sampler.StepSampler, "indices", original)
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    """Seeded random weights written in torchvision's VGG16 layout (with classifier keys) and LPIPS v0.1's
    lin layout (tests/reference/states.py)."""
    vgg, lin = lpips_states()
    root = tmp_path_factory.mktemp("lpips")
    torch.save(vgg, root / "vgg16.pth")
    torch.save(lin, root / "vgg.pth")
    return root / "vgg16.pth", root / "vgg.pth", vgg, lin


def reference_lpips(x, y, vgg, lin):
    """LPIPS written directly from the paper's formula and the state dicts' tensors."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def taps(h):
        h, out = (h - shift) / scale, []
        for idx, _, _ in VGG_CONVS:
            if idx in (5, 10, 17, 24):
                h = F.max_pool2d(h, 2)
            h = F.relu(F.conv2d(h, vgg[f"features.{idx}.weight"], vgg[f"features.{idx}.bias"], padding=1))
            if idx in TAPS:
                out.append(h)
        return out

    total = 0
    for i, (a, b) in enumerate(zip(taps(x), taps(y))):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        total = total + (lin[f"lin{i}.model.1.weight"] * (a - b) ** 2).sum(1).mean((1, 2))
    return total
