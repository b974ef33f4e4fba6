"""Continuous bottlenecks: the AE's identity (optionally trained for rate) and the VAE's Gaussian posterior."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..sparse import BottleneckOutput
from ..sparse.rate import logistic_bin_bits
from .base import Bottleneck


class _RealCodes(Bottleneck):
    """Codes that are real latents: they are the decoder's input, and every real vector is a valid code."""

    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        return codes

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors.float()


class IdentityBottleneck(_RealCodes):
    """The plain autoencoder's bottleneck: the latent (B, d, h, w) passes unchanged and is its own code.

    rate: trained for rate instead, the learned-compression baseline (Balle et al. 2017): the decoder gets
    the latent rounded to integers (straight-through), and ``losses['bits']`` holds each image's bits of the
    latent plus uniform noise U(-1/2, 1/2) (rounded outside training) under a factorised prior, one logistic
    per channel with a learned location and scale, integrated over each unit bin; ``out.bits`` (B,) keeps
    their gradient. The caller weights them: they are not in ``loss``, as their weight depends on the image
    size."""

    def __init__(self, dim: int, rate: bool = False):
        super().__init__()
        self.rate = rate
        if rate:
            self.prior_loc = nn.Parameter(torch.zeros(dim))
            self.prior_log_scale = nn.Parameter(torch.zeros(dim))

    def latent_bits(self, latent: torch.Tensor) -> torch.Tensor:
        """Bits of each image's latent (B, d, h, w) under the factorised prior: per entry -log2 of the
        logistic's mass on [y - 1/2, y + 1/2]; (B,)."""
        bits = logistic_bin_bits(latent, self.prior_loc.view(1, -1, 1, 1), self.prior_log_scale.view(1, -1, 1, 1))
        return bits.flatten(1).sum(1)

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        if not self.rate:
            return BottleneckOutput(latent_hat=z, codes=z, latent=z, loss=z.new_zeros(()))
        rounded = z + (torch.round(z) - z).detach()
        noisy = z.float() + torch.rand_like(z.float()) - 0.5 if self.training else torch.round(z.float())
        bits = self.latent_bits(noisy)
        return BottleneckOutput(latent_hat=rounded, codes=torch.round(z), latent=z, loss=z.new_zeros(()),
                                losses={"bits": bits.mean().detach()}, bits=bits)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> itself (rounded when trained for rate)."""
        return torch.round(z) if self.rate else z

    def symbol_step(self) -> float | None:
        return 1.0 if self.rate else None


def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q || N(0, I)) of each latent element, same shape as ``mean``."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)


class GaussianBottleneck(_RealCodes):
    """The VAE's bottleneck: the encoder's (B, 2d, h, w) output is the mean and log-variance of a diagonal
    Gaussian posterior q(z | x) per position (log-variance clamped to [-30, 20]); in training the decoder
    gets a reparametrised sample, else the mean. The code is the mean. ``loss`` is the KL from N(0, I) in
    nats per position: each channel's KL averaged over images and positions, floored at ``free_bits``
    (Kingma et al. 2016: a channel is not pushed below that floor), summed over channels."""

    def __init__(self, free_bits: float = 0.0):
        super().__init__()
        self.free_bits = float(free_bits)

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's (B, 2d, h, w) -> mean, logvar (B, d, h, w) each."""
        mean, logvar = h.float().chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def latent(self, h: torch.Tensor) -> torch.Tensor:
        """The posterior mean (B, d, h, w)."""
        return self.posterior(h)[0]

    def forward(self, h: torch.Tensor) -> BottleneckOutput:
        mean, logvar = self.posterior(h)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean
        kl_channel = kl_per_dim(mean, logvar).mean(dim=(0, 2, 3))  # (d,)
        kl = (kl_channel.clamp_min(self.free_bits) if self.free_bits > 0 else kl_channel).sum()
        return BottleneckOutput(latent_hat=z, codes=mean, latent=mean, loss=kl, losses={"kl": kl.detach()})

    def bits(self, h: torch.Tensor) -> torch.Tensor:
        """KL(q(z | x) || N(0, I)) of each image in bits (B,): the rate of bits-back coding."""
        mean, logvar = self.posterior(h)
        return kl_per_dim(mean, logvar).flatten(1).sum(1).double() / math.log(2)

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """The encoder's output -> the posterior means (B, d, h, w)."""
        return self.posterior(h)[0]
