"""The range coder's stream cut at its last needed byte: exact round trips, including held-back words and
an empty stream, and a length within a few bits of the symbols' code length."""
import constriction
import numpy as np
import pytest

from scvae.coding.seal import payload_words, shortest_payload

CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


def _encoded(symbols: np.ndarray, probabilities: np.ndarray):
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols.astype(np.int32), CATEGORICAL, probabilities)
    return encoder


def _decoded(payload: bytes, probabilities: np.ndarray) -> np.ndarray:
    return constriction.stream.queue.RangeDecoder(payload_words(payload)).decode(CATEGORICAL, probabilities)


def test_streams_decode_exactly_and_end_within_a_byte_of_their_code_length():
    rng = np.random.default_rng(0)
    excess, whole_words = [], []
    for trial in range(400):
        n = int(rng.integers(1, 200))
        probabilities = rng.dirichlet(np.full(16, rng.choice([0.05, 0.3, 3.0])), size=n)
        symbols = np.array([rng.choice(16, p=p) for p in probabilities])
        code_length = -np.log2(probabilities[np.arange(n), symbols]).sum()
        payload = shortest_payload(_encoded(symbols, probabilities))
        assert np.array_equal(_decoded(payload, probabilities), symbols), trial
        excess.append(8 * len(payload) - code_length)
        whole_words.append(32 * _encoded(symbols, probabilities).num_words() - code_length)
    # the point needs about one bit beyond the code length, the cut after a whole byte about 4 more
    assert 1 < np.mean(excess) < 6 and max(excess) <= 8 + 2
    assert np.mean(whole_words) > np.mean(excess) + 10  # what constriction's whole last word costs


def _steered(encoder, target: int, steps: int, symbols: list[int]):
    """Encode ``steps`` fair bits, each the one whose interval holds ``target`` (in the encoder's 64-bit
    window, read without wrapping)."""
    for _ in range(steps):
        for bit in (0, 1):
            trial = encoder.clone()
            trial.encode(np.array([bit], np.int32), CATEGORICAL, FAIR)
            _, (lower, width) = trial.pos()
            if lower <= target < lower + width:
                break
        encoder = trial
        symbols.append(bit)
    return encoder


FAIR = np.array([[0.5, 0.5]])


def test_held_back_words_decode_with_the_carry_the_encoder_gave_them():
    """Keeping the interval on a word boundary makes the encoder hold words back until it knows whether a
    carry reaches them; steering it to just below the window's top then ends the stream with that carry."""
    rng = np.random.default_rng(0)
    carried = 0
    for trial in range(60):
        symbols: list[int] = []
        encoder = _steered(constriction.stream.queue.RangeEncoder(), 2 ** 63, 32, symbols)  # a held-back word
        encoder = _steered(encoder, 2 ** 64 + int(rng.integers(-2 ** 20, 2 ** 20)), int(rng.integers(1, 40)), symbols)
        _, (lower, _) = encoder.pos()
        carried += lower + 2 ** 32 - 1 >= 2 ** 64
        payload = shortest_payload(encoder)
        assert np.array_equal(_decoded(payload, np.tile(FAIR, (len(symbols), 1))), symbols), trial
    assert carried >= 3  # the carrying case was met


def test_an_empty_stream_is_empty():
    assert shortest_payload(constriction.stream.queue.RangeEncoder()) == b""
    assert payload_words(b"").shape == (0,)


@pytest.mark.parametrize("payload", [b"\x01", b"\x01\x02\x03\x04\x05"])
def test_payload_words_pad_with_zeros(payload):
    words = payload_words(payload)
    assert words.dtype == np.uint32 and words[0] >> 24 == 1 and words[-1] & 0xFF == 0
