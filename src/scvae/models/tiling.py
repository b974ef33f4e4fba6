"""Whole images through a model trained on crops: overlapping tiles of the training size, blended.

The backbone's GroupNorm normalises over the whole field it is given, and its mid-level attention attends
over it, so a model trained on 32 px crops sees other statistics on a 480 x 360 photo: colour casts and
textures a crop never shows (the quick-start model lost 10-15 dB; see README, *Whole images*). Tiling at
the training size gives every tile the field the model was trained on; overlapping tiles are blended with
linear ramps so no seam shows (as diffusers' VAE tiling does for the same reason).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def pad_bottom_right(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """x (B, C, H, W) padded by ``rows`` at the bottom and ``cols`` on the right: reflected, or replicated
    when a reflection would need more pixels than the image has."""
    if not (rows or cols):
        return x
    mode = "reflect" if rows < x.shape[-2] and cols < x.shape[-1] else "replicate"
    return F.pad(x, (0, cols, 0, rows), mode=mode)


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Offsets of tiles of ``tile`` px every ``stride`` px that cover ``length`` px (the last one flush
    with the end)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(tile: int, overlap: int) -> torch.Tensor:
    """(tile,) blending weights: rising linearly over ``overlap`` px at each side, 1 in between, never 0."""
    i = torch.arange(tile, dtype=torch.float32)
    return torch.minimum(torch.minimum(i + 1, tile - i) / (overlap + 1), torch.ones(()))


@torch.no_grad()
def reconstruct_tiled(reconstruct: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int,
                      overlap: int, max_batch: int = 64) -> torch.Tensor:
    """x (B, C, H, W) -> its reconstruction (B, C, H, W): ``reconstruct`` applied to overlapping
    ``tile`` x ``tile`` tiles (``overlap`` px shared by neighbours, a multiple of the downsampling factor
    so every tile's grid aligns) and the tiles blended. Images smaller than a tile are reflected up to it."""
    b, c, h, w = x.shape
    x = pad_bottom_right(x, max(0, tile - h), max(0, tile - w))
    height, width = x.shape[-2:]
    stride = tile - overlap
    boxes = [(top, left) for top in tile_starts(height, tile, stride) for left in tile_starts(width, tile, stride)]
    edge = ramp(tile, overlap)
    weight = (edge[:, None] * edge[None, :]).to(x.device, x.dtype)
    out = torch.zeros_like(x)
    total = torch.zeros(height, width, device=x.device, dtype=x.dtype)
    per_call = max(1, max_batch // b)  # tiles per reconstruct call
    for first in range(0, len(boxes), per_call):
        chunk = boxes[first:first + per_call]
        tiles = torch.cat([x[..., t:t + tile, l:l + tile] for t, l in chunk])
        rebuilt = reconstruct(tiles).reshape(len(chunk), b, c, tile, tile)
        for (t, l), piece in zip(chunk, rebuilt):
            out[..., t:t + tile, l:l + tile] += piece * weight
            total[t:t + tile, l:l + tile] += weight
    return (out / total)[..., :h, :w]
