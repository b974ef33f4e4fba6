"""Uniform scalar quantisation of sparse codes, with a straight-through gradient for training.

A sparse code is sent as its support plus its non-zero values. Rounding a non-zero value to zero would
change the support, so a non-zero keeps at least one step (with its sign): the support survives
quantisation exactly, and only the values are coarsened. Training through this quantiser (the straight-
through estimator of FSQ and VQ-VAE: the forward pass rounds, the backward pass is the identity) lets the
decoder learn to read coarse values, which is what the rate of the values depends on.
"""
from __future__ import annotations

import torch


def quantization_indices(codes: torch.Tensor, step: float, keep_support: bool = True) -> torch.Tensor:
    """The integers n with ``codes ~ n * step`` (same shape and dtype as ``codes``), rounded to nearest. With
    ``keep_support`` a non-zero entry never becomes 0 (it keeps +-1); zeros stay 0."""
    q = torch.round(codes / step)
    if keep_support:
        q = torch.where(codes != 0, torch.sign(codes) * q.abs().clamp_min(1), q)
    return q


def quantize_codes(codes: torch.Tensor, step: float, keep_support: bool = True) -> torch.Tensor:
    """Round ``codes`` (any shape) to multiples of ``step`` (see :func:`quantization_indices`). The values are
    exactly ``n * step``; the gradient is straight-through: d out / d codes is the identity."""
    grid = quantization_indices(codes, step, keep_support) * step
    return grid + (codes - codes.detach())
