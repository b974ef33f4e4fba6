"""The learned prior: a causal transformer over positions, and a small autoregressive head within a position.

For the entry lists of :mod:`.layout`, the probability of one image's symbols factorises as

    p = prod_positions prod_entries p(channel_j | ...) p(value_j | channel_j, ...)

over positions in raster order, then entries in list order. The transformer reads each earlier position as
the sum of its entries' embeddings and gives a context vector per position (B, P, d). An entry's embedding
is its channel's plus its value's (``binding="sum"``, the default), so a summed position keeps which
channels are listed and which values occur but not which channel had which; ``binding="product"`` (c + v +
c * v, elementwise) binds them. On SC-VAE's codes the binding cost bits and sample quality (docs/results.md);
on dense families, whose summed channel embeddings are a constant, it is not yet measured.

Within a position, entry j's state is that context plus the summed embeddings of entries 0..j-1 and an
embedding of j; an MLP turns it into the next channel's logits (sparse layouts: an atom above the previous
one, or the end mark) and, given the channel, the value's logits. Dense layouts skip the channel head: entry
j is channel j. Every family gets this one network with the same size, so their bits per image are comparable.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..presets import PRIOR_BINDINGS, PRIOR_DEFAULTS
from .layout import Entries, EntryLayout


def bind(channel: torch.Tensor, value: torch.Tensor, binding: str) -> torch.Tensor:
    """An entry's embedding from its channel's and value's embeddings (..., d) -> (..., d)."""
    return channel + value + channel * value if binding == "product" else channel + value


@dataclass(frozen=True)
class PriorConfig:
    """The network's size: the transformer's ``width`` d, ``layers`` and ``heads``; ``entry_width``: the
    within-position head's width (it runs once per entry, up to 34 times a position for SC-VAE, so it is
    kept small); ``positions``: the most positions (h w) an image may have (None: the training codes' grid,
    set when the prior is fitted); ``binding``: how an entry's channel and value embeddings combine,
    ``"sum"`` or ``"product"`` (see the module docstring)."""

    width: int = 128
    layers: int = 4
    heads: int = 4
    entry_width: int = 64
    positions: int | None = None
    binding: str = PRIOR_DEFAULTS["binding"]

    def __post_init__(self):
        if self.binding not in PRIOR_BINDINGS:
            raise ValueError(f"binding must be one of {', '.join(PRIOR_BINDINGS)}, got {self.binding!r}")

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

    def __init__(self, layout: EntryLayout, config: PriorConfig = PriorConfig(positions=64)):
        super().__init__()
        if config.positions is None:
            raise ValueError("the prior's config needs its number of positions (h w)")
        self.layout, self.config = layout, config
        d, c, v = config.width, layout.n_channels, len(layout.values) + 1  # + the escape value
        self.position_channel = nn.Embedding(c, d)  # how an earlier position reads to the transformer
        self.position_value = nn.Embedding(v, d)
        self.start = nn.Parameter(torch.zeros(d))
        self.raster = nn.Embedding(config.positions, d)
        layer = nn.TransformerEncoderLayer(d, config.heads, 4 * d, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        e = config.entry_width
        self.to_entry = nn.Linear(d, e)
        self.entry_channel = nn.Embedding(c, e)  # how earlier entries of the same position read
        self.entry_value = nn.Embedding(v, e)
        self.slot = nn.Embedding(layout.max_entries + 1, e)
        self.previous_channel = nn.Embedding(c + 1, e)  # the previous entry's channel, or none (index 0)
        self.state = nn.Sequential(_Block(e), nn.LayerNorm(e))
        self.channel_head = nn.Linear(e, c + 1) if layout.sparse else None  # + the end mark
        self.chosen_channel = nn.Embedding(c, e)
        self.value_head = nn.Sequential(_Block(e), nn.LayerNorm(e), nn.Linear(e, v))

    # --- the parts, shared by training (all entries at once) and sampling (one entry at a time) -------
    def contexts(self, entries: Entries) -> torch.Tensor:
        """Entries (B, P, L) -> context (B, P, e): position p's depends on positions before p only."""
        b, p, length = entries.channels.shape
        if p > self.config.positions:
            raise ValueError(f"{p} positions; this prior was built for at most {self.config.positions}")
        used = (torch.arange(length, device=entries.lengths.device) < entries.lengths[..., None]).unsqueeze(-1)
        pairs = bind(self.position_channel(entries.channels), self.position_value(entries.values), self.config.binding)
        summary = (pairs * used).sum(2)
        summary = summary / math.sqrt(self.layout.max_entries)
        x = torch.cat([self.start.expand(b, 1, -1), summary[:, :-1]], dim=1) + self.raster.weight[:p]
        mask = nn.Transformer.generate_square_subsequent_mask(p, device=x.device)
        return self.to_entry(self.transformer(x, mask=mask, is_causal=True))

    def states(self, context: torch.Tensor, channels: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Context (..., e) and the entries so far (..., j) -> the state for entry j (..., e)."""
        j = channels.shape[-1]
        before = self._entry_pairs(channels, values).sum(-2) if j else 0
        previous = self.previous_channel(channels[..., -1] + 1) if j else self.previous_channel.weight[0]
        return self.state(context + before + previous + self.slot.weight[j])

    def _entry_pairs(self, channels: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Earlier entries of a position (..., j) -> their embeddings for the within-position head (..., j, e)."""
        return bind(self.entry_channel(channels), self.entry_value(values), self.config.binding)

    def channel_logits(self, state: torch.Tensor) -> torch.Tensor:
        """Sparse layouts: state (..., e) -> log-probabilities (..., C + 1) of the next entry's channel, the
        last being the end mark. Channels at or below the previous one never occur; the network, given the
        previous channel, learns that (no mask, so that training, bits and coding share one distribution)."""
        return self.channel_head(state).log_softmax(-1)

    def value_logits(self, state: torch.Tensor, channel: torch.Tensor) -> torch.Tensor:
        """State (..., e) and the entry's channel (...) -> log-probabilities (..., V + 1) of its value."""
        return self.value_head(state + self.chosen_channel(channel)).log_softmax(-1)

    # --- training ---------------------------------------------------------------------------------
    def forward(self, entries: Entries) -> torch.Tensor:
        """Entries -> each image's negative log-likelihood in bits (B,), escaped values counted without
        their raw bits (:meth:`scvae.prior.LearnedPrior.bits` adds them)."""
        b, p, length = entries.channels.shape
        context = self.contexts(entries)  # (B, P, e)
        used = torch.arange(length, device=context.device) < entries.lengths[..., None]  # (B, P, L)
        embedded = self._entry_pairs(entries.channels, entries.values) * used.unsqueeze(-1)
        slots = length + 1 if self.layout.sparse else length  # sparse: one more state, for the end mark
        before = F.pad(torch.cumsum(embedded, dim=2), (0, 0, 1, 0))[:, :, :slots]  # entries 0..j-1 (B, P, slots, e)
        previous = F.pad(entries.channels + 1, (1, 0))[:, :, :slots]  # 0: no previous entry
        state = self.state(context.unsqueeze(2) + before + self.previous_channel(previous) + self.slot.weight[:slots])
        image = torch.arange(b, device=context.device)[:, None, None]
        nats = torch.zeros(b, device=context.device)
        value_logits = self.value_head(state[:, :, :length][used] + self.chosen_channel(entries.channels[used]))
        value_nats = F.cross_entropy(value_logits, entries.values[used], reduction="none")
        nats = nats.index_add(0, image.expand_as(used)[used], value_nats)
        if self.layout.sparse:  # the listed channels, then the end mark
            real = torch.arange(slots, device=context.device) <= entries.lengths[..., None]
            target = F.pad(entries.channels, (0, 1), value=self.layout.n_channels)
            target = torch.where(torch.arange(slots, device=context.device) == entries.lengths[..., None],
                                 self.layout.n_channels, target)
            channel_nats = F.cross_entropy(self.channel_head(state[real]), target[real], reduction="none")
            nats = nats.index_add(0, image.expand_as(real)[real], channel_nats)
        return nats / math.log(2)
