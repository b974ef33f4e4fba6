"""Gaussian VAE baseline on the same backbone: a diagonal Gaussian posterior per latent position."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..bottlenecks import GaussianBottleneck
from .backbone import DEFAULT_NORM, DEFAULT_PADDING, Decoder, Encoder
from .base import AutoencoderModel, AutoencoderOutput, register_model
from .losses import reconstruction_loss


@dataclass
class VAEOutput(AutoencoderOutput):
    """Adds mean and logvar (B, d, h, w) of the posterior q(z | x)."""

    mean: torch.Tensor | None = None
    logvar: torch.Tensor | None = None


@register_model
class VAE(AutoencoderModel):
    """VAE with loss = recon + kl_weight * ramp * KL / (C H W); ``ramp`` goes 0 -> 1 over
    ``kl_warmup_steps`` training steps. ``free_bits`` (nats per latent channel and position) stops the
    KL of each channel from being pushed below that floor (Kingma et al. 2016)."""

    model_type = "vae"

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 padding_mode: str = DEFAULT_PADDING, norm: str = DEFAULT_NORM,
                 z_channels: int = 16, kl_weight: float = 1.0, kl_warmup_steps: int = 0, free_bits: float = 0.0,
                 recon_loss: str = "mse"):
        super().__init__(locals())
        self.encoder = Encoder(in_channels=in_channels, z_channels=2 * z_channels, **self.backbone_config())
        self.decoder = Decoder(out_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.bottleneck = GaussianBottleneck(free_bits)
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mean, logvar of q(z | x), each (B, d, h, w); logvar clamped to [-30, 20]."""
        return self.bottleneck.posterior(self.encoder(x))

    @torch.no_grad()
    def bits_back(self, x: torch.Tensor) -> torch.Tensor:
        """KL(q(z | x) || N(0, I)) of each image in bits (B,): the rate of bits-back coding."""
        return self.bottleneck.bits(self.encoder(x))

    def forward(self, x: torch.Tensor) -> VAEOutput:
        cfg = self.config
        h = self.encoder(x)
        out = self.bottleneck(h)
        x_hat = self.decode_latent(out.latent_hat)
        kl_term = out.loss * h.shape[2] * h.shape[3] / x[0].numel()
        if self.training:
            self.steps_seen += 1
        warm = cfg["kl_warmup_steps"]
        ramp = min(1.0, float(self.steps_seen) / warm) if warm > 0 else 1.0
        losses = {"recon": reconstruction_loss(cfg["recon_loss"], x_hat, x), "kl": kl_term}
        loss = losses["recon"] + cfg["kl_weight"] * ramp * kl_term
        mean, logvar = self.bottleneck.posterior(h)
        return VAEOutput(reconstruction=x_hat, latent=mean, loss=loss,
                         losses={name: value.detach() for name, value in losses.items()}, mean=mean, logvar=logvar)
