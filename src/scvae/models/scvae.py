"""SC-VAE: conv encoder -> LISTA sparse codes over a DCT dictionary -> conv decoder of D a."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..sparse import LISTA, SparseCodingBottleneck, keep_largest
from ..sparse.lista import LAM, N_ITER
from ..sparse.quantize import quantization_indices
from ..sparse.refit import REFIT_RIDGE
from .backbone import Decoder, Encoder
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
    coded_channel, sparse_codes = "atom", True

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 z_channels: int = 64, n_atoms: int = 256, n_iter: int = N_ITER, lam: float = LAM,
                 learn_dictionary: bool = False, learn_step: bool = True, learn_threshold: bool = True,
                 threshold_per_atom: bool = False, per_iteration: bool = False, untied: bool = False,
                 max_active: int | None = 33, dead_atom_threshold: float = 0.0, usage_floor: float = 0.05,
                 balance_step: float = 1e-3, grad_iterations: int | None = None, refit: bool = True,
                 refit_ridge: float = REFIT_RIDGE,
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
            quantize_step=quantize_step, rate_weight=rate_weight / (in_channels * self.downsampling_factor ** 2))
        self._register_load_state_dict_pre_hook(_rename_old_lista_keys)

    @property
    def lista(self) -> LISTA:
        return self.bottleneck.lista

    @property
    def n_atoms(self) -> int:
        return self.bottleneck.n_atoms

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output, scale-normalised when ``latent_norm == 'rms'``: (B, d, h, w)."""
        return self.bottleneck.normalize(self.encoder(x))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> sparse codes (B, K, H/f, W/f)."""
        return self.bottleneck.encode(self.encoder(x))

    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, K, h, w) -> D a (B, d, h, w)."""
        return self.bottleneck.synthesize(codes)

    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """The sparse codes are the code space: (B, K, h, w) unchanged (as float32)."""
        return codes.float()

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) -> the same with only the ``max_active`` largest-magnitude entries kept per position
        (the model's own sparsity) and, with a ``quantize_step``, the kept values on its grid: codes of the
        kind the decoder was trained on."""
        k, vectors = self.config["max_active"], vectors.float()
        if k is not None and k < vectors.shape[1]:
            bias = self.lista.selection_bias if self.lista.balance_step > 0 else None
            vectors = keep_largest(vectors, k, dim=1, bias=bias)
        return self.bottleneck.quantize(vectors)

    def symbol_step(self) -> float | None:
        """A quantisation-aware model's own ``quantize_step``; None for real-valued codes."""
        return self.bottleneck.quantize_step or None

    def to_symbols(self, codes: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """Codes (B, K, h, w) -> (B, K, h, w) int64: per atom, 0 where it is inactive, else the nearest non-zero
        multiple n of ``step`` (a kept atom never rounds to 0: the support is coded exactly)."""
        return quantization_indices(codes.float(), step, keep_support=True).long()

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


def _rename_old_lista_keys(state_dict, prefix, *args) -> None:
    """Checkpoints from before the bottleneck module kept the LISTA layer at ``lista.*``."""
    for key in [k for k in state_dict if k.startswith(prefix + "lista.")]:
        state_dict[prefix + "bottleneck." + key[len(prefix):]] = state_dict.pop(key)
