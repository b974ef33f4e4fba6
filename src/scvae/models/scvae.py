"""SC-VAE: conv encoder -> LISTA sparse codes over a DCT dictionary -> conv decoder of D a."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..sparse import LISTA, SparseCodingBottleneck
from ..sparse.lista import LAM, N_ITER
from ..sparse.refit import REFIT_RIDGE
from .backbone import DEFAULT_NORM, DEFAULT_PADDING, Decoder, Encoder
from .base import AutoencoderModel, AutoencoderOutput, register_model
from .losses import reconstruction_loss


@dataclass
class SCVAEOutput(AutoencoderOutput):
    """Adds codes (B, K, h, w): the sparse codes, and latent_hat (B, d, h, w): D a, what the decoder saw."""

    codes: torch.Tensor | None = None
    latent_hat: torch.Tensor | None = None


@register_model
class SCVAE(AutoencoderModel):
    """Sparse-coding VAE (Xiao et al., arXiv 2303.16666) with a fixed or learnable DCT dictionary.

    Every config entry is a constructor keyword (see README, "Model config"). Shapes: images
    (B, in_channels, R, R) in [-1, 1]; latent (B, z_channels, R/f, R/f); codes (B, n_atoms, R/f, R/f).

    rate_weight: 0 (default), or trained for rate like the AE's learned-compression baseline: the loss gains
    rate_weight x bits / (C H W), the bits of each image's support and quantised values under the
    bottleneck's :class:`~scvae.sparse.rate.SparseCodeRate`, and the value step is learned from
    ``quantize_step`` on. It needs ``quantize_step`` > 0.
    """

    model_type = "scvae"
    sparse_codes = True
    legacy_prefixes = {"lista.": "bottleneck.lista."}  # before the bottleneck module, LISTA sat at the top

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 padding_mode: str = DEFAULT_PADDING, norm: str = DEFAULT_NORM,
                 z_channels: int = 64, n_atoms: int = 256, n_iter: int = N_ITER, lam: float = LAM,
                 learn_dictionary: bool = False, learn_step: bool = True, learn_threshold: bool = True,
                 threshold_per_atom: bool = False, per_iteration: bool = False, untied: bool = False,
                 max_active: int | None = 33, dead_atom_threshold: float = 0.0, usage_floor: float = 0.05,
                 balance_step: float = 1e-3, grad_iterations: int | None = None,
                 recompute_backward: bool = False, refit: bool = True, refit_ridge: float = REFIT_RIDGE,
                 quantize_step: float = 0.0, rate_weight: float = 0.0, latent_norm: str = "rms",
                 recon_loss: str = "mse", latent_weight: float = 0.01,
                 sparsity_weight: float = 0.0, usage_weight: float = 0.0, usage_temperature: float = 0.5):
        super().__init__(locals())
        self.encoder = Encoder(in_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.decoder = Decoder(out_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.bottleneck = SparseCodingBottleneck(
            z_channels, n_atoms, n_iter=n_iter, lam=lam, max_active=max_active, latent_norm=latent_norm,
            latent_weight=latent_weight, sparsity_weight=sparsity_weight, usage_weight=usage_weight,
            usage_temperature=usage_temperature, learn_dictionary=learn_dictionary, learn_step=learn_step,
            learn_threshold=learn_threshold, threshold_per_atom=threshold_per_atom, per_iteration=per_iteration,
            untied=untied, dead_atom_threshold=dead_atom_threshold, usage_floor=usage_floor,
            balance_step=balance_step, grad_iterations=grad_iterations, refit=refit, refit_ridge=refit_ridge,
            recompute_backward=recompute_backward, quantize_step=quantize_step,
            rate_weight=rate_weight / (in_channels * self.downsampling_factor ** 2))

    @property
    def lista(self) -> LISTA:
        return self.bottleneck.lista

    @property
    def n_atoms(self) -> int:
        return self.bottleneck.n_atoms

    def after_step(self, output: SCVAEOutput) -> dict[str, float]:
        """Dead-atom restarts of a learned dictionary, after the optimizer step."""
        return {"restarted": float(self.bottleneck.restart_dead_atoms(output.latent, output.codes))}

    def forward(self, x: torch.Tensor) -> SCVAEOutput:
        z = self.encoder(x)
        out = self.bottleneck(z)
        x_hat = self.decoder(out.latent_hat.to(z.dtype))
        recon = reconstruction_loss(self.config["recon_loss"], x_hat, x)
        return SCVAEOutput(reconstruction=x_hat, latent=out.latent, loss=recon + out.loss,
                           losses={"recon": recon.detach(), **out.losses}, codes=out.codes, latent_hat=out.latent_hat)

