"""How a family's symbol maps become the prior's entries: one short list of (channel, value) per position.

Every family's codes become integer symbols (B, C, h, w) through ``to_symbols`` (see
:meth:`scvae.models.AutoencoderModel.to_symbols`). The prior reads each position as a list of entries:

- a **dense** family (VQ, FSQ, residual VQ, quantised AE / VAE channels) lists every channel in order,
  so the channel of entry j is j and only the values are modelled;
- a **sparse** family (SC-VAE, whose symbol is 0 for an inactive atom) lists only the active atoms, in
  increasing atom order, then an end mark: the prior models which atoms fire, jointly with their values.

Values are indices into one sorted alphabet of the non-zero (sparse) or all (dense) symbol values seen in
training; a value outside it becomes the escape index ``len(values)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Entries:
    """A batch of symbol maps as entry lists: ``channels`` and ``values`` (B, P, L) int64 (padding: 0),
    ``lengths`` (B, P): how many entries each position has; P = h w positions in raster order; ``grid`` (h, w)."""

    channels: torch.Tensor
    values: torch.Tensor
    lengths: torch.Tensor
    grid: tuple[int, int]

    def __len__(self) -> int:
        return self.channels.shape[0]

    def index(self, rows: torch.Tensor | slice) -> "Entries":
        return Entries(self.channels[rows], self.values[rows], self.lengths[rows], self.grid)


@dataclass(frozen=True)
class EntryLayout:
    """``n_channels`` C of the symbol maps; ``sparse``: list only non-zero symbols (see the module docstring);
    ``values``: the sorted value alphabet (V,); ``max_entries``: the longest list a position may have (dense: C)."""

    n_channels: int
    sparse: bool
    values: tuple[int, ...]
    max_entries: int

    @property
    def escape(self) -> int:
        """The value index of a value outside the alphabet."""
        return len(self.values)

    @classmethod
    def fit(cls, symbols: torch.Tensor, sparse: bool, max_entries: int | None = None) -> "EntryLayout":
        """The layout of training symbols (N, C, h, w): their alphabet and, for a sparse family, the most
        entries one position has (or ``max_entries``, e.g. the model's cap on active atoms)."""
        c = symbols.shape[1]
        seen = symbols[symbols != 0] if sparse else symbols
        values = tuple(int(v) for v in torch.unique(seen).tolist())
        if not sparse:
            return cls(c, False, values, c)
        longest = int((symbols != 0).sum(1).max()) if symbols.numel() else 0
        return cls(c, True, values, max(1, max_entries or longest, longest))

    def value_indices(self, values: torch.Tensor) -> torch.Tensor:
        """Symbol values (any shape) -> their alphabet indices, the escape index where not in the alphabet."""
        alphabet = torch.tensor(self.values, dtype=torch.long)
        found = torch.searchsorted(alphabet, values.long().contiguous()).clamp_max(max(len(alphabet) - 1, 0))
        hit = alphabet[found] == values if len(alphabet) else torch.zeros_like(values, dtype=torch.bool)
        return torch.where(hit, found, torch.full_like(found, self.escape))

    def pack(self, symbols: torch.Tensor) -> Entries:
        """Symbols (B, C, h, w) -> :class:`Entries`. A sparse position with more non-zero symbols than
        ``max_entries`` is an error (the layout was fitted with too small a cap)."""
        b, c, h, w = symbols.shape
        if c != self.n_channels:
            raise ValueError(f"symbols have {c} channels, the layout {self.n_channels}")
        flat = symbols.long().permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, P, C)
        if not self.sparse:
            channels = torch.arange(c).expand(b, h * w, c).clone()
            return Entries(channels, self.value_indices(flat), torch.full((b, h * w), c), (h, w))
        active = flat != 0
        lengths = active.sum(-1)
        if lengths.numel() and int(lengths.max()) > self.max_entries:
            raise ValueError(f"a position has {int(lengths.max())} non-zero symbols, the layout allows "
                             f"{self.max_entries}")
        # active channels first, in increasing channel order: sort by (inactive, channel)
        order = torch.sort((~active).long() * c + torch.arange(c), dim=-1).indices[..., :self.max_entries]
        slot_used = torch.arange(self.max_entries) < lengths[..., None]
        channels = torch.where(slot_used, order, 0)
        values = torch.where(slot_used, self.value_indices(flat.gather(-1, order)), 0)
        return Entries(channels, values, lengths, (h, w))

    def unpack(self, entries: Entries, raw_values: torch.Tensor | None = None) -> torch.Tensor:
        """The inverse of :meth:`pack`: :class:`Entries` -> symbols (B, C, h, w). Escaped entries take
        their value from ``raw_values`` (B, P, L), which must then be given."""
        b, p, length = entries.channels.shape
        h, w = entries.grid
        alphabet = torch.tensor(self.values + (0,), dtype=torch.long)  # the escape index reads 0 ...
        values = alphabet[entries.values]
        escaped = entries.values == self.escape
        used = torch.arange(length) < entries.lengths[..., None]
        if bool((escaped & used).any()):
            if raw_values is None:
                raise ValueError("escaped entries need their raw values")
            values = torch.where(escaped, raw_values.long(), values)  # ... unless its raw value is given
        flat = torch.zeros(b, p, self.n_channels, dtype=torch.long)
        flat.scatter_(-1, torch.where(used, entries.channels, 0), torch.where(used, values, 0))
        if self.sparse:  # unused slots scatter 0 into channel 0; put back a real entry of channel 0 if any
            first = used[..., 0] & (entries.channels[..., 0] == 0)
            flat[..., 0] = torch.where(first, values[..., 0], flat[..., 0])
        return flat.reshape(b, h, w, self.n_channels).permute(0, 3, 1, 2).contiguous()

    def to_dict(self) -> dict:
        return {"n_channels": self.n_channels, "sparse": self.sparse, "values": list(self.values),
                "max_entries": self.max_entries}

    @classmethod
    def from_dict(cls, data: dict) -> "EntryLayout":
        return cls(int(data["n_channels"]), bool(data["sparse"]), tuple(int(v) for v in data["values"]),
                   int(data["max_entries"]))
