"""The plain VQ-VAE bottleneck (van den Oord et al. 2017), with the standard anti-collapse options (all off
by default), written out: nearest-code lookup with a straight-through gradient."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..collective import all_gather_rows, all_reduce_sum, broadcast_from_main
from ..sparse import BottleneckOutput, from_rows, to_rows
from .base import Bottleneck, IndexSymbols


class VQBottleneck(IndexSymbols, Bottleneck):
    """Nearest-codebook quantisation of each latent vector, ``out = vq(z)`` with z (B, d, h, w) and codes
    (indices) (B, h, w); loss = codebook loss (unless EMA) + commitment_weight * ||z - sg(e)||^2.

    ema: update the codebook by exponential moving averages of the assigned vectors (the paper's appendix)
    instead of the codebook loss; dead_code_threshold: codes whose EMA usage falls below it restart on
    random latent vectors of the batch; l2_normalize: cosine lookup on unit vectors (ViT-VQGAN).
    """

    def __init__(self, codebook_size: int, dim: int, *, ema: bool = False, decay: float = 0.99,
                 dead_code_threshold: float = 0.0, l2_normalize: bool = False, commitment_weight: float = 0.25):
        super().__init__()
        self.ema, self.decay, self.l2 = ema, decay, l2_normalize
        self.dead_code_threshold, self.commitment_weight = dead_code_threshold, commitment_weight
        embed = torch.randn(codebook_size, dim) / dim ** 0.5
        self.embedding = torch.nn.Parameter(embed, requires_grad=not ema)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", embed.clone())

    @property
    def codebook_size(self) -> int:
        return self.embedding.shape[0]

    def codebook(self) -> torch.Tensor:
        """(K, d): the code vectors (unit vectors with ``l2_normalize``)."""
        return F.normalize(self.embedding, dim=1) if self.l2 else self.embedding

    def nearest(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows (N, d) -> indices (N,) of the nearest code vectors (rows unit-normalised first with l2)."""
        rows = F.normalize(rows.float(), dim=1) if self.l2 else rows.float()
        book = self.codebook()
        return (rows.square().sum(1, keepdim=True) - 2 * rows @ book.T + book.square().sum(1)).argmin(1)

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        b, _, h, w = z.shape
        rows = to_rows(z).float()
        if self.l2:
            rows = F.normalize(rows, dim=1)
        indices = self.nearest(rows)
        quantized = self.codebook()[indices]
        if self.training:
            self._update(rows.detach(), indices)
        losses = {"codebook": rows.new_zeros(()) if self.ema else F.mse_loss(quantized, rows.detach()),
                  "commitment": F.mse_loss(rows, quantized.detach())}
        loss = losses["codebook"] + self.commitment_weight * losses["commitment"]
        latent_hat = from_rows(rows + (quantized - rows).detach(), b, h, w)
        return BottleneckOutput(latent_hat=latent_hat, codes=indices.reshape(b, h, w), latent=z, loss=loss,
                                losses={k: v.detach() for k, v in losses.items()})

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, d, h, w) -> indices (B, h, w) of the nearest code vectors."""
        return self.nearest_codes(z)

    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> their code vectors (B, d, h, w); real vectors pass unchanged."""
        if codes.dtype in (torch.int32, torch.int64):
            return self.codebook()[codes].permute(0, 3, 1, 2)
        return codes

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, d, h, w) -> the indices (B, h, w) of the nearest code vectors."""
        b, _, h, w = vectors.shape
        return self.nearest(to_rows(vectors)).reshape(b, h, w)

    @torch.no_grad()
    def _update(self, rows: torch.Tensor, indices: torch.Tensor) -> None:
        onehot = F.one_hot(indices, self.codebook_size).type_as(rows)
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
