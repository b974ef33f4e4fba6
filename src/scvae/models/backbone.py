"""Taming-style convolutional encoder and decoder (GroupNorm + SiLU ResNet blocks).

The number of entries in ``ch_mult`` fixes the latent grid: each level after the first
halves the resolution, so ``resolution / 2 ** (len(ch_mult) - 1)`` is the grid side.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
# Zero padding lets a net read where the border is; on the tiny grids of 32 px training crops every
# position is near one, and a whole photo's interior then looks unlike anything seen in training.
DEFAULT_PADDING = "zeros"


def _conv3(in_ch: int, out_ch: int, padding_mode: str) -> nn.Conv2d:
    """A 3 x 3 convolution that keeps the size, its border filled by ``padding_mode`` (see PADDING_MODES)."""
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, padding_mode=padding_mode)


def _norm(channels: int) -> nn.GroupNorm:
    groups = 32 if channels % 32 == 0 else max(g for g in (16, 8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """Pre-activation residual block: (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.0, padding_mode: str = DEFAULT_PADDING):
        super().__init__()
        self.block = nn.Sequential(
            _norm(in_ch), nn.SiLU(), _conv3(in_ch, out_ch, padding_mode),
            _norm(out_ch), nn.SiLU(), nn.Dropout(dropout), _conv3(out_ch, out_ch, padding_mode),
        )
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class AttnBlock(nn.Module):
    """Single-head spatial self-attention: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (t.contiguous().unsqueeze(1) for t in
                   self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1))
        # contiguous: on CPU, strided inputs fall back to the math kernel, which holds the (hw)^2 scores
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int, padding_mode: str = DEFAULT_PADDING):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)
        self.pad_mode = "constant" if padding_mode == "zeros" else padding_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode=self.pad_mode))


class Upsample(nn.Module):
    def __init__(self, channels: int, padding_mode: str = DEFAULT_PADDING):
        super().__init__()
        self.conv = _conv3(channels, channels, padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level_blocks(in_ch: int, out_ch: int, n: int, attn: bool, dropout: float, padding_mode: str
                  ) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers.append(ResnetBlock(in_ch if i == 0 else out_ch, out_ch, dropout, padding_mode))
        if attn:
            layers.append(AttnBlock(out_ch))
    return nn.Sequential(*layers)


def _mid(channels: int, attn: bool, dropout: float, padding_mode: str) -> nn.Sequential:
    layers: list[nn.Module] = [ResnetBlock(channels, channels, dropout, padding_mode)]
    if attn:
        layers += [AttnBlock(channels), ResnetBlock(channels, channels, dropout, padding_mode)]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Image (B, in_channels, H, W) -> latent (B, z_channels, H / f, W / f), f = 2 ** (len(ch_mult) - 1)."""

    def __init__(self, *, in_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 z_channels: int, resolution: int, attn_resolutions: Sequence[int] = (),
                 mid_attn: bool = True, dropout: float = 0.0, padding_mode: str = DEFAULT_PADDING):
        super().__init__()
        self.conv_in = _conv3(in_channels, ch, padding_mode)
        levels: list[nn.Module] = []
        res, prev = resolution, ch
        for i, mult in enumerate(ch_mult):
            out = ch * mult
            levels.append(_level_blocks(prev, out, num_res_blocks, res in attn_resolutions, dropout,
                                       padding_mode))
            prev = out
            if i != len(ch_mult) - 1:
                levels.append(Downsample(out, padding_mode))
                res //= 2
        self.down = nn.Sequential(*levels)
        self.mid = _mid(prev, mid_attn, dropout, padding_mode)
        self.out = nn.Sequential(_norm(prev), nn.SiLU(), _conv3(prev, z_channels, padding_mode))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.mid(self.down(self.conv_in(x))))


class Decoder(nn.Module):
    """Latent (B, z_channels, h, w) -> image (B, out_channels, h * f, w * f); no output non-linearity."""

    def __init__(self, *, out_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 z_channels: int, resolution: int, attn_resolutions: Sequence[int] = (),
                 mid_attn: bool = True, dropout: float = 0.0, padding_mode: str = DEFAULT_PADDING):
        super().__init__()
        top = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = _conv3(z_channels, top, padding_mode)
        self.mid = _mid(top, mid_attn, dropout, padding_mode)
        levels: list[nn.Module] = []
        prev = top
        for i, mult in reversed(list(enumerate(ch_mult))):
            out = ch * mult
            levels.append(_level_blocks(prev, out, num_res_blocks + 1, res in attn_resolutions, dropout,
                                       padding_mode))
            prev = out
            if i != 0:
                levels.append(Upsample(out, padding_mode))
                res *= 2
        self.up = nn.Sequential(*levels)
        self.out = nn.Sequential(_norm(prev), nn.SiLU(), _conv3(prev, out_channels, padding_mode))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.up(self.mid(self.conv_in(z))))
