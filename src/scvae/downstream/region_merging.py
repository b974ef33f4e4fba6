"""Segmentation as a hierarchy: superpixels merged greedily by colour, texture and boundary strength.

The classical bottom-up segmenters that work on natural images group pixels by colour and by local
texture statistics and cut along strong boundaries. Here:

1. the image is over-segmented into superpixels (Felzenszwalb-Huttenlocher at a small scale);
2. each region carries its mean Lab colour and, when a feature grid is given, the histogram of its
   texture features pooled over the region (for SC-VAE: |a| per atom, which atoms fire and how strongly:
   a texton histogram), each normalised to sum 1;
3. the two adjacent regions with the smallest merging cost are merged, again and again, down to one
   region. The cost is the colour distance plus ``texture_weight`` x the chi-squared distance of the
   histograms plus ``boundary_weight`` x the mean gradient along their shared boundary, times a size
   factor that merges small regions first.

The merge order is a hierarchy: :meth:`Hierarchy.cut` gives any number of regions from one run, as the
UCM of gPb-owt-ucm does.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from .segmentation import FeatureGrid, upsample_labels


DEFAULT_REGIONS = 6  # merge-codes' covering-best cut at ODS on BSDS500 val (docs/results/bsds_val100.json)


@dataclass
class MergeOptions:
    """scale: Felzenszwalb's scale for the superpixels; texture_weight, boundary_weight: the terms of the
    merging cost (colour has weight 1); size_power: the cost is multiplied by (harmonic mean of the two
    sizes / mean region size) ** size_power."""

    scale: float = 60.0
    texture_weight: float = 1.0
    boundary_weight: float = 1.0
    size_power: float = 0.5


@dataclass
class Hierarchy:
    """superpixels (H, W): labels 0..n-1; merges: (a, b) in the order they happened, each merged into a."""

    superpixels: np.ndarray
    merges: list[tuple[int, int]]

    def cut(self, n_regions: int) -> np.ndarray:
        """Labels (H, W) with (at most) ``n_regions`` regions: the hierarchy before its last merges."""
        n = int(self.superpixels.max()) + 1
        parent = np.arange(n)
        for a, b in self.merges[:max(0, n - n_regions)]:
            parent[parent == b] = a
        return parent[self.superpixels]


def segment_regions(image: np.ndarray, texture: FeatureGrid | None = None, n_regions: int = DEFAULT_REGIONS,
                    options: MergeOptions | None = None) -> np.ndarray:
    """Labels (H, W) of ``image`` (uint8 (H, W, 3)) in ``n_regions`` regions: the merge hierarchy
    (:func:`build_hierarchy`, with ``texture``'s histograms when given) cut at that many regions."""
    return build_hierarchy(image, texture, options).cut(n_regions)


def _adjacency(labels: np.ndarray, gradient: np.ndarray) -> dict[tuple[int, int], list[float]]:
    """(a, b) with a < b for every pair of 4-adjacent regions -> [sum of the gradient along their shared
    boundary, its length in pixel pairs]."""
    edges: dict[tuple[int, int], list[float]] = {}
    for la, lb, ga, gb in ((labels[:, :-1], labels[:, 1:], gradient[:, :-1], gradient[:, 1:]),
                           (labels[:-1, :], labels[1:, :], gradient[:-1, :], gradient[1:, :])):
        cross = la != lb
        a, b = np.minimum(la[cross], lb[cross]), np.maximum(la[cross], lb[cross])
        strength = np.maximum(ga[cross], gb[cross])
        keys = a.astype(np.int64) * (labels.max() + 1) + b
        order = np.argsort(keys)
        unique, start = np.unique(keys[order], return_index=True)
        sums = np.add.reduceat(strength[order], start) if len(order) else np.zeros(0)
        counts = np.diff(np.append(start, len(order)))
        for key, total, count in zip(unique, sums, counts):
            pair = divmod(int(key), int(labels.max()) + 1)
            entry = edges.setdefault(pair, [0.0, 0.0])
            entry[0] += float(total)
            entry[1] += float(count)
    return edges


def build_hierarchy(image: np.ndarray, texture: FeatureGrid | None = None,
                    options: MergeOptions | None = None) -> Hierarchy:
    """The merge hierarchy of ``image`` (uint8 (H, W, 3)); ``texture``: per-position features (e.g. SC-VAE
    codes) whose absolute values are pooled into each region's histogram."""
    from skimage import color, filters, segmentation

    options = options or MergeOptions()
    image = image[:, :, :3] if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    superpixels = segmentation.felzenszwalb(image, scale=options.scale, sigma=0.8, min_size=int(options.scale // 3))
    n = int(superpixels.max()) + 1
    lab = color.rgb2lab(image).reshape(-1, 3) / 100.0
    gradient = filters.sobel(color.rgb2gray(image))
    gradient = gradient / (np.percentile(gradient, 99) + 1e-8)
    flat = superpixels.ravel()
    size = np.bincount(flat, minlength=n).astype(np.float64)
    colour = np.stack([np.bincount(flat, lab[:, c], n) for c in range(3)], 1) / size[:, None]
    hist = None
    if texture is not None:
        cells = np.abs(texture.values).reshape(-1, texture.values.shape[-1])
        cell_of_pixel = upsample_labels(np.arange(len(cells)).reshape(texture.values.shape[:2]), texture,
                                        image.shape[:2]).ravel()
        from scipy.sparse import coo_matrix

        overlap = coo_matrix((np.ones(flat.size), (flat, cell_of_pixel)), shape=(n, len(cells))).tocsr()
        hist = np.asarray(overlap @ cells)  # (n, F): each region's features summed over its pixels
        hist /= hist.sum(1, keepdims=True) + 1e-12
    edges = _adjacency(superpixels, gradient)
    return Hierarchy(superpixels, _merge(n, size, colour, hist, edges, options))


def _merge(n: int, size: np.ndarray, colour: np.ndarray, hist: np.ndarray | None,
           edges: dict[tuple[int, int], list[float]], options: MergeOptions) -> list[tuple[int, int]]:
    """Greedy merging with a lazy heap: a popped pair is used only if both regions are still alive and the
    pair's cost was computed after their last change."""
    alive, version = np.ones(n, bool), np.zeros(n, np.int64)
    neighbours: dict[int, dict[int, list[float]]] = {i: {} for i in range(n)}
    for (a, b), boundary in edges.items():
        neighbours[a][b] = boundary
        neighbours[b][a] = boundary
    mean_size = size.sum() / n

    def cost(a: int, b: int) -> float:
        total = float(np.linalg.norm(colour[a] - colour[b]))
        if hist is not None:
            p, q = hist[a], hist[b]
            total += options.texture_weight * 0.5 * float(((p - q) ** 2 / (p + q + 1e-12)).sum())
        length_sum, length = neighbours[a][b]
        total += options.boundary_weight * length_sum / max(length, 1.0)
        harmonic = 2 * size[a] * size[b] / (size[a] + size[b])
        return total * (harmonic / mean_size) ** options.size_power

    heap = [(cost(a, b), a, b, 0, 0) for (a, b) in edges]
    heapq.heapify(heap)
    merges = []
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or va != version[a] or vb != version[b]:
            continue
        merges.append((a, b))
        total = size[a] + size[b]
        colour[a] = (colour[a] * size[a] + colour[b] * size[b]) / total
        if hist is not None:
            hist[a] = (hist[a] * size[a] + hist[b] * size[b]) / total
        size[a], alive[b] = total, False
        version[a] += 1
        for c, boundary in neighbours.pop(b).items():
            del neighbours[c][b]
            if c == a:
                continue
            merged = neighbours[a].setdefault(c, [0.0, 0.0])
            merged[0] += boundary[0]
            merged[1] += boundary[1]
            neighbours[c][a] = merged
        for c in neighbours[a]:
            heapq.heappush(heap, (cost(a, c), a, c, int(version[a]), int(version[c])))
    return merges
