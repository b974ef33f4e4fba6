"""Ground-truth masks: reading the common formats and pairing them with their images.

Formats (``mode="auto"`` decides per file):

- binary: lossy JPEG masks (Weizmann horses) or masks whose only values are 0 and 255 (ISBI EM):
  value >= ``threshold`` -> 1, else 0;
- index: single-channel or palette PNGs whose values are class ids (CamVid, Pascal VOC);
- colour: RGB masks with one colour per class: each colour becomes the id r * 65536 + g * 256 + b,
  which is the same for the same colour in every file.
"""
from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ScvaeError
from .images import find_images, load_image

MASK_MODES = ("auto", "binary", "index", "colour")
ASPECT_TOLERANCE = 0.02


def load_mask(path: str | os.PathLike, mode: str = "auto", threshold: int = 128) -> np.ndarray:
    """Decode a mask file to an int64 label map (H, W) (see the module docstring for the modes)."""
    if mode not in MASK_MODES:
        raise ScvaeError(f"mask mode must be one of {', '.join(MASK_MODES)}, got {mode!r}")
    try:
        with Image.open(path) as img:
            img.load()
            lossy = img.format == "JPEG"
            if img.mode in ("RGB", "RGBA"):
                arr = np.asarray(img.convert("RGB"))
                if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
                    arr = arr[..., 0]
            elif img.mode in ("P", "L", "I", "I;16", "1"):
                arr = np.asarray(img if img.mode != "1" else img.convert("L"))
            else:
                arr = np.asarray(img.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ScvaeError(f"{path}: unreadable mask ({exc})") from None
    arr = arr.astype(np.int64)
    if mode == "auto":
        if arr.ndim == 3:
            mode = "colour"
        elif lossy or set(np.unique(arr).tolist()) <= {0, 255}:
            mode = "binary"
        else:
            mode = "index"
    if mode == "colour":
        if arr.ndim != 3:
            raise ScvaeError(f"{path}: mask mode 'colour' needs an RGB mask")
        return arr[..., 0] * 65536 + arr[..., 1] * 256 + arr[..., 2]
    if arr.ndim == 3:
        raise ScvaeError(f"{path}: an RGB mask with several colours; use mask mode 'colour'")
    return (arr >= threshold).astype(np.int64) if mode == "binary" else arr


def pair_images_with_masks(images: str | os.PathLike, masks: str | os.PathLike, mask_suffix: str = ""
                           ) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of two folders, matched by file stem (a mask's stem minus ``mask_suffix``).
    Images without a mask are skipped with one counted warning; none paired is an error."""
    image_paths, mask_paths = find_images(images), find_images(masks)
    if not mask_suffix and not {p.stem for p in image_paths} & {p.stem for p in mask_paths}:
        mask_suffix = infer_mask_suffix([p.stem for p in image_paths], [p.stem for p in mask_paths])
    by_stem: dict[str, Path] = {}
    for path in mask_paths:
        stem = path.stem[: -len(mask_suffix)] if mask_suffix and path.stem.endswith(mask_suffix) else path.stem
        by_stem.setdefault(stem, path)
    pairs = [(p, by_stem[p.stem]) for p in image_paths if p.stem in by_stem]
    if not pairs:
        raise ScvaeError(f"no image of {images} has a mask in {masks} with the same file name "
                         f"(e.g. {image_paths[0].stem}{mask_suffix}.png); set --mask-suffix if masks add a suffix")
    missing = len(image_paths) - len(pairs)
    if missing:
        first = next(p for p in image_paths if p.stem not in by_stem)
        warnings.warn(f"skipped {missing} image(s) without a mask; first: {first}", stacklevel=2)
    return pairs


def infer_mask_suffix(image_stems: list[str], mask_stems: list[str]) -> str:
    """The suffix most masks add to an image's stem ('horse001' -> 'horse001_mask' gives '_mask'), or ''."""
    known, counts = set(image_stems), Counter()
    for stem in mask_stems:
        cuts = [i for i in range(len(stem) - 1, 0, -1) if stem[:i] in known]
        if cuts:
            counts[stem[cuts[0]:]] += 1
    if not counts:
        return ""
    suffix, n = counts.most_common(1)[0]
    if n < len(mask_stems) / 2:
        return ""
    warnings.warn(f"masks are paired with images by the suffix {suffix!r} ({n} of {len(mask_stems)} masks)",
                  stacklevel=3)
    return suffix


def load_pair(image_path: Path, mask_path: Path, channels: int = 3, mode: str = "auto",
              threshold: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """The image (uint8 (H, W, C)) at its mask's size and the mask (int64 (H, W)). An image of another
    size but the same aspect ratio (within 2 %) is resized to the mask (bilinear); otherwise it is an error."""
    image, mask = load_image(image_path, channels), load_mask(mask_path, mode, threshold)
    (h, w), (mh, mw) = image.shape[:2], mask.shape
    if (h, w) != (mh, mw):
        if abs((w / h) / (mw / mh) - 1) > ASPECT_TOLERANCE:
            raise ScvaeError(f"{image_path} ({w}x{h}) and its mask {mask_path} ({mw}x{mh}) differ in aspect ratio")
        squeezed = image[:, :, 0] if image.shape[2] == 1 else image
        resized = np.asarray(Image.fromarray(squeezed).resize((mw, mh), Image.Resampling.BILINEAR, reducing_gap=3.0))
        image = resized[:, :, None] if resized.ndim == 2 else resized
    return image, mask
