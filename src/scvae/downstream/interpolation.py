"""Interpolation between two images in a model's code space, and a smoothness measure for the result.

Two paths, for every model of the family:

- ``space="codes"``: a_t = (1 - t) a_A + t a_B in the code space (:meth:`code_vectors`), each step mapped
  to the nearest code the model can produce (:meth:`nearest_codes`). For SC-VAE that keeps every frame
  at the model's own sparsity (at most ``max_active`` atoms per position); for a VQ-VAE it snaps each
  position to the nearest codebook entry.
- ``space="latent"``: linear in the decoder's input, D a for SC-VAE. Because D is linear, this is the
  same as interpolating the codes *without* the sparsity projection: frames in between use the union of
  both supports (up to twice the active atoms).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ScvaeError
from ..models import AutoencoderModel

SPACES = ("codes", "latent")


@dataclass
class Interpolation:
    """images (steps, C, H, W) in [-1, 1] from A (first) to B (last); weights (steps,) the t of each frame;
    distance_to_start (steps,) the RMS pixel distance of each frame to the first."""

    images: torch.Tensor
    weights: torch.Tensor
    distance_to_start: torch.Tensor

    def monotonicity_violation(self) -> float:
        """The largest drop of ``distance_to_start`` from one frame to a later one, as a fraction of its
        final value: 0 for a path that only moves away from A, 1 for one that returns all the way."""
        return monotonicity_violation(self.distance_to_start)


def monotonicity_violation(distances: torch.Tensor) -> float:
    """max over i < j of (d_i - d_j) / d_last, clamped at 0 (see :meth:`Interpolation.monotonicity_violation`)."""
    d = distances.double()
    running_max = torch.cummax(d, dim=0).values
    drop = float((running_max - d).max())
    return max(0.0, drop) / max(float(d[-1]), 1e-12)


@torch.no_grad()
def interpolate(model: AutoencoderModel, image_a: torch.Tensor, image_b: torch.Tensor, steps: int = 8,
                space: str = "codes") -> Interpolation:
    """Decode ``steps`` frames between images A and B, each (C, H, W) or (1, C, H, W) in [-1, 1] of one size."""
    if steps < 2:
        raise ScvaeError(f"steps must be >= 2 (the two end points), got {steps}")
    if space not in SPACES:
        raise ScvaeError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    a, b = (img if img.dim() == 4 else img[None] for img in (image_a, image_b))
    if a.shape != b.shape:
        raise ScvaeError(f"both images must have the same shape, got {tuple(a.shape[1:])} and {tuple(b.shape[1:])}")
    model.eval()
    codes = model.encode(torch.cat([a, b])).codes
    t = torch.linspace(0, 1, steps)
    if space == "codes":
        vectors = model.code_vectors(codes)
        path = torch.lerp(vectors[:1], vectors[1:], t.view(-1, 1, 1, 1).to(vectors))
        frames = model.decode(model.nearest_codes(path)).sample
    else:
        latent = model.synthesize(codes).float()
        path = torch.lerp(latent[:1], latent[1:], t.view(-1, 1, 1, 1).to(latent))
        frames = model.decode_latent(path)
    frames = frames.float().clamp(-1, 1)
    distance = (frames - frames[:1]).square().flatten(1).mean(1).sqrt()
    return Interpolation(images=frames, weights=t, distance_to_start=distance)
