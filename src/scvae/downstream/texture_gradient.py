"""A texture gradient from a code map: at each position, how much the code histograms of the two halves of a
disc around it differ, the strongest over the disc's orientations.

This is the texton gradient of gPb (Martin, Fowlkes & Malik, TPAMI 2004; Arbelaez et al., TPAMI 2011) with a
model's atoms in place of textons: a disc of radius r cells is cut in two along a line at angle theta, each
half pools |a| per atom into a histogram (summing to 1), and the gradient is their chi-squared distance
0.5 * sum_k (p_k - q_k)^2 / (p_k + q_k), in [0, 1]. It is high where one texture meets another even when
their mean colours agree (grass against foliage), which the colour gradient misses.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .segmentation import FeatureGrid

DEFAULT_RADII = (2, 4)  # cells; at the region method's 160 px codes, 8 and 16 working pixels
N_ORIENTATIONS = 8


def half_disc_kernels(radius: int, n_orientations: int = N_ORIENTATIONS) -> np.ndarray:
    """(n_orientations, 2, 2r + 1, 2r + 1) float32: for each angle theta = i pi / n, the indicator of the
    disc's cells on either side of the line through its centre at theta (cells on the line belong to
    neither); the two halves are mirror images, so their histograms have the same weight."""
    if radius < 1 or n_orientations < 1:
        raise ValueError(f"radius and n_orientations must be >= 1, got {radius}, {n_orientations}")
    offsets = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    inside = dy ** 2 + dx ** 2 <= radius ** 2 + 0.5
    kernels = np.zeros((n_orientations, 2, 2 * radius + 1, 2 * radius + 1), np.float32)
    for i in range(n_orientations):
        theta = np.pi * i / n_orientations
        side = -np.sin(theta) * dx + np.cos(theta) * dy  # signed distance to the line at angle theta
        kernels[i, 0] = inside & (side > 1e-6)
        kernels[i, 1] = inside & (side < -1e-6)
    return kernels


@torch.no_grad()
def texture_gradient(values: np.ndarray, radius: int = DEFAULT_RADII[0],
                     n_orientations: int = N_ORIENTATIONS) -> np.ndarray:
    """(h, w) float32 in [0, 1]: the oriented half-disc chi-squared distance of the histograms of |values|
    ((h, w, F), e.g. SC-VAE's sparse codes), the maximum over ``n_orientations`` angles. The map is
    edge-padded, so a border does not read as a texture edge."""
    h, w, n_features = values.shape
    kernels = torch.from_numpy(half_disc_kernels(radius, n_orientations).reshape(-1, 1, 2 * radius + 1, 2 * radius + 1))
    mass = torch.from_numpy(np.abs(values).astype(np.float32)).permute(2, 0, 1)[:, None]  # (F, 1, h, w)
    mass = F.pad(mass, (radius,) * 4, mode="replicate")
    halves = F.conv2d(mass, kernels).reshape(n_features, n_orientations, 2, h, w)
    hist = halves / halves.sum(0, keepdim=True).clamp_min(1e-12)  # each half's histogram over the F features
    p, q = hist[:, :, 0], hist[:, :, 1]
    chi2 = 0.5 * ((p - q) ** 2 / (p + q).clamp_min(1e-12)).sum(0)  # (n_orientations, h, w)
    return chi2.amax(0).numpy()


def texture_gradient_image(grid: FeatureGrid, size: tuple[int, int], radii: tuple[int, ...] = DEFAULT_RADII,
                           n_orientations: int = N_ORIENTATIONS) -> np.ndarray:
    """(H, W) float32: the mean over ``radii`` of :func:`texture_gradient` of ``grid``'s code map, resized
    bilinearly from the cells' centres to the image (``size``: (H, W) of the original image)."""
    cells = np.mean([texture_gradient(grid.values, r, n_orientations) for r in radii], axis=0)
    h, w = cells.shape
    working = Image.fromarray(cells.astype(np.float32)).resize((w * grid.cell, h * grid.cell),
                                                                          Image.Resampling.BILINEAR)
    working = working.crop((0, 0, grid.shape[1], grid.shape[0]))
    return np.asarray(working.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32)
