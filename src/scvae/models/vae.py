"""Gaussian VAE baseline on the same backbone: a diagonal Gaussian posterior per latent position."""
from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Sequence

import torch

from .backbone import Decoder, Encoder
from .base import AutoencoderModel, ContinuousCodes, AutoencoderOutput, register_model
from .losses import reconstruction_loss


@dataclass
class VAEOutput(AutoencoderOutput):
    """Adds mean and logvar (B, d, h, w) of the posterior q(z | x)."""

    mean: torch.Tensor | None = None
    logvar: torch.Tensor | None = None


def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q || N(0, I)) of each latent element, same shape as ``mean``."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)


@register_model
class VAE(ContinuousCodes, AutoencoderModel):
    """VAE with loss = recon + kl_weight * ramp * KL / (C H W); ``ramp`` goes 0 -> 1 over
    ``kl_warmup_steps`` training steps. ``free_bits`` (nats per latent channel and position) stops the
    KL of each channel from being pushed below that floor (Kingma et al. 2016)."""

    model_type = "vae"

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 z_channels: int = 16, kl_weight: float = 1.0, kl_warmup_steps: int = 0, free_bits: float = 0.0,
                 recon_loss: str = "mse"):
        super().__init__(locals())
        self.encoder = Encoder(in_channels=in_channels, z_channels=2 * z_channels, **self.backbone_config())
        self.decoder = Decoder(out_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mean, logvar of q(z | x), each (B, d, h, w); logvar clamped to [-30, 20]."""
        mean, logvar = self.encoder(x).float().chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    @torch.no_grad()
    def bits_back(self, x: torch.Tensor) -> torch.Tensor:
        """KL(q(z | x) || N(0, I)) of each image in bits (B,): the rate of bits-back coding."""
        mean, logvar = self.posterior(x)
        return kl_per_dim(mean, logvar).flatten(1).sum(1).double() / math.log(2)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> posterior means (B, d, h, w): the deterministic code."""
        return self.posterior(x)[0]

    def forward(self, x: torch.Tensor) -> VAEOutput:
        cfg = self.config
        mean, logvar = self.posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean
        x_hat = self.decode_latent(z)
        kl = kl_per_dim(mean, logvar)
        kl_channel = kl.mean(dim=(0, 2, 3))  # (d,) per position
        if cfg["free_bits"] > 0:
            kl_channel = kl_channel.clamp_min(cfg["free_bits"])
        kl_term = kl_channel.sum() * kl.shape[2] * kl.shape[3] / x[0].numel()
        if self.training:
            self.steps_seen += 1
        warm = cfg["kl_warmup_steps"]
        ramp = min(1.0, float(self.steps_seen) / warm) if warm > 0 else 1.0
        losses = {"recon": reconstruction_loss(cfg["recon_loss"], x_hat, x), "kl": kl_term}
        loss = losses["recon"] + cfg["kl_weight"] * ramp * kl_term
        losses = {name: value.detach() for name, value in losses.items()}
        return VAEOutput(reconstruction=x_hat, latent=mean, loss=loss, losses=losses, mean=mean, logvar=logvar)
