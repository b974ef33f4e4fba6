"""Coates, Lee & Ng (AISTATS 2011)'s single-layer feature recipe, over any map: pixels or a model's latent.

Patches (p x p windows of a (B, F, H, W) map, every ``stride`` cells) are normalised one by one (mean and
contrast), ZCA-whitened, and encoded against k-means centroids with the "triangle" activation
``f_k = max(0, mean_j(dist_j) - dist_k)``. The encoding is a non-negative sparse code (about half the
centroids are 0 at each position), so it is pooled like the model codes are (:mod:`.features`).

The whitening and the centroids are learned without labels, on the probe's training images only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# The paper's settings: 10 added to each patch's variance (pixel scale 0..255, so 10 / 255^2 in [0, 1] units
# becomes 10 / 127.5^2 in [-1, 1] units), 0.1 added to the whitening's eigenvalues.
PIXEL_CONTRAST_EPS = 10.0 / 127.5 ** 2
ZCA_EPS = 0.1


def extract_patches(maps: torch.Tensor, patch: int, stride: int = 1) -> torch.Tensor:
    """(B, F, H, W) -> (B, L, F * patch * patch): every ``patch`` x ``patch`` window, ``stride`` apart,
    with L = h' * w' positions in raster order."""
    return F.unfold(maps.float(), patch, stride=stride).transpose(1, 2)


def _normalise(patches: torch.Tensor, contrast_eps: float | None) -> torch.Tensor:
    if contrast_eps is None:
        return patches
    centred = patches - patches.mean(-1, keepdim=True)
    return centred / (centred.var(-1, keepdim=True, unbiased=True) + contrast_eps).sqrt()


@dataclass
class PatchKMeans:
    """A fitted encoder: ``mean`` (D,), ``whiten`` (D, D) ZCA matrix, ``centroids`` (K, D) in whitened space.

    ``contrast_eps`` None skips the per-patch normalisation (for a model's latent, whose scale is already
    normalised); patch, stride: the window in cells of the map it was fitted on.
    """

    mean: torch.Tensor
    whiten: torch.Tensor
    centroids: torch.Tensor
    patch: int
    stride: int
    contrast_eps: float | None

    @property
    def n_centroids(self) -> int:
        return self.centroids.shape[0]

    def whitened(self, patches: torch.Tensor) -> torch.Tensor:
        """(..., D) raw patches -> (..., D) normalised and whitened."""
        return (_normalise(patches, self.contrast_eps) - self.mean) @ self.whiten

    def __call__(self, maps: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """(B, F, H, W) -> triangle codes (B, K, h', w') with h' = (H - patch) // stride + 1."""
        out = []
        h = (maps.shape[2] - self.patch) // self.stride + 1
        w = (maps.shape[3] - self.patch) // self.stride + 1
        c_sq = (self.centroids ** 2).sum(1)
        for chunk in maps.split(batch):
            x = self.whitened(extract_patches(chunk, self.patch, self.stride))  # (b, L, D)
            dist = ((x ** 2).sum(-1, keepdim=True) - 2 * x @ self.centroids.T + c_sq).clamp_min(0).sqrt()
            codes = (dist.mean(-1, keepdim=True) - dist).clamp_min(0)  # (b, L, K)
            out.append(codes.transpose(1, 2).reshape(len(chunk), -1, h, w))
        return torch.cat(out)


def fit_patch_kmeans(maps: torch.Tensor, n_centroids: int, patch: int, stride: int = 1, *,
                     n_patches: int = 100_000, contrast_eps: float | None = PIXEL_CONTRAST_EPS,
                     seed: int = 0) -> PatchKMeans:
    """Learn the whitening and ``n_centroids`` centroids from up to ``n_patches`` random patches of
    ``maps`` (B, F, H, W) with scikit-learn's k-means (k-means++ initialisation)."""
    from sklearn.cluster import MiniBatchKMeans

    generator = torch.Generator().manual_seed(seed)
    patches = extract_patches(maps, patch, stride)  # (B, L, D)
    flat = patches.reshape(-1, patches.shape[-1])
    take = torch.randperm(len(flat), generator=generator)[:n_patches]
    sample = _normalise(flat[take].double(), contrast_eps)
    mean = sample.mean(0)
    cov = torch.cov((sample - mean).T)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    whiten = eigenvectors @ torch.diag((eigenvalues.clamp_min(0) + ZCA_EPS).rsqrt()) @ eigenvectors.T
    whitened = ((sample - mean) @ whiten).float().numpy()
    n_clusters = min(n_centroids, len(whitened))  # a tiny training set: fewer centroids
    kmeans = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, batch_size=4096, n_init=3,
                             max_iter=100).fit(whitened)
    return PatchKMeans(mean=mean.float(), whiten=whiten.float(),
                       centroids=torch.from_numpy(np.asarray(kmeans.cluster_centers_, dtype=np.float32)),
                       patch=patch, stride=stride, contrast_eps=contrast_eps)
