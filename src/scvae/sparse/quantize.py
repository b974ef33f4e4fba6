"""Uniform scalar quantisation of sparse codes, with a straight-through gradient for training.

A sparse code is sent as its support plus its non-zero values. Rounding a non-zero value to zero would
change the support, so a non-zero keeps at least one step (with its sign): the support survives
quantisation exactly, and only the values are coarsened. Training through this quantiser (the straight-
through estimator of FSQ and VQ-VAE: the forward pass rounds, the backward pass is the identity) lets the
decoder learn to read coarse values, which is what the rate of the values depends on.
"""
from __future__ import annotations

import torch


def quantize_codes(codes: torch.Tensor, step: float, keep_support: bool = True) -> torch.Tensor:
    """Round ``codes`` (any shape) to multiples of ``step``. With ``keep_support`` a non-zero entry never
    rounds to zero; zeros stay exactly zero. The result carries a straight-through gradient: d out / d codes
    is the identity (zero where the code is zero only because the input was zero there)."""
    q = torch.round(codes / step)
    if keep_support:
        q = torch.where(codes != 0, torch.sign(codes) * q.abs().clamp_min(1), q)
    return codes + (q * step - codes).detach()
