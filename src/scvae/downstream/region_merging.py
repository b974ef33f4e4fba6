"""Segmentation as a hierarchy: superpixels merged greedily by colour, texture and boundary strength.

The classical bottom-up segmenters that work on natural images group pixels by colour and by local
texture statistics and cut along strong boundaries. Here:

1. the image is over-segmented into superpixels (Felzenszwalb-Huttenlocher at a small scale);
2. each region carries its mean Lab colour and, when a feature grid is given, the histogram of its
   texture features pooled over the region (for SC-VAE: |a| per atom, which atoms fire and how strongly:
   a texton histogram), normalised to sum 1;
3. the two adjacent regions with the smallest merging cost are merged, again and again, down to one
   region. The cost is the colour distance, plus ``texture_weight`` x the chi distance (square root of the
   chi-squared distance) of the histograms, plus ``boundary_weight`` x the mean gradient along their shared
   boundary, all times a size factor that merges small regions first.

The gradient is taken on the Lab image blurred at ``gradient_sigma`` = 3 pixels: at that scale the edges
inside a texture (grass blades, bark) fade and the boundaries between regions remain. With the size factor
against the image area, this moved ODS covering on 40 BSDS500 train images from 0.50 to 0.57
(docs/design.md, tenth round).

The merge order is a hierarchy, and the merge costs, made monotone, are its levels, as in the UCM of
gPb-owt-ucm: :meth:`Hierarchy.cut_at` thresholds the levels, so the number of regions adapts to each image,
and :meth:`Hierarchy.cut` gives a fixed number of regions instead.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..data.images import resize_shorter
from ..presets import REGION_DEFAULTS, TEXTON_DEFAULTS
from .segmentation import CodeFeatures, FeatureGrid, KMeansCodes, resize_labels, upsample_labels


DEFAULT_LEVEL = REGION_DEFAULTS["level"]
CODE_SIZE = REGION_DEFAULTS["code_size"]


@dataclass
class MergeOptions:
    """scale: Felzenszwalb's scale for the superpixels; gradient_sigma: the blur (pixels) of the Lab image
    before its Sobel gradient; texture_weight, boundary_weight: the terms of the merging cost (colour has
    weight 1); size_power: the cost is multiplied by (harmonic mean of the two sizes / image area) **
    size_power; work_size: build the hierarchy with the image's shorter side resized down to this many pixels
    (None: at its own size; by default the size the codes are computed at), and the superpixels resized back
    to the image's size. The defaults were chosen on BSDS500 train images."""

    scale: float = 60.0
    gradient_sigma: float = 3.0
    texture_weight: float = 1.0
    boundary_weight: float = 2.0
    size_power: float = 0.15
    texture_gradient_weight: float = 0.0
    work_size: int | None = CODE_SIZE


@dataclass
class Hierarchy:
    """superpixels (H, W): labels 0..n-1; merges: (a, b) in the order they happened, each merged into a;
    levels: (n - 1,) non-decreasing, the running maximum of the merge costs."""

    superpixels: np.ndarray
    merges: list[tuple[int, int]]
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_superpixels(self) -> int:
        return int(self.superpixels.max()) + 1

    def cut(self, n_regions: int) -> np.ndarray:
        """Labels (H, W) with (at most) ``n_regions`` regions: the hierarchy before its last merges."""
        parent = np.arange(self.n_superpixels)
        for a, b in self.merges[:max(0, self.n_superpixels - n_regions)]:
            parent[parent == b] = a
        return parent[self.superpixels]

    def cut_at(self, level: float) -> np.ndarray:
        """Labels (H, W) after every merge whose level is at most ``level``."""
        done = int(np.searchsorted(self.levels, level, side="right"))
        return self.cut(max(1, self.n_superpixels - done))


def atom_histograms(model, size: int | None = CODE_SIZE) -> CodeFeatures:
    """The texture the region method merges with: ``model``'s codes (SC-VAE: |a| per atom) at every position of
    the image encoded with its shorter side at ``size``, with the region method's margin."""
    return CodeFeatures(model, size, space="codes", margin=REGION_DEFAULTS["margin"])


def textons(model, images: list[np.ndarray], n_textons: int = TEXTON_DEFAULTS["n_textons"], space: str = "latent",
            size: int | None = CODE_SIZE) -> KMeansCodes:
    """gPb's texture cue on a model: every cell of ``model``'s ``space`` (``latent``, or ``decoder`` for the
    codes read through the dictionary, D a) counted once, for its nearest of ``n_textons`` k-means centroids
    fitted on ``images`` (uint8 (H, W, 3) photos, no labels). Returns the fitted texture: photo ->
    one-hot grid (h, w, n_textons). Merge with ``MergeOptions(texture_weight=TEXTON_DEFAULTS["texture_weight"])``
    and cut at ``TEXTON_DEFAULTS["level"]``, the settings chosen with them on BSDS500 train photos."""
    cells = CodeFeatures(model, size, space=space, margin=REGION_DEFAULTS["margin"])
    return KMeansCodes(cells, n_textons, hard=True, name=f"{n_textons} textons of the {space}").fit(images)


def segment_regions(image: np.ndarray, texture: FeatureGrid | None = None, n_regions: int | None = None,
                    level: float = DEFAULT_LEVEL, options: MergeOptions | None = None) -> np.ndarray:
    """Labels (H, W) of ``image`` (uint8 (H, W, 3)): the merge hierarchy (:func:`build_hierarchy`, with
    ``texture``'s histograms when given) cut at ``n_regions`` regions when given, else at ``level``."""
    hierarchy = build_hierarchy(image, texture, options)
    return hierarchy.cut(n_regions) if n_regions is not None else hierarchy.cut_at(level)


class RegionMerging:
    """The region method as a method of segment-eval: ``segment(image, k)`` cuts the hierarchy built with
    ``texture``'s atom histograms (e.g. ``atom_histograms(model)``) at k regions."""

    def __init__(self, texture: Callable[[np.ndarray], FeatureGrid], name: str | None = None,
                 options: MergeOptions | None = None):
        self.texture, self.options = texture, options
        self.name = name or f"region merging ({getattr(texture, 'name', 'texture')})"

    def segment(self, image: np.ndarray, k: int) -> np.ndarray:
        """Labels (H, W) of ``image`` (uint8 (H, W, 3)) in at most ``k`` regions."""
        return build_hierarchy(image, self.texture(image), self.options).cut(k)


def _adjacency(labels: np.ndarray, gradient: np.ndarray) -> dict[tuple[int, int], list[float]]:
    """(a, b) with a < b for every pair of 4-adjacent regions -> [sum of the gradient along their shared
    boundary, its length in pixel pairs]."""
    firsts, seconds, strengths = [], [], []
    for la, lb, ga, gb in ((labels[:, :-1], labels[:, 1:], gradient[:, :-1], gradient[:, 1:]),
                           (labels[:-1, :], labels[1:, :], gradient[:-1, :], gradient[1:, :])):
        cross = la != lb
        firsts.append(np.minimum(la[cross], lb[cross]))
        seconds.append(np.maximum(la[cross], lb[cross]))
        strengths.append(np.maximum(ga[cross], gb[cross]))
    n = int(labels.max()) + 1
    keys = np.concatenate(firsts).astype(np.int64) * n + np.concatenate(seconds)
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, np.concatenate(strengths), len(unique))
    counts = np.bincount(inverse, minlength=len(unique)).astype(np.float64)
    return {(int(key // n), int(key % n)): [float(total), float(count)]
            for key, total, count in zip(unique, sums, counts)}


def build_hierarchy(image: np.ndarray, texture: FeatureGrid | None = None,
                    options: MergeOptions | None = None) -> Hierarchy:
    """The merge hierarchy of ``image`` (uint8 (H, W, 3)); ``texture``: per-position features (e.g. SC-VAE
    codes) whose absolute values are pooled into each region's histogram."""
    from skimage import color, filters, segmentation

    options = options or MergeOptions()
    image = image[:, :, :3] if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    full_shape = image.shape[:2]
    shrink = 1.0
    if options.work_size is not None and min(full_shape) > options.work_size:
        image = resize_shorter(image, options.work_size)
        shrink = min(full_shape) / options.work_size
    # The scale stays: neighbouring pixels differ more in the smaller image, which offsets its smaller regions
    # (about as many superpixels at 160 px as at 481 x 321). The minimum size is an area, the blurs lengths.
    min_size = max(1, int(options.scale // 3 / shrink ** 2))
    superpixels = segmentation.felzenszwalb(image, scale=options.scale, sigma=0.8 / shrink, min_size=min_size)
    n = int(superpixels.max()) + 1
    lab = color.rgb2lab(image)
    blurred = [filters.gaussian(lab[..., c], options.gradient_sigma / shrink) for c in range(3)]
    gradient = np.sqrt(sum(filters.sobel(channel) ** 2 for channel in blurred))
    gradient = gradient / (np.percentile(gradient, 99) + 1e-8)
    if texture is not None and options.texture_gradient_weight > 0:
        from .texture_gradient import texture_gradient_image

        gradient = gradient + options.texture_gradient_weight * texture_gradient_image(texture, image.shape[:2])
    lab = lab.reshape(-1, 3) / 100.0
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
    merges, costs = _merge(n, size, colour, hist, _adjacency(superpixels, gradient), options)
    superpixels = resize_labels(superpixels, full_shape)
    return Hierarchy(superpixels, merges, np.maximum.accumulate(np.asarray(costs, np.float64)))


def _merge(n: int, size: np.ndarray, colour: np.ndarray, hist: np.ndarray | None,
           edges: dict[tuple[int, int], list[float]], options: MergeOptions) -> tuple[list[tuple[int, int]], list[float]]:
    """The merges and their costs. Greedy merging with a lazy heap: a popped pair is used only if both regions
    are still alive and the pair's cost was computed after their last change. The costs of one region
    against all its neighbours are computed in one vectorised call."""
    alive, version = np.ones(n, bool), np.zeros(n, np.int64)
    neighbours: dict[int, dict[int, list[float]]] = {i: {} for i in range(n)}
    for (a, b), boundary in edges.items():
        neighbours[a][b] = boundary
        neighbours[b][a] = boundary
    area = size.sum()

    def costs_of(a: np.ndarray, b: np.ndarray, boundaries: list[list[float]]) -> np.ndarray:
        """(m,) the merging costs of the pairs (a[i], b[i]), whose shared boundaries are ``boundaries``."""
        total = np.sqrt(((colour[a] - colour[b]) ** 2).sum(1))
        if hist is not None:
            p, q = hist[a], hist[b]
            total += options.texture_weight * np.sqrt(0.5 * ((p - q) ** 2 / (p + q + 1e-12)).sum(1))
        strength = np.array(boundaries, np.float64).reshape(-1, 2)
        total += options.boundary_weight * strength[:, 0] / np.maximum(strength[:, 1], 1.0)
        harmonic = 2 * size[a] * size[b] / (size[a] + size[b])
        return total * (harmonic / area) ** options.size_power

    pairs = np.array(list(edges), np.int64).reshape(-1, 2)
    heap = list(zip(costs_of(pairs[:, 0], pairs[:, 1], list(edges.values())).tolist(), pairs[:, 0].tolist(),
                    pairs[:, 1].tolist(), [0] * len(pairs), [0] * len(pairs)))
    heapq.heapify(heap)
    merges, costs = [], []
    while heap:
        pair_cost, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or va != version[a] or vb != version[b]:
            continue
        merges.append((a, b))
        costs.append(pair_cost)
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
        if neighbours[a]:
            others = np.fromiter(neighbours[a], np.int64, len(neighbours[a]))
            fresh = costs_of(np.full(len(others), a), others, list(neighbours[a].values()))
            version_a = int(version[a])
            for c, c_cost in zip(others.tolist(), fresh.tolist()):
                heapq.heappush(heap, (c_cost, a, c, version_a, int(version[c])))
    return merges, costs
