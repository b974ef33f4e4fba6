"""Taming-style convolutional encoder and decoder (normalised SiLU ResNet blocks, optional mid-block attention).

The number of entries in ``ch_mult`` fixes the latent grid: each level after the first
halves the resolution, so ``resolution / 2 ** (len(ch_mult) - 1)`` is the grid side.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
DEFAULT_PADDING = "zeros"
# "group": GroupNorm, statistics over the whole field (taming's choice); "channel": each position's channels
# normalised on their own (LayerNorm over channels), so no statistic depends on the input's size or border.
# The default is "channel": with GroupNorm a model trained on 32 px crops lost 9-15 dB on larger inputs
# (docs/results.md, *Whole images*). Configs saved before the option existed were GroupNorm models.
NORMS = ("group", "channel")
DEFAULT_NORM = "channel"
LEGACY_NORM = "group"


@dataclass(frozen=True)
class LayerStyle:
    """How the backbone's layers treat the field: the convolutions' ``padding_mode`` and the ``norm``."""

    padding_mode: str = DEFAULT_PADDING
    norm: str = DEFAULT_NORM

    def __post_init__(self):
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {self.padding_mode!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")


def _conv3(in_ch: int, out_ch: int, style: LayerStyle) -> nn.Conv2d:
    """A 3 x 3 convolution that keeps the size, its border filled by ``style.padding_mode``."""
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, padding_mode=style.padding_mode)


class ChannelNorm(nn.GroupNorm):
    """LayerNorm over each position's channels, kept as a one-group GroupNorm (the same state dict as the
    GroupNorm it replaces): (B, C, H, W) -> (B, C, H, W), independent of H, W and of every other position."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__(1, channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # layer_norm over the last axis of a channels-last view: one fused kernel
        channels_last = x.permute(0, 2, 3, 1)
        return F.layer_norm(channels_last, (self.num_channels,), self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


def _working_layout(x: torch.Tensor, norm: str) -> torch.Tensor:
    """With the channel norm, ``x`` channels-last in memory (same shape), so that every layer after it stays
    channels-last: the norm reads each position's channels in place, and a residual stream left in (B, C, H, W)
    order would be copied in and out of that layout at every norm (it cost an SC-VAE step 14 %)."""
    return x.contiguous(memory_format=torch.channels_last) if norm == "channel" else x


def _norm(channels: int, style: LayerStyle) -> nn.GroupNorm:
    groups = 32 if channels % 32 == 0 else max(g for g in (16, 8, 4, 2, 1) if channels % g == 0)
    if style.norm == "channel":  # all channels together, as ConvNeXt's LayerNorm: a few would be too noisy
        return ChannelNorm(channels, eps=1e-6)
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """Pre-activation residual block: (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.0, style: LayerStyle = LayerStyle()):
        super().__init__()
        self.block = nn.Sequential(
            _norm(in_ch, style), nn.SiLU(), _conv3(in_ch, out_ch, style),
            _norm(out_ch, style), nn.SiLU(), nn.Dropout(dropout), _conv3(out_ch, out_ch, style),
        )
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class AttnBlock(nn.Module):
    """Single-head spatial self-attention: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, style: LayerStyle = LayerStyle()):
        super().__init__()
        self.norm = _norm(channels, style)
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
    def __init__(self, channels: int, style: LayerStyle = LayerStyle()):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)
        self.pad_mode = "constant" if style.padding_mode == "zeros" else style.padding_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode=self.pad_mode))


class Upsample(nn.Module):
    def __init__(self, channels: int, style: LayerStyle = LayerStyle()):
        super().__init__()
        self.conv = _conv3(channels, channels, style)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level_blocks(in_ch: int, out_ch: int, n: int, attn: bool, dropout: float, style: LayerStyle
                  ) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers.append(ResnetBlock(in_ch if i == 0 else out_ch, out_ch, dropout, style))
        if attn:
            layers.append(AttnBlock(out_ch, style))
    return nn.Sequential(*layers)


def _mid(channels: int, attn: bool, dropout: float, style: LayerStyle) -> nn.Sequential:
    layers: list[nn.Module] = [ResnetBlock(channels, channels, dropout, style)]
    if attn:
        layers += [AttnBlock(channels, style), ResnetBlock(channels, channels, dropout, style)]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Image (B, in_channels, H, W) -> latent (B, z_channels, H / f, W / f), f = 2 ** (len(ch_mult) - 1)."""

    def __init__(self, *, in_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 z_channels: int, resolution: int, attn_resolutions: Sequence[int] = (),
                 mid_attn: bool = True, dropout: float = 0.0, padding_mode: str = DEFAULT_PADDING,
                 norm: str = DEFAULT_NORM):
        super().__init__()
        style = LayerStyle(padding_mode, norm)
        self.norm_kind = norm
        self.conv_in = _conv3(in_channels, ch, style)
        levels: list[nn.Module] = []
        res, prev = resolution, ch
        for i, mult in enumerate(ch_mult):
            out = ch * mult
            levels.append(_level_blocks(prev, out, num_res_blocks, res in attn_resolutions, dropout,
                                       style))
            prev = out
            if i != len(ch_mult) - 1:
                levels.append(Downsample(out, style))
                res //= 2
        self.down = nn.Sequential(*levels)
        self.mid = _mid(prev, mid_attn, dropout, style)
        self.out = nn.Sequential(_norm(prev, style), nn.SiLU(), _conv3(prev, z_channels, style))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.mid(self.down(self.conv_in(_working_layout(x, self.norm_kind))))).contiguous()


class Decoder(nn.Module):
    """Latent (B, z_channels, h, w) -> image (B, out_channels, h * f, w * f); no output non-linearity."""

    def __init__(self, *, out_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 z_channels: int, resolution: int, attn_resolutions: Sequence[int] = (),
                 mid_attn: bool = True, dropout: float = 0.0, padding_mode: str = DEFAULT_PADDING,
                 norm: str = DEFAULT_NORM):
        super().__init__()
        style = LayerStyle(padding_mode, norm)
        self.norm_kind = norm
        top = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = _conv3(z_channels, top, style)
        self.mid = _mid(top, mid_attn, dropout, style)
        levels: list[nn.Module] = []
        prev = top
        for i, mult in reversed(list(enumerate(ch_mult))):
            out = ch * mult
            levels.append(_level_blocks(prev, out, num_res_blocks + 1, res in attn_resolutions, dropout,
                                       style))
            prev = out
            if i != 0:
                levels.append(Upsample(out, style))
                res *= 2
        self.up = nn.Sequential(*levels)
        self.out = nn.Sequential(_norm(prev, style), nn.SiLU(), _conv3(prev, out_channels, style))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.up(self.mid(self.conv_in(_working_layout(z, self.norm_kind))))).contiguous()
