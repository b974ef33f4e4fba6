"""The quantizers practitioners use, as bottlenecks: thin wrappers over vector-quantize-pytorch.

- :class:`StrongVQBottleneck`: l2-normalised (cosine) lookup in a low-dimensional projection (ViT-VQGAN,
  LlamaGen), EMA codebook, k-means initialisation and dead-code restart (SoundStream).
- :class:`FSQBottleneck`: Finite Scalar Quantization (Mentzer et al. 2023): a projection to ``len(levels)``
  bounded scalars, each rounded to one of ``levels[i]`` values; no codebook to collapse, no auxiliary loss.
- :class:`ResidualVQBottleneck`: residual VQ (SoundStream, EnCodec): ``num_quantizers`` EMA codebooks in
  turn, each quantising what the ones before left; the decoder gets the sum.

Each keeps the library module at ``.quantizer``. The lookups and the code-to-vector maps are written out
where the library's would bake shapes into ONNX traces (tests check they agree with the library's).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..collective import all_gather_rows, broadcast_from_main, is_distributed
from ..errors import ScvaeError
from ..sparse import BottleneckOutput
from .base import Bottleneck, IndexSymbols, no_update


def require_absolute_dead_code_threshold(quantizer: nn.Module) -> None:
    """Refuse a vector-quantize-pytorch whose restart threshold is a ratio of the mean usage (1.34 on): the
    baselines here restart codes whose EMA usage falls below a count, and the distributed restart reads it."""
    from importlib.metadata import version

    from vector_quantize_pytorch.vector_quantize_pytorch import Codebook

    if any(isinstance(m, Codebook) and not hasattr(m, "threshold_ema_dead_code") for m in quantizer.modules()):
        installed = version("vector-quantize-pytorch")
        raise ScvaeError(f"vector-quantize-pytorch {installed} changed its dead-code restarts; install the version "
                         "scvae pins: pip install 'vector-quantize-pytorch>=1.32,<1.34'")


def codebooks_from_global_batch(quantizer: nn.Module) -> None:
    """Under torch.distributed, make the k-means init and dead-code restarts of vector-quantize-pytorch's
    codebooks in ``quantizer`` draw from the global batch, as one process would.

    The library's own distributed path gives each rank a random share of the samples, so a run on N ranks
    cannot equal one process. Here the rows (h, n, d) of every rank are gathered in rank order (the global
    batch's order), rank 0 runs the library's one-process code on them with its random stream, and the
    codebook is broadcast from rank 0. Gathering happens only on the steps that init or restart. The EMA
    statistics stay synced by the library (an all-reduce of counts and sums). A no-op outside
    torch.distributed.
    """
    from vector_quantize_pytorch.vector_quantize_pytorch import Codebook, batched_sample_vectors

    if not is_distributed():
        return
    for book in (m for m in quantizer.modules() if isinstance(m, Codebook)):
        book.sample_fn = book.replace_sample_fn = batched_sample_vectors
        book.kmeans_all_reduce_fn = lambda tensor: tensor  # the rows are already global
        book.init_embed_ = _on_global_rows(book, book.init_embed_, lambda b: not b.initted)
        book.expire_codes_ = _on_global_rows(book, book.expire_codes_, lambda b: b.training and bool(
            b.has_dead_code_replacement and (b.cluster_size < b.threshold_ema_dead_code).any()))


def _on_global_rows(book: nn.Module, update, needed):
    def on_global_rows(rows: torch.Tensor, mask=None, seq_mask=None) -> None:
        if mask is not None or seq_mask is not None:
            raise ValueError("masked sequences are not gathered across ranks; the models here pass none")
        if not needed(book):  # the same answer on every rank: the counts are synced
            return
        rows = rows.flatten(1, -2)  # (h, n, d): one head, n = this rank's positions
        update(all_gather_rows(rows.transpose(0, 1)).transpose(0, 1))
        for buffer in (book.embed, book.embed_avg, book.cluster_size):
            broadcast_from_main(buffer.data)
    return on_global_rows


class _LibraryBottleneck(Bottleneck):
    """z -> the library quantizer -> (quantised latent, indices, auxiliary loss); subclasses say how."""

    quantizer: nn.Module

    @abstractmethod
    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, d, h, w) -> (quantised (B, d, h, w), indices, auxiliary loss (scalar))."""

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Number of distinct codes (per stage for the residual VQ)."""

    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        quantized, indices, aux = self.quantize(z.float())
        return BottleneckOutput(latent_hat=quantized, codes=indices, latent=z, loss=aux,
                                losses={"quantizer": aux.detach()})

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        return self.nearest_codes(z)

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, d, h, w) -> the indices of the codes they quantise to (no codebook update)."""
        with no_update(self.quantizer):
            return self.quantize(vectors.float())[1]

    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        """Indices -> their vectors (B, d, h, w); real vectors pass unchanged."""
        if codes.dtype in (torch.int32, torch.int64):
            return self.vectors_from_indices(codes.long())
        return codes

    @abstractmethod
    def vectors_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices -> the decoder's input (B, d, h, w)."""


class StrongVQBottleneck(IndexSymbols, _LibraryBottleneck):
    """VQ with cosine lookup in a ``codebook_dim`` projection of a ``dim`` latent, EMA (``decay``), k-means
    init and restart of codes whose EMA cluster size falls below ``dead_code_threshold``; codes (B, h, w)."""

    def __init__(self, dim: int, codebook_size: int = 1024, *, codebook_dim: int = 8, decay: float = 0.8,
                 commitment_weight: float = 0.25, dead_code_threshold: float = 2.0, kmeans_init: bool = True):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.quantizer = VectorQuantize(
            dim=dim, codebook_size=codebook_size, codebook_dim=codebook_dim, use_cosine_sim=True, decay=decay,
            kmeans_init=kmeans_init, threshold_ema_dead_code=dead_code_threshold,
            commitment_weight=commitment_weight, accept_image_fmap=True, channel_last=False)
        require_absolute_dead_code_threshold(self.quantizer)
        codebooks_from_global_batch(self.quantizer)

    @property
    def codebook_size(self) -> int:
        return int(self.quantizer.codebook_size)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        quantized, indices, loss = self.quantizer(z)
        return quantized, indices, loss.reshape(())

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, d, h, w) -> indices (B, h, w): the highest cosine similarity in the projected space."""
        rows = F.normalize(self.quantizer.project_in(vectors.float().permute(0, 2, 3, 1)), dim=-1)
        return (rows @ F.normalize(self.quantizer.codebook, dim=-1).T).argmax(-1)

    def vectors_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        # the library's get_output_from_indices reads the last axis of (B, h, w) indices as codebook heads
        return self.quantizer.project_out(self.quantizer.codebook[indices]).permute(0, 3, 1, 2)


class FSQBottleneck(_LibraryBottleneck):
    """FSQ: ``levels`` (e.g. [8, 5, 5, 5]: 1000 implicit codes) after a learned projection of a ``dim``
    latent; codes (B, h, w), the mixed-radix index of the levels; symbols: the levels, one channel each."""

    coded_channel = "FSQ dimension"

    def __init__(self, dim: int, levels: Sequence[int] = (8, 5, 5, 5)):
        super().__init__()
        from vector_quantize_pytorch import FSQ

        levels = [int(v) for v in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"levels must be a non-empty list of integers >= 2, got {levels}")
        if math.prod(levels) > 2 ** 24:  # the library builds a table of every code
            raise ValueError(f"levels {levels} give {math.prod(levels):,} codes; vector-quantize-pytorch "
                             f"stores every code, so at most 2**24 are supported")
        self.levels = levels
        self.quantizer = FSQ(levels=levels, dim=dim, channel_first=True)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        quantized, indices = self.quantizer(z)
        return quantized, indices, z.new_zeros(())

    def vectors_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.quantizer.indices_to_codes(indices)

    def level_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> each dimension's level (B, len(levels), h, w), integers in [0, levels[i])."""
        return self.quantizer.indices_to_level_indices(indices.long()).permute(0, 3, 1, 2)

    def to_symbols(self, codes: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """Indices (B, h, w) -> the levels (B, len(levels), h, w): one coded channel per FSQ dimension."""
        return self.level_indices(codes)

    def from_symbols(self, symbols: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """Levels (B, D, h, w) -> indices (B, h, w): the mixed-radix number the library's indices are."""
        levels = torch.tensor(self.levels, device=symbols.device)
        basis = torch.cumprod(torch.cat([levels.new_ones(1), levels[:-1]]), dim=0)
        return (symbols.long() * basis[None, :, None, None]).sum(1)


class ResidualVQBottleneck(_LibraryBottleneck):
    """Residual VQ: ``num_quantizers`` stages of ``codebook_size`` Euclidean codes in the full latent
    (cosine lookup would ignore the residuals' shrinking norms), each with EMA (``decay``), k-means init and
    dead-code restart; codes (B, Q, h, w), one index per stage, which are also the symbols."""

    coded_channel = "residual stage"

    def __init__(self, dim: int, codebook_size: int = 1024, num_quantizers: int = 8, *, decay: float = 0.99,
                 commitment_weight: float = 0.25, dead_code_threshold: float = 2.0, kmeans_init: bool = True):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        if num_quantizers < 1:
            raise ValueError(f"num_quantizers must be at least 1, got {num_quantizers}")
        # The library's accept_image_fmap mishandles channel-first maps, so positions go in as a sequence.
        self.quantizer = ResidualVQ(
            dim=dim, num_quantizers=num_quantizers, codebook_size=codebook_size, decay=decay,
            kmeans_init=kmeans_init, threshold_ema_dead_code=dead_code_threshold, commitment_weight=commitment_weight)
        self._codebook_size, self.num_codebooks = codebook_size, num_quantizers
        require_absolute_dead_code_threshold(self.quantizer)
        codebooks_from_global_batch(self.quantizer)

    @property
    def codebook_size(self) -> int:
        return self._codebook_size

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, d, h, w) -> (the sum of the stages' codes (B, d, h, w), indices (B, Q, h, w), loss)."""
        b, d, h, w = z.shape
        quantized, indices, losses = self.quantizer(z.flatten(2).transpose(1, 2))
        return (quantized.transpose(1, 2).reshape(b, d, h, w), indices.transpose(1, 2).reshape(b, -1, h, w),
                losses.sum())

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, d, h, w) -> indices (B, Q, h, w): stage by stage, the nearest code to what the stages before left."""
        residual = self.quantizer.project_in(vectors.float().permute(0, 2, 3, 1))
        indices = []
        for book in self.quantizer.codebooks:  # (K, d) each
            index = torch.cdist(residual.flatten(0, 2), book).argmin(-1).reshape(residual.shape[:-1])
            residual = residual - book[index]
            indices.append(index)
        return torch.stack(indices, dim=1)

    def to_symbols(self, codes: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """Indices (B, Q, h, w) are the symbols: one coded channel per stage."""
        return codes.long()

    def from_symbols(self, symbols: torch.Tensor, step: float | None = None) -> torch.Tensor:
        return symbols

    def vectors_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, Q, h, w) -> the sum of each stage's code (B, d, h, w)."""
        books = self.quantizer.codebooks  # (Q, K, d)
        summed = sum(books[q][indices[:, q]] for q in range(books.shape[0]))  # (B, h, w, d)
        return self.quantizer.project_out(summed).permute(0, 3, 1, 2)
