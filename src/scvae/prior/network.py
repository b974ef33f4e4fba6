"""The learned prior: a causal transformer over positions, and a small autoregressive head within a position.

For the entry lists of :mod:`.layout`, the probability of one image's symbols factorises as

    p = prod_positions prod_entries p(channel_j | ...) p(value_j | channel_j, ...)

over positions in raster order, then entries in list order. The transformer reads each earlier position as
the sum of its entries' embeddings and gives a context vector per position (B, P, d). Within a position,
entry j's state is that context plus the summed embeddings of entries 0..j-1 and an embedding of j; an MLP
turns it into the next channel's logits (sparse layouts: any channel above the previous one, or the end
mark) and, given the channel, the value's logits. Dense layouts skip the channel head: entry j is channel j.
Every family gets this one network with the same size, so their bits per image are comparable.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layout import Entries, EntryLayout


@dataclass(frozen=True)
class PriorConfig:
    """The network's size: ``width`` d, transformer ``layers`` and ``heads``; ``positions``: the most
    positions (h w) an image may have."""

    width: int = 128
    layers: int = 4
    heads: int = 4
    positions: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


class _Block(nn.Module):
    """LayerNorm, Linear d -> 2d, GELU, Linear 2d -> d, added to its input: (..., d) -> (..., d)."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(),
                                 nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class PriorNetwork(nn.Module):
    """Log-probabilities of entry lists under the factorisation of the module docstring."""

    def __init__(self, layout: EntryLayout, config: PriorConfig = PriorConfig()):
        super().__init__()
        self.layout, self.config = layout, config
        d, c, v = config.width, layout.n_channels, len(layout.values) + 1  # + the escape value
        self.position_channel = nn.Embedding(c, d)  # how an earlier position reads to the transformer
        self.position_value = nn.Embedding(v, d)
        self.start = nn.Parameter(torch.zeros(d))
        self.raster = nn.Embedding(config.positions, d)
        layer = nn.TransformerEncoderLayer(d, config.heads, 4 * d, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.entry_channel = nn.Embedding(c, d)  # how earlier entries of the same position read
        self.entry_value = nn.Embedding(v, d)
        self.slot = nn.Embedding(layout.max_entries + 1, d)
        self.state = nn.Sequential(_Block(d), _Block(d), nn.LayerNorm(d))
        self.channel_head = nn.Linear(d, c + 1) if layout.sparse else None  # + the end mark
        self.chosen_channel = nn.Embedding(c, d)
        self.value_head = nn.Sequential(_Block(d), nn.LayerNorm(d), nn.Linear(d, v))

    # --- the parts, shared by training (all entries at once) and sampling (one entry at a time) -------
    def contexts(self, entries: Entries) -> torch.Tensor:
        """Entries (B, P, L) -> context (B, P, d): position p's depends on positions before p only."""
        b, p, length = entries.channels.shape
        if p > self.config.positions:
            raise ValueError(f"{p} positions; this prior was built for at most {self.config.positions}")
        used = (torch.arange(length, device=entries.lengths.device) < entries.lengths[..., None]).unsqueeze(-1)
        summary = ((self.position_channel(entries.channels) + self.position_value(entries.values)) * used).sum(2)
        summary = summary / math.sqrt(self.layout.max_entries)
        x = torch.cat([self.start.expand(b, 1, -1), summary[:, :-1]], dim=1) + self.raster.weight[:p]
        mask = nn.Transformer.generate_square_subsequent_mask(p, device=x.device)
        return self.transformer(x, mask=mask, is_causal=True)

    def states(self, context: torch.Tensor, channels: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Context (..., d) and the entries so far (..., j) -> the state for entry j (..., d)."""
        j = channels.shape[-1]
        before = (self.entry_channel(channels) + self.entry_value(values)).sum(-2) if j else 0
        return self.state(context + before + self.slot.weight[j])

    def channel_logits(self, state: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """Sparse layouts: state (..., d) and the previous entry's channel (...) or None for the first
        -> log-probabilities (..., C + 1) of the next channel, the last being the end mark."""
        logits = self.channel_head(state)
        c = self.layout.n_channels
        if previous is not None:
            allowed = torch.arange(c + 1, device=state.device) > previous[..., None]
            logits = logits.masked_fill(~allowed, float("-inf"))
        return logits.log_softmax(-1)

    def value_logits(self, state: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
        """State (..., d) and the entry's channel (...) -> log-probabilities (..., V + 1) of its value."""
        return self.value_head(state + self.chosen_channel(channel)).log_softmax(-1)

    # --- training ---------------------------------------------------------------------------------
    def forward(self, entries: Entries) -> torch.Tensor:
        """Entries -> each image's negative log-likelihood in bits (B,), escaped values counted without
        their raw bits (see :func:`scvae.prior.fit.escape_bits`)."""
        b, p, length = entries.channels.shape
        context = self.contexts(entries)  # (B, P, d)
        embedded = self.entry_channel(entries.channels) + self.entry_value(entries.values)  # (B, P, L, d)
        used = torch.arange(length, device=context.device) < entries.lengths[..., None]  # (B, P, L)
        before = torch.cumsum(embedded * used.unsqueeze(-1), dim=2) - embedded * used.unsqueeze(-1)
        slots = length + 1 if self.layout.sparse else length  # sparse: one more state, for the end mark
        before = F.pad(before, (0, 0, 0, slots - length))
        if self.layout.sparse and length:
            before[:, :, length] = before[:, :, length - 1] + embedded[:, :, length - 1] * used[:, :, -1:]
        state = self.state(context.unsqueeze(2) + before + self.slot.weight[:slots])  # (B, P, slots, d)
        nats = torch.zeros(b, device=context.device)
        values = self.value_logits(state[:, :, :length], entries.channels)
        nats = nats - (values.gather(-1, entries.values.unsqueeze(-1)).squeeze(-1) * used).sum((1, 2))
        if self.layout.sparse:
            nats = nats - self._channel_log_likelihood(state, entries, used)
        return nats / math.log(2)

    def _channel_log_likelihood(self, state: torch.Tensor, entries: Entries, used: torch.Tensor) -> torch.Tensor:
        """Sum over positions of log p(the listed channels, then the end mark) (B,)."""
        length = entries.channels.shape[-1]
        c = self.layout.n_channels
        previous = torch.cat([torch.full_like(entries.channels[..., :1], -1), entries.channels], dim=-1)
        target = F.pad(entries.channels, (0, 1), value=c)
        target = torch.where(torch.arange(length + 1, device=state.device) == entries.lengths[..., None], c, target)
        real = torch.arange(length + 1, device=state.device) <= entries.lengths[..., None]  # entries + the end
        logits = self.channel_logits(state, previous.clamp_min(-1))
        picked = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return torch.where(real, picked, 0).sum((1, 2))
