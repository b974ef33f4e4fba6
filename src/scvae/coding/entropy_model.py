"""The entropy model every family's symbols are coded with: one categorical distribution per channel.

A channel is what :meth:`~scvae.models.AutoencoderModel.to_symbols` puts on axis 1: an SC-VAE atom (0 where
it is inactive, else its quantised value), an AE or VAE latent channel, an FSQ dimension, a residual VQ
stage, or a VQ's code index. Every position of a channel is coded with the channel's distribution, fitted
by counting symbols on training images: the per-channel, position-independent model that
``scvae.evaluation.rate`` measures as a plug-in entropy, here as a model a decoder also has. A symbol never
seen in fitting is coded as the channel's escape symbol followed by its value in ``RAW_BITS`` bits.
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

RAW_BITS = 16  # an escaped symbol's value, offset by 2**15: symbols must lie in [-2**15, 2**15)
ESCAPE_COUNT = 1.0  # the escape symbol's pseudo-count in every channel
FORMAT = "scvae-entropy-model-1"


@dataclass
class ChannelEntropyModel:
    """alphabets[c]: the sorted symbol values channel c was fitted on; counts[c]: how often each occurred.
    step: the quantisation step of continuous codes (None for discrete ones); model_type: the family."""

    alphabets: list[np.ndarray]
    counts: list[np.ndarray]
    step: float | None
    model_type: str
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # per-image coding reuses

    @classmethod
    def fit(cls, symbols: torch.Tensor, step: float | None, model_type: str) -> "ChannelEntropyModel":
        """Count the symbols (N, C, h, w) of the fitting images, channel by channel."""
        alphabets, counts = [], []
        for c in range(symbols.shape[1]):
            values, n = torch.unique(symbols[:, c].flatten(), return_counts=True)
            alphabets.append(values.numpy().astype(np.int64))
            counts.append(n.numpy().astype(np.float64))
        return cls(alphabets, counts, step, model_type)

    @property
    def n_channels(self) -> int:
        return len(self.alphabets)

    def probabilities(self, channel: int) -> np.ndarray:
        """Channel ``channel``'s distribution over its alphabet, then the escape symbol (sums to 1)."""
        p = np.append(self.counts[channel], ESCAPE_COUNT)
        return p / p.sum()

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
        total = np.zeros(symbols.shape[0])
        for c in range(self.n_channels):
            values = symbols[:, c].reshape(symbols.shape[0], -1).numpy()
            index = self.alphabet_indices(c, values)
            cost = -np.log2(self.probabilities(c))[index] + RAW_BITS * (index == len(self.alphabets[c]))
            total += cost.sum(1)
        return torch.from_numpy(total)

    def categoricals(self) -> list:
        """constriction's model of each channel (built once: every image is coded with the same ones)."""
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
            for values, n in zip(self.alphabets, self.counts):
                crc = zlib.crc32(n.tobytes(), zlib.crc32(values.tobytes(), crc))
            self._cache["fingerprint"] = crc
        return self._cache["fingerprint"]

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        offsets = np.cumsum([0] + [len(a) for a in self.alphabets]).astype(np.int64)
        tensors = {"values": np.concatenate(self.alphabets).astype(np.int64),
                   "counts": np.concatenate(self.counts).astype(np.float64), "offsets": offsets}
        meta = {"format": FORMAT, "step": json.dumps(self.step), "model_type": self.model_type}
        save_file(tensors, str(path), metadata=meta)
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
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
            step = json.loads(meta["step"])
        except FileNotFoundError:
            raise ScvaeError(f"{path}: no such entropy model file") from None
        except Exception as exc:  # safetensors' own errors, missing keys, bad metadata
            raise ScvaeError(f"{path}: not an scvae entropy model ({type(exc).__name__}: {exc})") from None
        pieces = list(zip(offsets[:-1], offsets[1:]))
        return cls([values[a:b] for a, b in pieces], [counts[a:b] for a, b in pieces], step, meta["model_type"])
