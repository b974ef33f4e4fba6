"""Plain autoencoder on the same backbone: the same latent grid and size with no bottleneck constraint.

It is the ceiling of the family: what SC-VAE, VQ-VAE and FSQ give up for their constrained codes.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .backbone import Decoder, Encoder
from .base import AutoencoderModel, ContinuousCodes, AutoencoderOutput, register_model
from .losses import reconstruction_loss


@register_model
class AE(ContinuousCodes, AutoencoderModel):
    """Deterministic autoencoder: codes are the encoder's dense latent (B, z_channels, h, w); loss = recon."""

    model_type = "ae"

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 z_channels: int = 64, recon_loss: str = "mse"):
        super().__init__(locals())
        self.encoder = Encoder(in_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.decoder = Decoder(out_channels=in_channels, z_channels=z_channels, **self.backbone_config())

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> dense latent (B, d, H/f, W/f)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        z = self.encoder(x)
        x_hat = self.decoder(z)
        recon = reconstruction_loss(self.config["recon_loss"], x_hat, x)
        return AutoencoderOutput(reconstruction=x_hat, latent=z, loss=recon, losses={"recon": recon.detach()})
