"""VQ-VAE baseline on the same backbone, with the standard anti-collapse options (all off by default)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..collective import all_gather_rows, all_reduce_sum, broadcast_from_main
from ..sparse import from_rows, to_rows
from .backbone import Decoder, Encoder
from .base import AutoencoderModel, AutoencoderOutput, IndexCodes, register_model
from .losses import reconstruction_loss


@dataclass
class VQVAEOutput(AutoencoderOutput):
    """Adds indices (B, h, w): the chosen code of each position."""

    indices: torch.Tensor | None = None


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantisation of rows (N, d) with a straight-through gradient.

    ema: update the codebook by exponential moving averages of assigned vectors (van den Oord et al.
    2017, appendix) instead of the codebook loss; dead_code_threshold: codes whose EMA usage falls below
    it are restarted on random encoder outputs of the batch; l2_normalize: cosine-similarity lookup on
    unit vectors (Yu et al. 2022, ViT-VQGAN).
    """

    def __init__(self, codebook_size: int, dim: int, ema: bool = False, decay: float = 0.99,
                 dead_code_threshold: float = 0.0, l2_normalize: bool = False):
        super().__init__()
        self.ema, self.decay, self.l2 = ema, decay, l2_normalize
        self.dead_code_threshold = dead_code_threshold
        embed = torch.randn(codebook_size, dim) / dim ** 0.5
        self.embedding = nn.Parameter(embed, requires_grad=not ema)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", embed.clone())

    def codebook(self) -> torch.Tensor:
        return F.normalize(self.embedding, dim=1) if self.l2 else self.embedding

    def nearest(self, rows: torch.Tensor) -> torch.Tensor:
        """rows (N, d) -> indices (N,) of the nearest codebook vectors (rows unit-normalised first
        when ``l2_normalize``)."""
        rows = F.normalize(rows.float(), dim=1) if self.l2 else rows.float()
        book = self.codebook()
        return (rows.square().sum(1, keepdim=True) - 2 * rows @ book.T + book.square().sum(1)).argmin(1)

    def forward(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """rows (N, d) -> (quantised rows (N, d), indices (N,), codebook loss (scalar))."""
        rows = rows.float()
        if self.l2:
            rows = F.normalize(rows, dim=1)
        indices = self.nearest(rows)
        quantized = self.codebook()[indices]
        if self.training:
            self._update(rows.detach(), indices)
        codebook_loss = rows.new_zeros(()) if self.ema else F.mse_loss(quantized, rows.detach())
        return rows + (quantized - rows).detach(), indices, codebook_loss

    @torch.no_grad()
    def _update(self, rows: torch.Tensor, indices: torch.Tensor) -> None:
        onehot = F.one_hot(indices, self.embedding.shape[0]).type_as(rows)
        counts = all_reduce_sum(onehot.sum(0))  # statistics of the global batch under DDP
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.ema:
            self.embed_sum.mul_(self.decay).add_(all_reduce_sum(onehot.T @ rows), alpha=1 - self.decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + 1e-5) / (n + self.cluster_size.numel() * 1e-5) * n
            self.embedding.data.copy_(self.embed_sum / smoothed[:, None])
        if self.dead_code_threshold > 0:
            dead = self.cluster_size < self.dead_code_threshold
            if dead.any():
                rows = all_gather_rows(rows)  # pick from the global batch, so every rank restarts alike
                pick = torch.randint(0, rows.shape[0], (int(dead.sum()),), device=rows.device)
                fresh = broadcast_from_main(rows[pick].contiguous())
                self.embedding.data[dead] = fresh
                self.embed_sum[dead] = fresh
                self.cluster_size[dead] = 1.0


@register_model
class VQVAE(IndexCodes, AutoencoderModel):
    """VQ-VAE: loss = recon + codebook loss (unless EMA) + commitment_weight * ||z - sg(e)||^2."""

    model_type = "vqvae"

    def __init__(self, *, resolution: int = 32, in_channels: int = 3, ch: int = 32,
                 ch_mult: Sequence[int] = (1, 2, 2), num_res_blocks: int = 1,
                 attn_resolutions: Sequence[int] = (), mid_attn: bool = True, dropout: float = 0.0,
                 z_channels: int = 16, codebook_size: int = 121, commitment_weight: float = 0.25,
                 ema: bool = False, ema_decay: float = 0.99, dead_code_threshold: float = 0.0,
                 l2_normalize: bool = False, recon_loss: str = "mse"):
        super().__init__(locals())
        self.encoder = Encoder(in_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.decoder = Decoder(out_channels=in_channels, z_channels=z_channels, **self.backbone_config())
        self.quantizer = VectorQuantizer(codebook_size, z_channels, ema, ema_decay, dead_code_threshold, l2_normalize)

    @property
    def codebook_size(self) -> int:
        return int(self.config["codebook_size"])

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> code indices (B, h, w)."""
        return self.nearest_codes(self.encoder(x))

    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> their code vectors (B, d, h, w); quantised vectors pass unchanged."""
        if codes.dtype in (torch.int32, torch.int64):
            return self.quantizer.codebook()[codes].permute(0, 3, 1, 2)
        return codes

    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        return self.synthesize(codes).float()

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, d, h, w) -> the indices (B, h, w) of the nearest codebook vectors."""
        b, _, h, w = vectors.shape
        return self.quantizer.nearest(to_rows(vectors)).reshape(b, h, w)

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        cfg = self.config
        z = self.encoder(x)
        b, _, h, w = z.shape
        rows = to_rows(z)
        quantized, indices, codebook_loss = self.quantizer(rows)
        target = F.normalize(rows.float(), dim=1) if cfg["l2_normalize"] else rows.float()
        commitment = F.mse_loss(target, self.quantizer.codebook()[indices].detach())
        x_hat = self.decoder(from_rows(quantized, b, h, w).to(z.dtype))
        losses = {"recon": reconstruction_loss(cfg["recon_loss"], x_hat, x), "codebook": codebook_loss,
                  "commitment": commitment}
        loss = losses["recon"] + codebook_loss + cfg["commitment_weight"] * commitment
        losses = {name: value.detach() for name, value in losses.items()}
        return VQVAEOutput(reconstruction=x_hat, latent=z, loss=loss, losses=losses,
                           indices=indices.reshape(b, h, w))
