"""Image I/O and geometry with PIL / numpy / torch: load, resize, crop, convert, save grids."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import ScvaeError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights of R, G, B in grey


def find_images(root: str | os.PathLike) -> list[Path]:
    """All image files under ``root`` (recursive, sorted); a clear error if there are none."""
    root = Path(root)
    if not root.exists():
        raise ScvaeError(f"{root}: no such data folder")
    if root.is_file():
        raise ScvaeError(f"{root}: is a file; --data takes a folder of images")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not paths:
        raise ScvaeError(f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return paths


def load_image(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """Decode a file to uint8 (H, W, channels); raises ScvaeError for unreadable or truncated files."""
    try:
        with Image.open(path) as img:
            img.load()
            return to_uint8_array(img, channels)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ScvaeError(f"{path}: unreadable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def to_uint8_array(img: Image.Image, channels: int = 3) -> np.ndarray:
    """A PIL image as uint8 (H, W, channels), converting mode (RGBA, P, I;16, L, ...) as needed."""
    if img.mode in ("I;16", "I;16B", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if arr.size == 0 or not np.isfinite(arr).all():
            raise ValueError("empty image or NaN / infinite pixel values")
        lo, hi = float(arr.min()), float(arr.max())
        img = Image.fromarray(((arr - lo) / max(hi - lo, 1e-12) * 255).round().astype(np.uint8))
    img = img.convert("RGB" if channels == 3 else "L")
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def as_image_array(image) -> np.ndarray:
    """Any in-memory image -> uint8 (H, W, 3), or a one-line ScvaeError saying what is wrong with it.

    Accepts numpy arrays and torch tensors: (H, W) gray, (H, W, C) with C in 1, 3, 4 (alpha dropped), or a
    torch-style (C, H, W) tensor; uint8, other integers up to 255, or floats in [0, 1].
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dim() == 3 and image.shape[0] in (1, 3, 4) and image.shape[2] not in (1, 3, 4):
            image = image.permute(1, 2, 0)
        image = image.numpy()
    if not isinstance(image, np.ndarray):
        raise ScvaeError(f"expected an image array (numpy or torch), got {type(image).__name__}")
    arr = image[:, :, None] if image.ndim == 2 else image
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise ScvaeError(f"expected an image of shape (H, W), (H, W, 1|3|4) or (1|3, H, W), got {tuple(image.shape)}")
    arr = arr[:, :, :3]
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ScvaeError("image has NaN or infinite pixel values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise ScvaeError(f"float images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
        arr = np.round(arr * 255)
    elif arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
            raise ScvaeError(f"integer images must hold values in [0, 255] (dtype {arr.dtype})")
    arr = np.ascontiguousarray(arr.astype(np.uint8))
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def match_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W, C) -> (H, W, channels): gray repeated to RGB, or RGB to luma (ITU-R 601 weights)."""
    if arr.shape[2] == channels:
        return arr
    if channels == 3:
        return np.repeat(arr, 3, axis=2)
    return np.round(arr[:, :, :3] @ np.array(LUMA)).astype(np.uint8)[:, :, None]


def resize_shorter(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (H, W, C) so the shorter side is ``size`` (antialiased bicubic), keeping aspect."""
    h, w = arr.shape[:2]
    if min(h, w) == size:
        return arr
    scale = size / min(h, w)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    out = np.asarray(img.resize(new, Image.Resampling.BICUBIC, reducing_gap=3.0))
    return out[:, :, None] if out.ndim == 2 else out


def center_crop(arr: np.ndarray, size: int) -> np.ndarray:
    h, w = arr.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return arr[top:top + size, left:left + size]


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C) -> float (C, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (C, H, W) in [-1, 1] -> uint8 (H, W, C) (clamped)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def save_image(x: torch.Tensor, path: str | os.PathLike) -> None:
    """Write one (C, H, W) image in [-1, 1] as PNG (grayscale when C == 1)."""
    arr = to_uint8(x)
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path)


def make_grid(images: torch.Tensor, nrow: int = 8, pad: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """(N, C, H, W) -> one (C, rows * (H + pad) + pad, nrow * (W + pad) + pad) image."""
    n, c, h, w = images.shape
    nrow = max(1, min(nrow, n))
    rows = math.ceil(n / nrow)
    grid = images.new_full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = images[i]
    return grid


def save_grid(rows: Sequence[torch.Tensor] | torch.Tensor, path: str | os.PathLike, nrow: int = 8,
              upscale: int = 1) -> None:
    """Save a PNG grid; ``rows`` is one (N, C, H, W) batch or several stacked as row groups
    (e.g. inputs over reconstructions). ``upscale`` enlarges tiny images (nearest) for viewing."""
    batches: Iterable[torch.Tensor] = [rows] if isinstance(rows, torch.Tensor) else rows
    stacked = []
    for batch in batches:
        batch = batch[:nrow] if not isinstance(rows, torch.Tensor) else batch
        stacked.append(batch.detach().float().cpu().clamp(-1, 1))
    images = torch.cat(stacked)
    if upscale > 1:
        images = torch.nn.functional.interpolate(images, scale_factor=upscale, mode="nearest")
    save_image(make_grid(images, nrow=nrow), path)
