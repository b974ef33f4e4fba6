"""The entropy model every family's symbols are coded with: one categorical distribution per channel.

A channel is what :meth:`~scvae.models.AutoencoderModel.to_symbols` puts on axis 1: an SC-VAE atom (0 where
it is inactive, else its quantised value), an AE or VAE latent channel, an FSQ dimension, a residual VQ
stage, or a VQ's code index. Every position of a channel is coded with the channel's distribution, fitted
by counting symbols on training images: the per-channel, position-independent model that
``scvae.evaluation.rate`` measures as a plug-in entropy, here as a model a decoder also has. A symbol never
seen in fitting is coded as the channel's escape symbol followed by its value in ``RAW_BITS`` bits.

With ``context=True`` each channel has ``CONTEXTS`` distributions instead of one, chosen by how many of the
symbol's left and up neighbours in the same channel differ from the channel's most frequent symbol: for an
SC-VAE atom, how many of those neighbours use the atom (neighbouring positions share atoms); for every
other family the same rule. A context's counts are smoothed towards the channel's overall distribution.
"""
from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from ..errors import ScvaeError
from ..files import ordinary_mode

RAW_BITS = 16  # an escaped symbol's value, offset by 2**15: symbols must lie in [-2**15, 2**15)
ESCAPE_COUNT = 1.0  # the escape symbol's pseudo-count in every channel
CONTEXTS = 3  # 0, 1 or 2 of the left and up neighbours differ from the channel's most frequent symbol
FORMAT, CONTEXT_FORMAT = "scvae-entropy-model-1", "scvae-entropy-model-2"


def neighbour_context(symbols: np.ndarray, modes: np.ndarray) -> np.ndarray:
    """Symbols (..., C, h, w) -> each one's context (same shape, in {0, 1, 2}): how many of its left and up
    neighbours in the same channel differ from that channel's mode (``modes`` (C,)). Outside the grid counts
    as the mode. Only symbols before it in raster order are read, so a decoder can form it as it goes."""
    busy = symbols != np.asarray(modes).reshape(-1, 1, 1)
    context = np.zeros(symbols.shape, np.int64)
    context[..., :, 1:] += busy[..., :, :-1]
    context[..., 1:, :] += busy[..., :-1, :]
    return context


@dataclass
class ChannelEntropyModel:
    """alphabets[c]: the sorted symbol values channel c was fitted on; counts[c] (contexts, len(alphabets[c])):
    how often each occurred in each context (one context without ``context``); modes (C,): each channel's
    most frequent symbol, which the contexts are read against (None without context). step: the
    quantisation step of continuous codes (None for discrete ones); model_type: the family."""

    alphabets: list[np.ndarray]
    counts: list[np.ndarray]
    step: float | None
    model_type: str
    modes: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # per-image coding reuses

    @classmethod
    def fit(cls, symbols: torch.Tensor, step: float | None, model_type: str,
            context: bool = False) -> "ChannelEntropyModel":
        """Count the symbols (N, C, h, w) of the fitting images, channel by channel (and context by context)."""
        symbols = symbols.numpy().astype(np.int64)
        alphabets = [np.unique(symbols[:, c]) for c in range(symbols.shape[1])]
        indices = [np.searchsorted(a, symbols[:, c].ravel()) for c, a in enumerate(alphabets)]
        counts = [np.bincount(i, minlength=len(a)).astype(np.float64) for i, a in zip(indices, alphabets)]
        if not context:
            return cls(alphabets, [n[None] for n in counts], step, model_type)
        modes = np.array([a[np.argmax(n)] if len(a) else 0 for a, n in zip(alphabets, counts)], np.int64)
        contexts = neighbour_context(symbols, modes)
        by_context = [np.zeros((CONTEXTS, len(a))) for a in alphabets]
        for c, (n, index) in enumerate(zip(by_context, indices)):
            np.add.at(n, (contexts[:, c].ravel(), index), 1.0)
        return cls(alphabets, by_context, step, model_type, modes)

    @property
    def n_channels(self) -> int:
        return len(self.alphabets)

    @property
    def contexts(self) -> int:
        return self.counts[0].shape[0] if self.counts else 1

    def probabilities(self, channel: int, context: int = 0) -> np.ndarray:
        """Channel ``channel``'s distribution over its alphabet in ``context``, then the escape symbol (sums to
        1). A context's counts get a pseudo-count of one symbol per alphabet entry spread as the channel's
        overall distribution, so a symbol unseen in one context still costs finite bits."""
        n = self.counts[channel][context]
        if self.contexts > 1:
            overall = self.counts[channel].sum(0)
            n = n + len(n) * overall / max(overall.sum(), 1.0)
        p = np.append(n, ESCAPE_COUNT)
        return p / p.sum()

    def probability_table(self, channel: int) -> np.ndarray:
        """(contexts, alphabet + 1): :meth:`probabilities` of every context (built once per channel)."""
        tables = self._cache.setdefault("tables", {})
        if channel not in tables:
            tables[channel] = np.stack([self.probabilities(channel, k) for k in range(self.contexts)])
        return tables[channel]

    def symbol_contexts(self, symbols: np.ndarray) -> np.ndarray:
        """Symbols (..., C, h, w) -> each one's context index (zeros without context)."""
        if self.modes is None:
            return np.zeros(symbols.shape, np.int64)
        return neighbour_context(symbols, self.modes)

    def alphabet_indices(self, channel: int, values: np.ndarray) -> np.ndarray:
        """Each value's position in the channel's alphabet, or the escape index (= alphabet size)."""
        alphabet = self.alphabets[channel]
        index = np.searchsorted(alphabet, values).clip(max=max(len(alphabet) - 1, 0))
        seen = alphabet[index] == values if len(alphabet) else np.zeros(values.shape, bool)
        return np.where(seen, index, len(alphabet))

    def bits(self, symbols: torch.Tensor) -> torch.Tensor:
        """The ideal code length in bits of each image's symbols (N, C, h, w) under this model, (N,): the
        rate an entropy coder with this model reaches up to its rounding."""
        if symbols.shape[1] != self.n_channels:
            raise ScvaeError(f"symbols have {symbols.shape[1]} channels; the entropy model has {self.n_channels}")
        symbols = symbols.numpy().astype(np.int64)
        contexts = self.symbol_contexts(symbols)
        total = np.zeros(symbols.shape[0])
        for c in range(self.n_channels):
            values = symbols[:, c].reshape(symbols.shape[0], -1)
            index = self.alphabet_indices(c, values)
            cost = -np.log2(self.probability_table(c))[contexts[:, c].reshape(index.shape), index]
            total += (cost + RAW_BITS * (index == len(self.alphabets[c]))).sum(1)
        return torch.from_numpy(total)

    def categoricals(self) -> list:
        """constriction's model of each channel (built once: every image is coded with the same ones);
        without context only."""
        if "categoricals" not in self._cache:
            import constriction

            self._cache["categoricals"] = [constriction.stream.model.Categorical(self.probabilities(c), perfect=False)
                                           for c in range(self.n_channels)]
        return self._cache["categoricals"]

    def fingerprint(self) -> int:
        """A CRC-32 of the model, written into every bitstream so that a file is never decoded with
        another model (computed once)."""
        if "fingerprint" not in self._cache:
            crc = zlib.crc32(json.dumps([self.step, self.model_type]).encode())
            if self.modes is not None:
                crc = zlib.crc32(self.modes.tobytes(), zlib.crc32(b"context", crc))
            for values, n in zip(self.alphabets, self.counts):
                crc = zlib.crc32(n.tobytes(), zlib.crc32(values.tobytes(), crc))
            self._cache["fingerprint"] = crc
        return self._cache["fingerprint"]

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        offsets = np.cumsum([0] + [len(a) for a in self.alphabets]).astype(np.int64)
        tensors = {"values": np.concatenate(self.alphabets).astype(np.int64),
                   "counts": np.concatenate([n.ravel() for n in self.counts]).astype(np.float64), "offsets": offsets}
        meta = {"format": FORMAT, "step": json.dumps(self.step), "model_type": self.model_type}
        if self.modes is not None:
            tensors["modes"] = self.modes.astype(np.int64)
            meta.update(format=CONTEXT_FORMAT, contexts=str(self.contexts))
        save_file(tensors, str(path), metadata=meta)
        ordinary_mode(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ChannelEntropyModel":
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), "np") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
            offsets, values, counts = tensors["offsets"], tensors["values"], tensors["counts"]
            if meta.get("format") not in (FORMAT, CONTEXT_FORMAT):
                raise ValueError(f"format {meta.get('format')!r}")
            step = json.loads(meta["step"])
            contexts, modes = int(meta.get("contexts", 1)), tensors.get("modes")
        except FileNotFoundError:
            raise ScvaeError(f"{path}: no such entropy model file") from None
        except Exception as exc:  # safetensors' own errors, missing keys, bad metadata
            raise ScvaeError(f"{path}: not an scvae entropy model ({type(exc).__name__}: {exc})") from None
        pieces = list(zip(offsets[:-1], offsets[1:]))
        return cls([values[a:b] for a, b in pieces],
                   [counts[a * contexts:b * contexts].reshape(contexts, -1) for a, b in pieces], step,
                   meta["model_type"], modes)
