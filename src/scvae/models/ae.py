"""Plain autoencoder on the same backbone: the same latent grid and size with no bottleneck constraint.

It is the ceiling of the family: what SC-VAE, VQ-VAE and FSQ give up for their constrained codes. With
``rate_weight`` > 0 it is the learned-compression baseline instead (Balle et al. 2017): the latent is
rounded to integers, and the bits of the rounded latent under a factorised prior enter the loss.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..bottlenecks import IdentityBottleneck
from .backbone import DEFAULT_NORM, DEFAULT_PADDING, Decoder, Encoder
from .base import AutoencoderModel, AutoencoderOutput, register_model
from .losses import reconstruction_loss


@register_model
class AE(AutoencoderModel):
    """Deterministic autoencoder: codes are the encoder's dense latent (B, z_channels, h, w); loss = recon.

    rate_weight: 0 (default) for the plain AE. Above 0, trained for rate (:class:`IdentityBottleneck` with
    ``rate``): loss = recon + rate_weight * bits / (C H W), the bits of the latent plus uniform noise under
    a factorised prior; the decoder gets the rounded latent. Its codes are the rounded latent (step 1)."""

    model_type = "ae"
    legacy_prefixes = {"prior_": "bottleneck.prior_"}

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 padding_mode: str = DEFAULT_PADDING, norm: str = DEFAULT_NORM,
                 z_channels: int = 64, rate_weight: float = 0.0, recon_loss: str = "mse"):
        super().__init__(locals())
        if not rate_weight >= 0:
            raise ValueError(f"rate_weight must be >= 0 (0: the plain AE), got {rate_weight}")
        self.encoder = Encoder(in_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.decoder = Decoder(out_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.bottleneck = IdentityBottleneck(z_channels, rate=rate_weight > 0)

    def forward(self, x: torch.Tensor) -> AutoencoderOutput:
        z = self.encoder(x)
        out = self.bottleneck(z)
        x_hat = self.decoder(out.latent_hat)
        recon = reconstruction_loss(self.config["recon_loss"], x_hat, x)
        loss = recon if out.bits is None else recon + self.config["rate_weight"] * out.bits.mean() / x[0].numel()
        return AutoencoderOutput(reconstruction=x_hat, latent=z, loss=loss, losses={"recon": recon.detach(), **out.losses})
