"""Plain autoencoder on the same backbone: the same latent grid and size with no bottleneck constraint.

It is the ceiling of the family: what SC-VAE, VQ-VAE and FSQ give up for their constrained codes. With
``rate_weight`` > 0 it is the learned-compression baseline instead (Balle et al. 2017): the latent is
rounded to integers, and the bits of the rounded latent under a factorised prior enter the loss.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..sparse.rate import logistic_bin_bits
from .backbone import Decoder, Encoder
from .base import AutoencoderModel, ContinuousCodes, AutoencoderOutput, register_model
from .losses import reconstruction_loss


@register_model
class AE(ContinuousCodes, AutoencoderModel):
    """Deterministic autoencoder: codes are the encoder's dense latent (B, z_channels, h, w); loss = recon.

    rate_weight: 0 (default) for the plain AE. Above 0, trained for rate: loss = recon + rate_weight * bits /
    (C H W), where bits are those of the latent plus uniform noise U(-1/2, 1/2) under a factorised prior,
    one logistic per channel with a learned location and scale, integrated over each unit bin (the
    training proxy of rounding, Balle et al. 2017); the decoder gets the rounded latent, with a
    straight-through gradient. Its codes are the rounded latent (step 1)."""

    model_type = "ae"

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 z_channels: int = 64, rate_weight: float = 0.0, recon_loss: str = "mse"):
        super().__init__(locals())
        if not rate_weight >= 0:
            raise ValueError(f"rate_weight must be >= 0 (0: the plain AE), got {rate_weight}")
        self.encoder = Encoder(in_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.decoder = Decoder(out_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        if rate_weight > 0:
            self.prior_loc = nn.Parameter(torch.zeros(z_channels))
            self.prior_log_scale = nn.Parameter(torch.zeros(z_channels))

    @property
    def rate_trained(self) -> bool:
        return self.config.get("rate_weight", 0.0) > 0

    def symbol_step(self) -> float | None:
        return 1.0 if self.rate_trained else None

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> dense latent (B, d, H/f, W/f) (rounded when trained for rate)."""
        z = self.encoder(x)
        return torch.round(z) if self.rate_trained else z

    def latent_bits(self, latent: torch.Tensor) -> torch.Tensor:
        """Bits of each image's latent (B, d, h, w) under the factorised prior: per entry -log2 of the
        logistic's mass on [y - 1/2, y + 1/2]; (B,)."""
        bits = logistic_bin_bits(latent, self.prior_loc.view(1, -1, 1, 1), self.prior_log_scale.view(1, -1, 1, 1))
        return bits.flatten(1).sum(1)

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        z = self.encoder(x)
        if not self.rate_trained:
            x_hat = self.decoder(z)
            recon = reconstruction_loss(self.config["recon_loss"], x_hat, x)
            return AutoencoderOutput(reconstruction=x_hat, latent=z, loss=recon, losses={"recon": recon.detach()})
        rounded = z + (torch.round(z) - z).detach()
        x_hat = self.decoder(rounded)
        noisy = z.float() + torch.rand_like(z.float()) - 0.5 if self.training else torch.round(z.float())
        bits = self.latent_bits(noisy).mean()
        recon = reconstruction_loss(self.config["recon_loss"], x_hat, x)
        loss = recon + self.config["rate_weight"] * bits / x[0].numel()
        return AutoencoderOutput(reconstruction=x_hat, latent=z, loss=loss,
                                 losses={"recon": recon.detach(), "bits": bits.detach()})
