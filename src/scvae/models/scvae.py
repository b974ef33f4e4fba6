"""SC-VAE: conv encoder -> LISTA sparse codes over a DCT dictionary -> conv decoder of D a."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from ..sparse import LISTA, dct_dictionary, from_rows, keep_largest, to_rows
from .backbone import Decoder, Encoder
from .base import AutoencoderModel, AutoencoderOutput, register_model
from .losses import reconstruction_loss


@dataclass
class SCVAEOutput(AutoencoderOutput):
    """Adds codes (B, K, h, w): the sparse codes, and latent_hat (B, d, h, w): D a, what the decoder saw."""

    codes: torch.Tensor | None = None
    latent_hat: torch.Tensor | None = None


def rms_normalize(z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each position's latent vector (dim 1 of (B, d, h, w)) to unit root-mean-square.

    This fixes the scale the lasso threshold is measured against, so the encoder cannot make the
    threshold irrelevant by growing its output (the official code's drift to dense codes).
    """
    return z * torch.rsqrt(z.float().square().mean(dim=1, keepdim=True) + eps).to(z.dtype)


def soft_usage_kl(preactivation: torch.Tensor, threshold: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(usage || uniform) of a soft, differentiable atom-usage distribution over a batch.

    preactivation (N, K) is the last LISTA iterate before thresholding; an atom counts as soft-active at
    a position with probability sigmoid((|u| - threshold) / (temperature * threshold)). Unlike the codes,
    this has a gradient for atoms that are never active, which is what lets dead atoms come back.
    """
    scale = temperature * threshold.detach()
    usage = torch.sigmoid((preactivation.abs() - threshold.detach()) / scale).mean(0)
    p = usage / usage.sum().clamp_min(1e-12)
    return (p * (p.clamp_min(1e-12) * p.numel()).log()).sum()


@register_model
class SCVAE(AutoencoderModel):
    """Sparse-coding VAE (Xiao et al., arXiv 2303.16666) with a fixed or learnable DCT dictionary.

    Every config entry is a constructor keyword (see README, "Model config"). Shapes: images
    (B, in_channels, R, R) in [-1, 1]; latent (B, z_channels, R/f, R/f); codes (B, n_atoms, R/f, R/f).
    """

    model_type = "scvae"

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 z_channels: int = 64, n_atoms: int = 121, n_iter: int = 16, lam: float = 0.3,
                 learn_dictionary: bool = False, learn_step: bool = True, learn_threshold: bool = True,
                 threshold_per_atom: bool = False, per_iteration: bool = False, untied: bool = False,
                 max_active: int | None = 15, dead_atom_threshold: float = 0.0, usage_floor: float = 0.05,
                 balance_step: float = 1e-3, latent_norm: str = "rms",
                 recon_loss: str = "mse", latent_weight: float = 0.01,
                 sparsity_weight: float = 0.0, usage_weight: float = 0.0, usage_temperature: float = 0.5):
        super().__init__(locals())
        if latent_norm not in ("rms", "none"):
            raise ValueError(f"latent_norm must be 'rms' or 'none', got {latent_norm!r}")
        self.encoder = Encoder(in_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.decoder = Decoder(out_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.lista = LISTA(dct_dictionary(z_channels, n_atoms), n_iter, lam,
                           learn_dictionary=learn_dictionary, learn_step=learn_step,
                           learn_threshold=learn_threshold, threshold_per_atom=threshold_per_atom,
                           per_iteration=per_iteration, untied=untied, max_active=max_active,
                           dead_atom_threshold=dead_atom_threshold, usage_floor=usage_floor,
                           balance_step=balance_step)

    @property
    def n_atoms(self) -> int:
        return self.lista.n_atoms

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output, scale-normalised when ``latent_norm == 'rms'``: (B, d, h, w)."""
        z = self.encoder(x)
        return rms_normalize(z) if self.config["latent_norm"] == "rms" else z

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> sparse codes (B, K, H/f, W/f)."""
        z = self.latent(x)
        b, _, h, w = z.shape
        return from_rows(self.lista(to_rows(z)), b, h, w)

    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, K, h, w) -> D a (B, d, h, w)."""
        b, _, h, w = codes.shape
        return from_rows(self.lista.synthesize(to_rows(codes)), b, h, w)

    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """The sparse codes are the code space: (B, K, h, w) unchanged (as float32)."""
        return codes.float()

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) -> the same with only the ``max_active`` largest-magnitude entries kept per position
        (the model's own sparsity); unchanged when the model has no cap."""
        k = self.config["max_active"]
        if k is None or k >= vectors.shape[1]:
            return vectors.float()
        bias = self.lista.selection_bias if self.lista.balance_step > 0 else None
        return keep_largest(vectors.float(), k, dim=1, bias=bias)

    def after_step(self, output: SCVAEOutput) -> dict[str, float]:
        """Usage bookkeeping after the update: selection-bias balancing and dead-atom restarts."""
        return self.lista.update_usage(to_rows(output.latent.detach()), to_rows(output.codes.detach()))

    def forward(self, x: torch.Tensor) -> SCVAEOutput:
        cfg = self.config
        z = self.latent(x)
        b, _, h, w = z.shape
        rows = to_rows(z)
        out = self.lista.iterate(rows)
        rows_hat = self.lista.synthesize(out.codes)
        z_hat = from_rows(rows_hat, b, h, w)
        x_hat = self.decoder(z_hat.to(z.dtype))
        losses = {"recon": reconstruction_loss(cfg["recon_loss"], x_hat, x),
                  "latent": F.mse_loss(rows_hat, rows.float())}
        loss = losses["recon"] + cfg["latent_weight"] * losses["latent"]
        if cfg["sparsity_weight"] > 0:
            losses["l1"] = out.codes.abs().sum(-1).mean()
            loss = loss + cfg["sparsity_weight"] * losses["l1"]
        if cfg["usage_weight"] > 0:
            losses["usage_kl"] = soft_usage_kl(out.preactivation, out.threshold, cfg["usage_temperature"])
            loss = loss + cfg["usage_weight"] * losses["usage_kl"]
        losses = {name: value.detach() for name, value in losses.items()}
        return SCVAEOutput(reconstruction=x_hat, latent=z, loss=loss, losses=losses,
                           codes=from_rows(out.codes, b, h, w), latent_hat=z_hat)
