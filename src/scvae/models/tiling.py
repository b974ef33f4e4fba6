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


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(top, left) of the overlapping ``tile`` x ``tile`` tiles, ``overlap`` px shared by neighbours, that cover
    an image of ``height`` x ``width`` px (reflected up to one tile where smaller), in raster order."""
    stride = tile - overlap
    return [(top, left) for top in tile_starts(max(height, tile), tile, stride)
            for left in tile_starts(max(width, tile), tile, stride)]


def split_tiles(x: torch.Tensor, tile: int, overlap: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """x (B, C, H, W) -> its tiles (n B, C, tile, tile), tile-major, and their boxes (see :func:`tile_boxes`);
    images smaller than a tile are reflected up to it."""
    boxes = tile_boxes(*x.shape[-2:], tile, overlap)
    x = pad_bottom_right(x, max(0, tile - x.shape[-2]), max(0, tile - x.shape[-1]))
    return torch.cat([x[..., t:t + tile, l:l + tile] for t, l in boxes]), boxes


def blend_tiles(pieces: torch.Tensor, boxes: list[tuple[int, int]], height: int, width: int, overlap: int
                ) -> torch.Tensor:
    """Tiles (n B, C, tile, tile) in the order of ``boxes`` -> the image (B, C, height, width), each pixel the
    ramp-weighted mean of the tiles over it."""
    n, tile = len(boxes), pieces.shape[-1]
    pieces = pieces.reshape(n, -1, *pieces.shape[1:])
    edge = ramp(tile, overlap)
    weight = (edge[:, None] * edge[None, :]).to(pieces.device, pieces.dtype)
    full_h, full_w = max(height, tile), max(width, tile)
    out = pieces.new_zeros(pieces.shape[1], pieces.shape[2], full_h, full_w)
    total = pieces.new_zeros(full_h, full_w)
    for (t, l), piece in zip(boxes, pieces):
        out[..., t:t + tile, l:l + tile] += piece * weight
        total[t:t + tile, l:l + tile] += weight
    return (out / total)[..., :height, :width]


@torch.no_grad()
def reconstruct_tiled(reconstruct: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int,
                      overlap: int, max_batch: int = 64) -> torch.Tensor:
    """x (B, C, H, W) -> its reconstruction (B, C, H, W): ``reconstruct`` applied to overlapping
    ``tile`` x ``tile`` tiles (``overlap`` px shared by neighbours, a multiple of the downsampling factor
    so every tile's grid aligns) and the tiles blended. Images smaller than a tile are reflected up to it."""
    tiles, boxes = split_tiles(x, tile, overlap)
    rebuilt = torch.cat([reconstruct(chunk) for chunk in tiles.split(max(max_batch // len(x), 1) * len(x))])
    return blend_tiles(rebuilt, boxes, *x.shape[-2:], overlap)
