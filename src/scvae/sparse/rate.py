"""A differentiable rate for sparse codes: the bits of their support and of their quantised values.

A sparse code is sent as its support (which atoms are active at a position) and the active atoms' values,
each rounded to a multiple of a step. :class:`SparseCodeRate` is the training-time model of those bits, the
sparse analogue of the factorised prior of learned compression (Balle et al. 2017, CompressAI's
``EntropyBottleneck``):

- support: one Bernoulli per atom whose ``p_k`` is the atom's running activity frequency over the training
  batches (an exponential moving average: the counting estimate a real coder fits, kept up to date at every
  step rather than learned by gradient, which at a learning rate of 1e-3 lagged the true frequencies by a
  factor of four after 500 steps); an entry costs ``-log2 p_k`` when active and ``-log2 (1 - p_k)`` when not;
- values: one logistic per atom over ``a / step``, integrated over each unit bin (:func:`logistic_bin_bits`);
  in training the value carries uniform noise U(-1/2, 1/2) instead of rounding (the proxy of rounding).

Whether an atom is active is a hard decision; the gradient that lets the encoder switch atoms off comes from
a soft activity ``sigmoid((|u| - t) / (temperature t))`` of the last LISTA preactivation u against its
threshold t, used straight-through: the forward pass counts the true support. A position that needs few
atoms then pays for few, which is how the code spends its bits where the image needs them.
"""
from __future__ import annotations

import torch
from torch import nn

from ..collective import all_reduce_sum


def logistic_bin_bits(values: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log2 of a logistic's mass on [v - 1/2, v + 1/2] for every entry of ``values`` (same shape).

    ``loc`` and ``log_scale`` broadcast against ``values`` (one per channel, for a factorised prior). The mass is
    floored at 1e-9 (about 30 bits), so an outlier cannot send the loss to infinity."""
    scale = log_scale.exp()
    mass = torch.sigmoid((values + 0.5 - loc) / scale) - torch.sigmoid((values - 0.5 - loc) / scale)
    return -torch.log2(mass.clamp_min(1e-9))


def bernoulli_bits(active: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Bits of a (soft) support ``active`` in [0, 1] under Bernoulli(p), per entry (same shape)."""
    return -(active * torch.log2(p) + (1 - active) * torch.log2(1 - p))


class SparseCodeRate(nn.Module):
    """The factorised entropy model of sparse codes (see the module doc): rows (N, K) -> bits per row (N,).

    Args:
        n_atoms: K.
        temperature: the width of the soft activity, relative to the threshold.
        initial_density: the support probability every atom starts with.
        decay: the decay of the activity frequencies' moving average.
    """

    PROBABILITY_FLOOR = 1e-4  # an atom never seen still costs a finite ~13 bits to switch on

    def __init__(self, n_atoms: int, temperature: float = 0.5, initial_density: float = 0.1, decay: float = 0.99):
        super().__init__()
        if not temperature > 0 or not 0 < initial_density < 1 or not 0 < decay < 1:
            raise ValueError(f"need temperature > 0, 0 < initial_density < 1 and 0 < decay < 1, got {temperature}, "
                             f"{initial_density}, {decay}")
        self.temperature, self.decay = float(temperature), float(decay)
        self.register_buffer("support_frequency", torch.full((n_atoms,), float(initial_density)))
        self.value_loc = nn.Parameter(torch.zeros(n_atoms))
        self.value_log_scale = nn.Parameter(torch.zeros(n_atoms))

    def soft_support(self, codes: torch.Tensor, preactivation: torch.Tensor | None,
                     threshold: torch.Tensor | None) -> torch.Tensor:
        """(N, K): the true support (codes != 0) in the forward pass; the gradient of the soft activity of
        ``preactivation`` against ``threshold`` (K,) in the backward pass (none without them)."""
        hard = (codes != 0).float()
        if preactivation is None or threshold is None or not preactivation.requires_grad:
            return hard
        t = threshold.detach().float().clamp_min(1e-6)
        soft = torch.sigmoid((preactivation.float().abs() - t) / (self.temperature * t))
        return hard + (soft - soft.detach())

    def support_probability(self) -> torch.Tensor:
        """(K,) p_k, the activity frequencies kept away from 0 and 1."""
        return self.support_frequency.clamp(self.PROBABILITY_FLOOR, 1 - self.PROBABILITY_FLOOR)

    @torch.no_grad()
    def update_frequency(self, codes: torch.Tensor) -> None:
        """Fold one training batch's support (N, K) into the frequencies (over the global batch under DDP)."""
        counts = all_reduce_sum((codes != 0).sum(0).float())
        rows = all_reduce_sum(torch.tensor(float(codes.shape[0]), device=codes.device))
        self.support_frequency.mul_(self.decay).add_(counts / rows.clamp_min(1), alpha=1 - self.decay)

    def forward(self, codes: torch.Tensor, step: torch.Tensor | float, preactivation: torch.Tensor | None = None,
                threshold: torch.Tensor | None = None) -> torch.Tensor:
        """Bits (N,) of rows of codes (N, K) with their values quantised by ``step`` (noisy in training, rounded
        in eval mode); a value that rounds to 0 is out of the support. In training mode the batch's support is
        then folded into the frequencies."""
        values = codes.float() / step
        codes = codes * (torch.round(values) != 0)  # what the coder sends: a value that rounds to 0 is not active
        active = self.soft_support(codes, preactivation, threshold)
        values = values + torch.rand_like(values) - 0.5 if self.training else torch.round(values)
        value_bits = logistic_bin_bits(values, self.value_loc, self.value_log_scale)
        support_bits = bernoulli_bits(active, self.support_probability())
        if self.training:
            self.update_frequency(codes.detach())
        return (support_bits + active * value_bits).sum(-1)
