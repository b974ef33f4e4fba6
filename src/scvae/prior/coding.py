"""Range coding with the learned prior: files whose length follows the prior's negative log-likelihood.

The encoder and the decoder walk the same loop (:func:`_walk`): position by position, entry by entry, the
network computes the next distribution from the entries coded so far, and the symbol is encoded (or
decoded) with it. Both sides feed the network the same inputs in the same shapes (positions not yet coded
are zero in both), so they compute the same probabilities bit for bit on one machine and thread count,
which an exact round trip needs. Escaped values follow as raw 16-bit words.

File layout: the 16-byte header of :mod:`scvae.coding.bitstream` with format version 2 and the prior's
fingerprint in place of the entropy model's, then constriction's 32-bit words.
"""
from __future__ import annotations

import zlib
from typing import Callable

import constriction
import numpy as np
import torch

from ..coding.bitstream import HEADER, MAGIC, PRIOR_CODED, Encoded, read_file
from ..coding.entropy_model import RAW_BITS
from ..errors import ScvaeError
from .layout import Entries
from .training import LearnedPrior

_OFFSET = 2 ** (RAW_BITS - 1)
_BY_SYMBOL = constriction.stream.model.Categorical(perfect=False)
_RAW = constriction.stream.model.Uniform(2 ** RAW_BITS)


def fingerprint(prior: LearnedPrior) -> int:
    """CRC-32 of the prior's weights and layout: a file names the prior it needs."""
    crc = zlib.crc32(repr(prior.layout.to_dict()).encode())
    for name, tensor in prior.network.state_dict().items():
        crc = zlib.crc32(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes(), crc)
    return crc


@torch.no_grad()
def _walk(prior: LearnedPrior, grid: tuple[int, int], choose: Callable[[torch.Tensor, str, int, int], int]
          ) -> Entries:
    """Visit every symbol in coding order; ``choose(log_probs (V,), kind, p, j)`` codes entry j's channel or
    value (``kind``) at position p and returns it. Returns the entries coded."""
    net, layout = prior.network.eval(), prior.layout
    h, w = grid
    length = layout.max_entries
    entries = Entries(torch.zeros(1, h * w, length, dtype=torch.long), torch.zeros(1, h * w, length, dtype=torch.long),
                      torch.zeros(1, h * w, dtype=torch.long), grid)
    for p in range(h * w):
        context = net.contexts(entries)[0, p]
        for j in range(length + 1 if layout.sparse else length):
            state = net.states(context, entries.channels[0, p, :j], entries.values[0, p, :j])
            channel = j
            if layout.sparse:
                channel = choose(net.channel_logits(state), "channel", p, j)
                if channel == layout.n_channels:
                    break
                if j == length or (j and channel <= entries.channels[0, p, j - 1]):
                    raise ValueError(f"position {p}: atom {channel} out of order or over the cap")
            value = choose(net.value_logits(state, torch.tensor(channel)), "value", p, j)
            entries.channels[0, p, j], entries.values[0, p, j] = channel, value
            entries.lengths[0, p] = j + 1
    return entries


def _probabilities(log_probs: torch.Tensor) -> np.ndarray:
    return log_probs.double().exp().numpy()[None]


def encode_with_prior(symbols: torch.Tensor, prior: LearnedPrior) -> np.ndarray:
    """Symbols (1, C, h, w) -> the range coder's words (uint32)."""
    layout = prior.layout
    target = layout.pack(symbols)
    raw = symbols.long().permute(0, 2, 3, 1).reshape(1, -1, layout.n_channels)
    encoder = constriction.stream.queue.RangeEncoder()
    escaped = []

    def choose(log_probs: torch.Tensor, kind: str, p: int, j: int) -> int:
        if kind == "channel":  # the end mark after the last entry
            symbol = int(target.channels[0, p, j]) if j < int(target.lengths[0, p]) else layout.n_channels
        else:
            symbol = int(target.values[0, p, j])
            if symbol == layout.escape:
                escaped.append(int(raw[0, p, target.channels[0, p, j]]))
        encoder.encode(np.array([symbol], np.int32), _BY_SYMBOL, _probabilities(log_probs))
        return symbol

    _walk(prior, tuple(target.grid), choose)
    if escaped:
        values = np.asarray(escaped) + _OFFSET
        if values.min() < 0 or values.max() >= 2 ** RAW_BITS:
            raise ScvaeError(f"a symbol outside [-{_OFFSET}, {_OFFSET}) cannot be escaped; the codes are out of range")
        encoder.encode(values.astype(np.int32), _RAW)
    return encoder.get_compressed()


def decode_with_prior(words: np.ndarray, grid: tuple[int, int], prior: LearnedPrior) -> torch.Tensor:
    """The inverse of :func:`encode_with_prior`: words -> symbols (1, C, h, w)."""
    decoder = constriction.stream.queue.RangeDecoder(words)
    entries = _walk(prior, grid, lambda log_probs, *_: int(decoder.decode(_BY_SYMBOL, _probabilities(log_probs))[0]))
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
    words = encode_with_prior(symbols, prior)
    header = HEADER.pack(MAGIC, PRIOR_CODED, 0, height, width, fingerprint(prior), 0)
    reconstruction = autoencoder.decode(autoencoder.from_symbols(symbols, prior.step)).sample.clamp(-1, 1)
    return Encoded(header + words.astype("<u4").tobytes(), symbols, reconstruction.cpu())


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
