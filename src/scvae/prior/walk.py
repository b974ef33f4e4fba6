"""The one autoregressive traversal the sampler and the coder share: position by position, entry by entry."""
from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from .layout import Entries
from .network import PriorNetwork

# choose(log_probs (n, V), kind "channel" or "value", position p, entry j, previous channels (n,) or None) -> (n,)
Choose = Callable[[torch.Tensor, str, int, int, "torch.Tensor | None"], torch.Tensor]


@torch.no_grad()
def walk_entries(net: PriorNetwork, n: int, grid: tuple[int, int], choose: Choose, progress: bool = False) -> Entries:
    """Build ``n`` images' entries on ``grid`` (h, w) in the prior's order: for each position, the network's
    distribution of each next channel (sparse layouts) and value is handed to ``choose``, which picks (draws,
    encodes or decodes) the symbols. An image whose position has ended (its end mark) ignores later picks
    there. A picked atom out of order or over the cap (a damaged file) is a ValueError."""
    net.eval()
    layout, (h, w) = net.layout, grid
    length, end = layout.max_entries, layout.n_channels
    entries = Entries(torch.zeros(n, h * w, length, dtype=torch.long), torch.zeros(n, h * w, length, dtype=torch.long),
                      torch.zeros(n, h * w, dtype=torch.long), grid)
    for p in tqdm(range(h * w), desc="sampling codes", unit="position", disable=not progress, leave=False):
        context = net.contexts(entries)[:, p]  # (n, e): reads positions before p only
        done = torch.zeros(n, dtype=torch.bool)
        for j in range(length + 1 if layout.sparse else length):
            state = net.states(context, entries.channels[:, p, :j], entries.values[:, p, :j])
            previous = entries.channels[:, p, j - 1] if j else None
            if layout.sparse:
                channel = choose(net.channel_logits(state), "channel", p, j, previous)
                done |= channel == end
                if bool(done.all()):
                    break
                live = ~done
                if j == length or (previous is not None and bool((channel[live] <= previous[live]).any())):
                    raise ValueError(f"position {p}: an atom out of order or over the cap of {length}")
                channel = torch.where(done, 0, channel)
            else:
                channel = torch.full((n,), j, dtype=torch.long)
            value = choose(net.value_logits(state, channel), "value", p, j, previous)
            keep = ~done
            entries.channels[:, p, j] = torch.where(keep, channel, 0)
            entries.values[:, p, j] = torch.where(keep, value, 0)
            entries.lengths[:, p] += keep.long()
    return entries
