"""The models' output dataclasses (diffusers-style): named fields, and a plain tuple with ``return_dict=False``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch


class ModelOutput:
    """Mixin for output dataclasses: ``to_tuple()`` gives the fields in order, and ``out[0]`` indexes them,
    so code written for tuples keeps working."""

    def to_tuple(self) -> tuple:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def __getitem__(self, index: int):
        return self.to_tuple()[index]


@dataclass
class AutoencoderOutput(ModelOutput):
    """Returned by every model's ``forward``.

    reconstruction (B, C, H, W); latent (B, d, h, w): the encoder output the bottleneck sees;
    loss: the scalar training loss; losses: its named terms (floats for logging, tensors detached).
    """

    reconstruction: torch.Tensor
    latent: torch.Tensor
    loss: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class EncoderOutput(ModelOutput):
    """Returned by ``encode``. codes: what ``decode`` takes, one per latent position: SC-VAE's sparse codes
    (B, K, h, w), VQ-VAE / FSQ code indices (B, h, w), the AE's latent or the VAE's posterior means (B, d, h, w)."""

    codes: torch.Tensor


@dataclass
class DecoderOutput(ModelOutput):
    """Returned by ``decode``. sample: images (B, C, h*f, w*f), unbounded (clamp to [-1, 1] for display)."""

    sample: torch.Tensor
