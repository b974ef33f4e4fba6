"""Drawing codes from a trained prior, one position and one entry at a time, and decoding them."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ScvaeError
from .training import LearnedPrior
from .walk import walk_entries


@dataclass
class PriorSamples:
    """images (n, C, H, W) in [-1, 1]; symbols (n, C', h, w) the prior drew; bits (n,): each sample's
    negative log-likelihood under the prior at temperature 1."""

    images: torch.Tensor
    symbols: torch.Tensor
    bits: torch.Tensor


def _draw(log_probs: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """(n, V) log-probabilities -> (n,) draws from them sharpened (T < 1) or flattened (T > 1)."""
    probs = (log_probs / temperature).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample_symbols(prior: LearnedPrior, n: int, temperature: float = 1.0, seed: int = 0,
                   progress: bool = True) -> torch.Tensor:
    """``n`` symbol maps (n, C, h, w) on the prior's training grid. The escape value is never drawn."""
    if n < 1:
        raise ScvaeError(f"n must be a positive integer, got {n}")
    if not temperature > 0:
        raise ScvaeError(f"temperature must be positive, got {temperature}")
    layout = prior.layout
    generator = torch.Generator().manual_seed(seed)

    def draw(log_probs: torch.Tensor, kind: str, p: int, j: int, previous: torch.Tensor | None) -> torch.Tensor:
        if kind == "value":
            log_probs = log_probs.clone()
            log_probs[:, layout.escape] = float("-inf")
        elif j == layout.max_entries:  # the cap: only the end mark
            return torch.full(log_probs.shape[:1], layout.n_channels)
        elif previous is not None:  # only atoms above the previous one (the network puts almost no mass elsewhere)
            below = torch.arange(layout.n_channels + 1) <= previous[:, None]
            log_probs = log_probs.masked_fill(below, float("-inf"))
        return _draw(log_probs, temperature, generator)

    entries = walk_entries(prior.network, n, prior.grid, draw, progress)
    return layout.unpack(entries)


@torch.no_grad()
def generate_from_prior(autoencoder, prior: LearnedPrior, n: int = 16, temperature: float = 1.0, seed: int = 0,
                        progress: bool = True) -> PriorSamples:
    """Sample ``n`` code maps from ``prior`` and decode them with ``autoencoder`` (the prior's family)."""
    if autoencoder.model_type != prior.model_type:
        raise ScvaeError(f"the prior was trained for a {prior.model_type} model, not {autoencoder.model_type}")
    symbols = sample_symbols(prior, n, temperature, seed, progress)
    autoencoder.eval()
    device = next(autoencoder.parameters()).device
    codes = autoencoder.from_symbols(symbols.to(device), prior.step)
    images = autoencoder.decode(codes).sample.float().clamp(-1, 1).cpu()
    return PriorSamples(images, symbols, prior.bits(symbols))
