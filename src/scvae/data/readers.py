"""Readers for the common research formats besides image folders: CIFAR-10 python pickles and MNIST idx.

CIFAR pickles are read with a restricted unpickler that only admits numpy's array reconstruction, so a
malicious file cannot execute code.
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from ..errors import ScvaeError

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def is_cifar_batch(path: Path) -> bool:
    return path.is_file() and (path.name.startswith("data_batch") or path.name == "test_batch")


def is_idx_images(path: Path) -> bool:
    return path.is_file() and ("idx3-ubyte" in path.name or "images-idx3" in path.name)


def read_cifar_batch(path: str | os.PathLike) -> list[np.ndarray]:
    """A CIFAR-10/100 python batch -> list of uint8 (32, 32, 3)."""
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
        data = _pixel_values(np.asarray(batch[b"data"] if b"data" in batch else batch["data"]))
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, OSError) as exc:
        raise ScvaeError(f"{path}: not a readable CIFAR python batch ({exc})") from None
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ScvaeError(f"{path}: CIFAR batch 'data' must be (N, 3072), got {data.shape}")
    return list(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _pixel_values(values: np.ndarray) -> np.ndarray:
    """An array of pixel values 0-255 as uint8; a ValueError for anything a cast would corrupt silently
    (NaN, infinities, fractions, values out of range, non-numbers)."""
    if values.dtype == np.uint8:
        return values
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise ValueError(f"'data' must hold numbers, got dtype {values.dtype}")
    if values.size and (not np.isfinite(values).all() or values.min() < 0 or values.max() > 255
                        or (values != np.round(values)).any()):
        raise ValueError(f"'data' must hold integer pixel values 0-255 ({values.dtype} with NaN, "
                         "infinite, fractional or out-of-range values)")
    return values.astype(np.uint8)


def read_idx_images(path: str | os.PathLike) -> list[np.ndarray]:
    """An MNIST-style idx3 file (optionally .gz) -> list of uint8 (H, W, 1)."""
    try:
        raw = Path(path).read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08 or ndim != 3:
            raise ValueError(f"magic {raw[:4].hex()} is not uint8 3-D idx")
        n, h, w = struct.unpack(">III", raw[4:16])
        if 0 in (n, h, w):
            raise ValueError(f"a zero-size dimension ({n} images of {h} x {w})")
        data = np.frombuffer(raw, dtype=np.uint8, count=n * h * w, offset=16)
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise ScvaeError(f"{path}: not a readable idx image file ({exc})") from None
    return list(data.reshape(n, h, w, 1))


def read_array_file(path: Path) -> list[np.ndarray] | None:
    """Images from one CIFAR batch or idx file, or None if ``path`` is neither."""
    if is_cifar_batch(path):
        return read_cifar_batch(path)
    if is_idx_images(path):
        return read_idx_images(path)
    return None


def array_files(root: Path) -> list[Path]:
    """CIFAR batches and idx image files directly in ``root`` (sorted)."""
    if root.is_file():
        return [root] if (is_cifar_batch(root) or is_idx_images(root)) else []
    return sorted(p for p in root.iterdir() if is_cifar_batch(p) or is_idx_images(p))
