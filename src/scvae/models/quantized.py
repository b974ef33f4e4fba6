"""The quantised baselines on the same backbone: encoder -> a quantizer bottleneck -> decoder.

- ``vqvae``: the plain VQ-VAE (:class:`~scvae.bottlenecks.VQBottleneck`), anti-collapse options off;
- ``vqvae-strong``: the modern VQ recipe (:class:`~scvae.bottlenecks.StrongVQBottleneck`);
- ``fsq``: Finite Scalar Quantization (:class:`~scvae.bottlenecks.FSQBottleneck`);
- ``rvq``: residual VQ (:class:`~scvae.bottlenecks.ResidualVQBottleneck`).

Codes are indices (B, h, w); the residual VQ's are (B, Q, h, w), one index per stage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..bottlenecks import FSQBottleneck, ResidualVQBottleneck, StrongVQBottleneck, VQBottleneck
from .backbone import DEFAULT_NORM, DEFAULT_PADDING, Decoder, Encoder
from .base import AutoencoderModel, AutoencoderOutput, register_model
from .losses import reconstruction_loss


@dataclass
class QuantizedOutput(AutoencoderOutput):
    """Adds indices (B, h, w): the code of each position."""

    indices: torch.Tensor | None = None


class _QuantizedAutoencoder(AutoencoderModel):
    """encoder -> quantizer bottleneck -> decoder; loss = reconstruction + the bottleneck's loss."""

    legacy_prefixes = {"quantizer.": "bottleneck.quantizer."}

    def _build(self, bottleneck) -> None:
        cfg = self.config
        self.encoder = Encoder(in_channels=cfg["in_channels"], z_channels=cfg["z_channels"], **self.backbone_config())
        self.decoder = Decoder(out_channels=cfg["in_channels"], z_channels=cfg["z_channels"], **self.backbone_config())
        self.bottleneck = bottleneck

    @property
    def codebook_size(self) -> int:
        """Number of distinct codes (per stage for the residual VQ)."""
        return self.bottleneck.codebook_size

    def forward(self, x: torch.Tensor) -> QuantizedOutput:
        z = self.encoder(x)
        out = self.bottleneck(z)
        x_hat = self.decoder(out.latent_hat.to(z.dtype))
        recon = reconstruction_loss(self.config["recon_loss"], x_hat, x)
        return QuantizedOutput(reconstruction=x_hat, latent=z, loss=recon + out.loss,
                               losses={"recon": recon.detach(), **out.losses}, indices=out.codes)


@register_model
class VQVAE(_QuantizedAutoencoder):
    """VQ-VAE: loss = recon + codebook loss (unless EMA) + commitment_weight * ||z - sg(e)||^2."""

    model_type = "vqvae"
    legacy_prefixes = {"quantizer.": "bottleneck."}

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 padding_mode: str = DEFAULT_PADDING, norm: str = DEFAULT_NORM,
                 z_channels: int = 16, codebook_size: int = 121, commitment_weight: float = 0.25,
                 ema: bool = False, ema_decay: float = 0.99, dead_code_threshold: float = 0.0,
                 l2_normalize: bool = False, recon_loss: str = "mse"):
        super().__init__(locals())
        self._build(VQBottleneck(codebook_size, z_channels, ema=ema, decay=ema_decay,
                                 dead_code_threshold=dead_code_threshold, l2_normalize=l2_normalize,
                                 commitment_weight=commitment_weight))


@register_model
class StrongVQVAE(_QuantizedAutoencoder):
    """VQ-VAE with cosine lookup in a ``codebook_dim`` projection, EMA (``decay``), k-means init and
    restart of codes whose EMA cluster size falls below ``dead_code_threshold``."""

    model_type = "vqvae-strong"

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 padding_mode: str = DEFAULT_PADDING, norm: str = DEFAULT_NORM,
                 z_channels: int = 64, codebook_size: int = 1024, codebook_dim: int = 8, decay: float = 0.8,
                 commitment_weight: float = 0.25, dead_code_threshold: float = 2.0, kmeans_init: bool = True,
                 recon_loss: str = "mse"):
        super().__init__(locals())
        self._build(StrongVQBottleneck(z_channels, codebook_size, codebook_dim=codebook_dim, decay=decay,
                                       commitment_weight=commitment_weight, dead_code_threshold=dead_code_threshold,
                                       kmeans_init=kmeans_init))


@register_model
class FSQVAE(_QuantizedAutoencoder):
    """FSQ autoencoder: ``levels`` (e.g. [8, 5, 5, 5]: 1000 implicit codes) after a learned projection."""

    model_type = "fsq"

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 padding_mode: str = DEFAULT_PADDING, norm: str = DEFAULT_NORM,
                 z_channels: int = 64, levels: Sequence[int] = (8, 5, 5, 5), recon_loss: str = "mse"):
        super().__init__(locals())
        bottleneck = FSQBottleneck(z_channels, levels)
        self.config["levels"] = bottleneck.levels
        self._build(bottleneck)

    def level_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> each dimension's level (B, len(levels), h, w), integers in [0, levels[i])."""
        return self.bottleneck.level_indices(indices)


@register_model
class ResidualVQVAE(_QuantizedAutoencoder):
    """Residual VQ-VAE: ``num_quantizers`` stages of ``codebook_size`` Euclidean codes, each with EMA
    (``decay``), k-means init and dead-code restart; up to ``num_quantizers * log2(codebook_size)`` bits per
    position. The EMA decay is SoundStream's 0.99: the single VQ's 0.8 left 16 stages 0.6 dB worse
    (docs/design.md, *Sixth round*)."""

    model_type = "rvq"

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 padding_mode: str = DEFAULT_PADDING, norm: str = DEFAULT_NORM,
                 z_channels: int = 64, codebook_size: int = 1024, num_quantizers: int = 8, decay: float = 0.99,
                 commitment_weight: float = 0.25, dead_code_threshold: float = 2.0, kmeans_init: bool = True,
                 recon_loss: str = "mse"):
        super().__init__(locals())
        self._build(ResidualVQBottleneck(z_channels, codebook_size, num_quantizers, decay=decay,
                                         commitment_weight=commitment_weight,
                                         dead_code_threshold=dead_code_threshold, kmeans_init=kmeans_init))

    @property
    def num_codebooks(self) -> int:
        return self.bottleneck.num_codebooks
