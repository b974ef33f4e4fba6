"""Range coding with the learned prior: files whose length follows the prior's negative log-likelihood.

The encoder and the decoder walk the same loop (:func:`scvae.prior.walk.walk_entries`): position by
position, entry by entry, the network computes the next distribution from the entries coded so far, and the
symbol is encoded (or decoded) with it. Both sides feed the network the same inputs in the same shapes (positions not yet coded
are zero in both), so they compute the same probabilities bit for bit on one machine and thread count,
which an exact round trip needs. Escaped values follow as raw 16-bit words.

File layout: the 16-byte header of :mod:`scvae.coding.bitstream` with format version 4 (2 before the
stream was cut to its last needed byte) and the prior's fingerprint in place of the entropy model's, then
the range coder's stream.
"""
from __future__ import annotations

import zlib

import constriction
import numpy as np
import torch

from ..coding.bitstream import PRIOR_CODED, Encoded, pack_file, read_file
from ..coding.seal import shortest_payload
from ..coding.entropy_model import RAW_BITS
from ..errors import ScvaeError
from .training import LearnedPrior
from .walk import walk_entries

_OFFSET = 2 ** (RAW_BITS - 1)
_BY_SYMBOL = constriction.stream.model.Categorical(perfect=False)
_RAW = constriction.stream.model.Uniform(2 ** RAW_BITS)


def fingerprint(prior: LearnedPrior) -> int:
    """CRC-32 of the prior's weights and layout: a file names the prior it needs."""
    crc = zlib.crc32(repr(prior.layout.to_dict()).encode())
    for name, tensor in prior.network.state_dict().items():
        crc = zlib.crc32(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes(), crc)
    return crc


def _probabilities(log_probs: torch.Tensor) -> np.ndarray:
    """(1, V) log-probabilities -> (1, V) float64 probabilities, as constriction takes them."""
    return log_probs.double().exp().numpy()


def encode_with_prior(symbols: torch.Tensor, prior: LearnedPrior) -> bytes:
    """Symbols (1, C, h, w) -> the range coder's stream (:func:`~scvae.coding.seal.shortest_payload`)."""
    layout = prior.layout
    target = layout.pack(symbols)
    raw = symbols.long().permute(0, 2, 3, 1).reshape(1, -1, layout.n_channels)
    encoder = constriction.stream.queue.RangeEncoder()
    escaped = []

    def choose(log_probs: torch.Tensor, kind: str, p: int, j: int, previous) -> torch.Tensor:
        if kind == "channel":  # the end mark after the last entry
            symbol = int(target.channels[0, p, j]) if j < int(target.lengths[0, p]) else layout.n_channels
        else:
            symbol = int(target.values[0, p, j])
            if symbol == layout.escape:
                escaped.append(int(raw[0, p, target.channels[0, p, j]]))
        encoder.encode(np.array([symbol], np.int32), _BY_SYMBOL, _probabilities(log_probs))
        return torch.tensor([symbol])

    walk_entries(prior.network, 1, tuple(target.grid), choose)
    if escaped:
        values = np.asarray(escaped) + _OFFSET
        if values.min() < 0 or values.max() >= 2 ** RAW_BITS:
            raise ScvaeError(f"a symbol outside [-{_OFFSET}, {_OFFSET}) cannot be escaped; the codes are out of range")
        encoder.encode(values.astype(np.int32), _RAW)
    return shortest_payload(encoder)


def decode_with_prior(words: np.ndarray, grid: tuple[int, int], prior: LearnedPrior) -> torch.Tensor:
    """The inverse of :func:`encode_with_prior`, from the stream's words
    (:func:`~scvae.coding.seal.payload_words`) -> symbols (1, C, h, w)."""
    decoder = constriction.stream.queue.RangeDecoder(words)
    entries = walk_entries(prior.network, 1, grid,
                           lambda log_probs, *_: torch.from_numpy(decoder.decode(_BY_SYMBOL, _probabilities(log_probs))
                                                                  .astype(np.int64)))
    used = torch.arange(entries.values.shape[-1]) < entries.lengths[..., None]
    escaped = (entries.values == prior.layout.escape) & used
    raw = torch.zeros_like(entries.values)
    if bool(escaped.any()):
        raw[escaped] = torch.from_numpy(decoder.decode(_RAW, int(escaped.sum())).astype(np.int64) - _OFFSET)
    return prior.layout.unpack(entries, raw)


def _check(autoencoder, prior: LearnedPrior, grid: tuple[int, int]) -> None:
    if autoencoder.model_type != prior.model_type:
        raise ScvaeError(f"the prior was trained for a {prior.model_type} model, not {autoencoder.model_type}")
    if tuple(grid) != tuple(prior.grid):
        side = prior.grid[0] * autoencoder.downsampling_factor
        raise ScvaeError(f"the prior codes {prior.grid[0]} x {prior.grid[1]} code grids (the model's training "
                         f"crops); this image gives {grid[0]} x {grid[1]}: code its {side} px centre crop (--size)")


@torch.no_grad()
def compress_with_prior(autoencoder, prior: LearnedPrior, x: torch.Tensor) -> Encoded:
    """One image (1, C, H, W) in [-1, 1] on the prior's grid -> its file, the symbols and the reconstruction."""
    autoencoder.eval()
    height, width = x.shape[-2:]
    codes = autoencoder.encode(x).codes
    symbols = autoencoder.to_symbols(codes, prior.step).cpu()
    _check(autoencoder, prior, symbols.shape[2:])
    data = pack_file(PRIOR_CODED, 0, height, width, fingerprint(prior), encode_with_prior(symbols, prior))
    reconstruction = autoencoder.decode(autoencoder.from_symbols(symbols, prior.step)).sample.clamp(-1, 1)
    return Encoded(data, symbols, reconstruction.cpu())


@torch.no_grad()
def decompress_with_prior(autoencoder, prior: LearnedPrior, data: bytes, name: str = "bitstream"
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """A file from :func:`compress_with_prior` -> (reconstruction (1, C, H, W), symbols (1, C', h, w))."""
    _, height, width, words = read_file(data, name, PRIOR_CODED, fingerprint(prior), "prior")
    f = autoencoder.downsampling_factor
    grid = (-(-height // f), -(-width // f))
    _check(autoencoder, prior, grid)
    try:
        symbols = decode_with_prior(words, grid, prior)
    except (ValueError, RuntimeError, AssertionError, IndexError) as exc:
        raise ScvaeError(f"{name}: damaged bitstream ({exc})") from None
    autoencoder.eval()
    image = autoencoder.decode(autoencoder.from_symbols(symbols, prior.step)).sample.clamp(-1, 1)
    return image[..., :height, :width].cpu(), symbols
