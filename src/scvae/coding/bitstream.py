"""Real bitstreams: an image's symbols range-coded (constriction) with a :class:`ChannelEntropyModel`.

File layout: a 16-byte header, then the range coder's stream: its 32-bit words big-endian, cut after the
last byte the decoder needs (:mod:`.seal`). Files of versions 1 and 2 (whole words, little-endian, no
checksum) are still read.

=======  =====  ==========================================================
bytes    type   content
=======  =====  ==========================================================
0-3      4s     magic ``SCVZ``
4        u8     format version (3; 4: coded with a learned prior, :mod:`scvae.prior.coding`)
5        u8     flags: bit 0 set when the image was coded as overlapping tiles of the model's training size
6-7      u16    image height in pixels
8-9      u16    image width in pixels
10-13    u32    the entropy model's fingerprint (CRC-32)
14-15    u16    the payload's checksum: the low 16 bits of its CRC-32 (0 in versions 1 and 2)
=======  =====  ==========================================================

The symbols are coded channel by channel in raster order, then the values of escaped symbols. An image larger
than the model's training resolution is coded as the overlapping tiles ``reconstruct --size full`` runs it
through (:mod:`scvae.models.tiling`; their layout follows from the image size), one after the other, and
decoded tile by tile and blended the same way. With a
context model each symbol is coded with its context's distribution, and decoded position by position. A file's
size is therefore the header, plus the ideal code length of its symbols under the model, plus the range
coder's rounding and the bytes that name its final point (about 3 bits on average, at most 72).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import constriction
import numpy as np
import torch

from ..errors import ScvaeError
from ..models.tiling import blend_tiles, split_tiles, tile_boxes
from .entropy_model import RAW_BITS, ChannelEntropyModel
from .seal import payload_words, shortest_payload

MAGIC, VERSION = b"SCVZ", 3
PRIOR_CODED = 4  # the version of files coded with a learned prior (scvae.prior.coding)
WHOLE_WORDS = {VERSION: 1, PRIOR_CODED: 2}  # the earlier versions: little-endian words, no checksum; still read
HEADER = struct.Struct("<4sBBHHIH")
HEADER_BITS = 8 * HEADER.size
_OFFSET = 2 ** (RAW_BITS - 1)
_BY_SYMBOL = constriction.stream.model.Categorical(perfect=False)  # probabilities given with each symbol


@dataclass
class Encoded:
    """data: the file's bytes; symbols: what was coded (1, C, h, w); reconstruction: what decoding gives
    (None when not asked for)."""

    data: bytes
    symbols: torch.Tensor
    reconstruction: torch.Tensor | None


def encode_symbols(symbols: np.ndarray, model: ChannelEntropyModel) -> bytes:
    """Symbols (C, h, w), or tiles (N, C, h, w) coded one after the other, int64 -> the range coder's stream
    (:func:`~scvae.coding.seal.shortest_payload`)."""
    encoder = constriction.stream.queue.RangeEncoder()
    for tile in symbols.reshape(-1, *symbols.shape[-3:]):
        _encode_tile(encoder, tile, model)
    return shortest_payload(encoder)


def pack_file(version: int, flags: int, height: int, width: int, fingerprint: int, payload: bytes) -> bytes:
    """The header, with the payload's checksum, then the payload."""
    return HEADER.pack(MAGIC, version, flags, height, width, fingerprint, _checksum(payload)) + payload


def _checksum(payload: bytes) -> int:
    return zlib.crc32(payload) & 0xFFFF


def _encode_tile(encoder, symbols: np.ndarray, model: ChannelEntropyModel) -> None:
    contexts = model.symbol_contexts(symbols)
    escaped = []
    for c in range(model.n_channels):
        values = symbols[c].ravel()
        index = model.alphabet_indices(c, values).astype(np.int32)
        if model.modes is None:
            encoder.encode(index, model.categoricals()[c])
        else:  # one distribution per symbol, chosen by its context
            encoder.encode(index, _BY_SYMBOL, model.probability_table(c)[contexts[c].ravel()])
        escaped.append(values[index == len(model.alphabets[c])])
    raw = np.concatenate(escaped) + _OFFSET
    if raw.size:
        if raw.min() < 0 or raw.max() >= 2 ** RAW_BITS:
            raise ScvaeError(f"a symbol outside [-{_OFFSET}, {_OFFSET}) cannot be escaped; the codes are out of range")
        encoder.encode(raw.astype(np.int32), constriction.stream.model.Uniform(2 ** RAW_BITS))


def _decode_channel(decoder, model: ChannelEntropyModel, c: int, h: int, w: int) -> np.ndarray:
    """Channel ``c``'s alphabet indices (h * w,), position by position when each one's context depends on the
    neighbours decoded before it."""
    if model.modes is None:
        return decoder.decode(model.categoricals()[c], h * w)
    table, alphabet = model.probability_table(c), model.alphabets[c]
    busy = np.zeros((h, w), bool)  # differs from the mode (an escaped symbol never is the mode)
    mode_index = np.searchsorted(alphabet, model.modes[c])
    index = np.zeros((h, w), np.int64)
    for i in range(h):
        for j in range(w):
            context = int(j > 0 and busy[i, j - 1]) + int(i > 0 and busy[i - 1, j])
            index[i, j] = decoder.decode(_BY_SYMBOL, table[context:context + 1])[0]
            busy[i, j] = index[i, j] != mode_index
    return index.ravel()


def decode_symbols(words: np.ndarray, shape: tuple[int, ...], model: ChannelEntropyModel) -> np.ndarray:
    """The inverse of :func:`encode_symbols`: words -> symbols of ``shape`` (C, h, w) or (N, C, h, w)."""
    decoder = constriction.stream.queue.RangeDecoder(words)
    tiles = [_decode_tile(decoder, shape[-3:], model) for _ in range(int(np.prod(shape[:-3], dtype=int)))]
    return np.stack(tiles).reshape(shape)


def _decode_tile(decoder, shape: tuple[int, int, int], model: ChannelEntropyModel) -> np.ndarray:
    channels, h, w = shape
    out = np.zeros((channels, h * w), np.int64)
    escapes = []
    for c in range(model.n_channels):
        index = _decode_channel(decoder, model, c, h, w)
        alphabet = model.alphabets[c]
        escape = index == len(alphabet)
        out[c] = np.where(escape, 0, alphabet[np.minimum(index, max(len(alphabet) - 1, 0))] if len(alphabet) else 0)
        escapes.append((c, np.flatnonzero(escape)))
    n_escaped = sum(len(where) for _, where in escapes)
    if n_escaped:
        raw = decoder.decode(constriction.stream.model.Uniform(2 ** RAW_BITS), n_escaped).astype(np.int64) - _OFFSET
        start = 0
        for c, where in escapes:
            out[c, where] = raw[start:start + len(where)]
            start += len(where)
    return out.reshape(channels, h, w)


TILED = 1  # the header's flag


@torch.no_grad()
def compress_image(autoencoder, model: ChannelEntropyModel, x: torch.Tensor, reconstruct: bool = True) -> Encoded:
    """One image (1, C, H, W) in [-1, 1] -> its bitstream, the coded symbols ((1, C', h, w), or (N, C', h, w)
    for N tiles) and the reconstruction the decoder will produce (None without ``reconstruct``: a decoder
    pass that writing the file does not need)."""
    _check_family(autoencoder, model)
    height, width = x.shape[-2:]
    if max(height, width) >= 2 ** 16:
        raise ScvaeError(f"images up to 65535 px a side can be coded, got {width}x{height}")
    overlap = autoencoder.tile_overlap if autoencoder.is_tiled(height, width) else None
    pieces = x if overlap is None else split_tiles(x, autoencoder.resolution, overlap)[0]
    device = next(autoencoder.parameters()).device
    codes = torch.cat([autoencoder.encode_any_size(chunk.to(device)).codes for chunk in pieces.split(64)])
    symbols = autoencoder.to_symbols(codes, model.step).cpu()
    data = pack_file(VERSION, 0 if overlap is None else TILED, height, width, model.fingerprint(),
                     encode_symbols(symbols.numpy(), model))
    reconstruction = _decode(autoencoder, model, symbols, height, width, overlap) if reconstruct else None
    return Encoded(data, symbols, reconstruction)


def read_file(data: bytes, name: str, version: int, fingerprint: int, coder: str
              ) -> tuple[int, int, int, np.ndarray]:
    """Check a file's header against the ``version`` and the ``fingerprint`` of the ``coder`` decoding it
    (one line naming what is wrong otherwise); returns (flags, height, width, the coder's words)."""
    if len(data) < HEADER.size:
        raise ScvaeError(f"{name}: truncated or not an scvae bitstream ({len(data)} bytes)")
    magic, found, flags, height, width, written_with, checksum = HEADER.unpack(data[:HEADER.size])
    prior_coded = is_prior_coded(found)
    if magic == MAGIC and prior_coded is not None and prior_coded != is_prior_coded(version):
        raise ScvaeError(f"{name}: was coded with a learned prior; decompress it with --prior" if prior_coded
                         else f"{name}: was not coded with a learned prior; decompress it without --prior")
    if magic != MAGIC or found not in (version, WHOLE_WORDS[version]):
        raise ScvaeError(f"{name}: not an scvae bitstream (magic {magic!r}, version {found})")
    if written_with != fingerprint:
        raise ScvaeError(f"{name}: was written with another {coder} (fingerprint {written_with:08x}, "
                         f"this one {fingerprint:08x})")
    payload = data[HEADER.size:]
    if found == WHOLE_WORDS[version]:
        if len(payload) % 4:
            raise ScvaeError(f"{name}: truncated or not an scvae bitstream ({len(data)} bytes)")
        return flags, height, width, np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    if _checksum(payload) != checksum:
        raise ScvaeError(f"{name}: truncated or damaged (its {len(payload)}-byte payload does not match the "
                         f"header's checksum)")
    return flags, height, width, payload_words(payload)


def is_prior_coded(version: int) -> bool | None:
    """Whether a file of this format version was coded with a learned prior; None for an unknown version."""
    if version in (VERSION, WHOLE_WORDS[VERSION]):
        return False
    return True if version in (PRIOR_CODED, WHOLE_WORDS[PRIOR_CODED]) else None


@torch.no_grad()
def decompress_image(autoencoder, model: ChannelEntropyModel, data: bytes, name: str = "bitstream"):
    """A file written by :func:`compress_image` -> (reconstruction (1, C, H, W), symbols as it coded them)."""
    _check_family(autoencoder, model)
    flags, height, width, words = read_file(data, name, VERSION, model.fingerprint(), "entropy model")
    f, size = autoencoder.downsampling_factor, autoencoder.resolution
    overlap = autoencoder.tile_overlap if flags & TILED else None
    if overlap is not None:
        shape = (len(tile_boxes(height, width, size, overlap)), model.n_channels, size // f, size // f)
    else:
        shape = (1, model.n_channels, -(-height // f), -(-width // f))
    try:
        symbols = torch.from_numpy(decode_symbols(words, shape, model))
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise ScvaeError(f"{name}: damaged bitstream ({exc})") from None
    return _decode(autoencoder, model, symbols, height, width, overlap), symbols


def _decode(autoencoder, model: ChannelEntropyModel, symbols: torch.Tensor, height: int, width: int,
            overlap: int | None) -> torch.Tensor:
    """Symbols of the whole image (1, C', h, w), or of its tiles (N, C', h, w) overlapping by ``overlap`` px,
    -> the image (1, C, H, W)."""
    device = next(autoencoder.parameters()).device
    pieces = torch.cat([autoencoder.decode(autoencoder.from_symbols(chunk.to(device), model.step)).sample.clamp(-1, 1)
                        .cpu() for chunk in symbols.split(64)])
    if overlap is None:
        return pieces[..., :height, :width]
    return blend_tiles(pieces, tile_boxes(height, width, autoencoder.resolution, overlap), height, width, overlap)


def _check_family(autoencoder, model: ChannelEntropyModel) -> None:
    if autoencoder.model_type != model.model_type:
        raise ScvaeError(f"the entropy model was fitted for a {model.model_type} model, not {autoencoder.model_type}")
