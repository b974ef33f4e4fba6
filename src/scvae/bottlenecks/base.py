"""What every bottleneck shares: one output type, one interface, and symbols for the entropy coder.

A bottleneck sits between an encoder and a decoder: ``out = bottleneck(z)`` takes the encoder's latent
(B, d, h, w) and returns a :class:`~scvae.sparse.BottleneckOutput` whose ``latent_hat`` (B, d, h, w) the
decoder reads, whose ``codes`` are what an image is stored as, and whose ``loss`` is added to the
reconstruction loss. Outside training, :meth:`Bottleneck.encode` and :meth:`Bottleneck.synthesize` map
latents to codes and codes back; :meth:`Bottleneck.to_symbols` gives the integers an entropy coder codes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import ClassVar, Iterator

import torch
from torch import nn

from ..sparse import BottleneckOutput
from ..sparse.quantize import quantization_indices

__all__ = ["Bottleneck", "BottleneckOutput", "IndexSymbols"]


class Bottleneck(nn.Module, ABC):
    """Base of the bottleneck modules. Subclasses implement :meth:`forward`, :meth:`encode`,
    :meth:`synthesize` and :meth:`nearest_codes`; the symbols default to a continuous latent's."""

    coded_channel: ClassVar[str] = "latent channel"  # what one channel of to_symbols is

    @abstractmethod
    def forward(self, z: torch.Tensor) -> BottleneckOutput:
        """Latent (B, d, h, w) -> the decoder's input, the codes and the bottleneck's loss (training step)."""

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        """The encoder's output -> the ``latent`` :meth:`forward` reports (B, d, h, w), without its side effects
        (codebook or usage updates). By default the encoder's output itself."""
        return z

    @abstractmethod
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, d, h, w) -> codes, without updating any statistics (codebooks, usage)."""

    @abstractmethod
    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> the decoder's input (B, d, h, w)."""

    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> real vectors per position (B, F, h, w), where codes are averaged, clustered and sampled.
        By default the synthesised latent."""
        return self.synthesize(codes).float()

    @abstractmethod
    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """Any vectors (B, F, h, w) of the code space -> the nearest codes this bottleneck can produce."""

    def symbol_step(self) -> float | None:
        """The quantisation step the codes sit on; None (this default): continuous or index codes."""
        return None

    def to_symbols(self, codes: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """Codes -> the integers an entropy coder codes, (B, C, h, w) int64. Continuous codes (this default):
        each entry's nearest multiple of ``step``."""
        return quantization_indices(codes.float(), step, keep_support=False).long()

    def from_symbols(self, symbols: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """The inverse of :meth:`to_symbols`."""
        return symbols.float() * step


class IndexSymbols:
    """Symbols of a bottleneck whose codes are one code index per position, (B, h, w)."""

    coded_channel = "code index"

    def to_symbols(self, codes: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """Indices (B, h, w) -> (B, 1, h, w): one coded channel, the code index (``step`` is ignored)."""
        return codes.long()[:, None]

    def from_symbols(self, symbols: torch.Tensor, step: float | None = None) -> torch.Tensor:
        return symbols[:, 0]


@contextmanager
def no_update(quantizer: nn.Module) -> Iterator[None]:
    """Run the block with ``quantizer`` in eval mode (no codebook update) and without autograd, then restore
    its mode."""
    was = quantizer.training
    quantizer.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        quantizer.train(was)
