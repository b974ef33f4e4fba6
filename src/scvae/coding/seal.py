"""The range coder's payload cut at the last byte its decoder needs.

constriction's ``RangeEncoder.get_compressed`` ends a stream with a whole 32-bit word that names a point of
the encoder's final interval ``[lower, lower + range)`` (a 64-bit window after the words already written):
about 16 bits beyond the symbols' code length on average, 3-4 % of a 500-bit tokenizer file. Any point of
that interval decodes to the same symbols, and the decoder reads zeros past the end of its data, so the
payload can stop after the last non-zero byte of the interval's point with the most trailing zero bytes:
about 3 bits beyond the code length on average (``tests/test_seal.py`` measures it).

The words are written big-endian, most significant byte first, so that dropping the point's zero bytes
shortens the stream instead of leaving holes in its last word.
"""
from __future__ import annotations

import numpy as np

WORD_BYTES, STATE_BYTES = 4, 8  # constriction's default range coder: 32-bit words, a 64-bit state
WINDOW = 1 << 8 * STATE_BYTES  # the state's window: points at or above it carry into the words before


def shortest_payload(encoder) -> bytes:
    """A ``constriction.stream.queue.RangeEncoder`` after its last symbol -> its sealed stream as bytes, the
    final point chosen with as many trailing zero bytes as its interval allows. Read back with
    :func:`payload_words`."""
    position, (lower, width) = encoder.pos()  # words before the window (held-back ones included), its state
    words = encoder.get_compressed()
    head = words[:position].astype(">u4").tobytes()
    # constriction resolves held-back words by whether its own end point, lower + 2^32 - 1, carries out of
    # the window; ours must carry alike, or those words would be wrong for it
    carry = lower + (1 << 8 * WORD_BYTES) - 1 >= WINDOW
    for n_bytes in range(STATE_BYTES + 1):
        unit = 1 << (8 * (STATE_BYTES - n_bytes))
        point = -(-lower // unit) * unit  # the first multiple of unit at or above lower
        if point < lower + width and (point >= WINDOW) == carry:
            return head + (point % WINDOW).to_bytes(STATE_BYTES, "big")[:n_bytes]
    raise AssertionError("unreachable: the point lower itself is in the interval")  # n_bytes = 8


def payload_words(payload: bytes) -> np.ndarray:
    """The inverse of :func:`shortest_payload`: bytes -> the decoder's uint32 words, zero-padded."""
    padded = payload + bytes(-len(payload) % WORD_BYTES)
    return np.frombuffer(padded, ">u4").astype(np.uint32)
