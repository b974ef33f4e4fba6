"""Scores of unsupervised label maps against ground truth: Hungarian-matched mIoU and pixel accuracy, ARI, NMI.

Cluster ids are arbitrary, and each image is clustered on its own, so every image's clusters are matched
to its classes by the Hungarian algorithm (scipy's ``linear_sum_assignment``) on the cluster x class
overlap, maximising the number of correctly labelled pixels. A cluster left unmatched (k > classes)
labels its pixels wrong. Intersections and unions are summed over the whole set before the per-class
IoU, and mIoU is the mean over classes that occur (union > 0). ARI and NMI (scikit-learn) need no
matching and are averaged over images. Pixels whose ground truth is in ``ignore`` count nowhere.

Two methods scored on the same images are compared by a paired bootstrap over images
(:func:`paired_miou_difference`): small mIoU gaps on a few hundred images are often within noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..errors import ScvaeError


def match_clusters(predicted: np.ndarray, target: np.ndarray) -> dict[int, int]:
    """The Hungarian cluster -> class assignment that maximises overlap, for 1-D label arrays."""
    from scipy.optimize import linear_sum_assignment

    clusters, p = np.unique(predicted, return_inverse=True)
    classes, t = np.unique(target, return_inverse=True)
    overlap = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(overlap, (p, t), 1)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return {int(clusters[r]): int(classes[c]) for r, c in zip(rows, cols)}


def class_of_cluster(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Lookup (max cluster id + 1,): each cluster's Hungarian-matched class, -1 for an unmatched one."""
    mapping = match_clusters(predicted, target)
    return np.array([mapping.get(c, -1) for c in range(int(predicted.max()) + 1)], dtype=np.int64)


@dataclass
class SegmentationScorer:
    """Accumulates scores image by image: ``update(predicted, target)`` then ``result()``."""

    ignore: tuple[int, ...] = ()
    correct: int = 0
    total: int = 0
    ari: list[float] = field(default_factory=list)
    nmi: list[float] = field(default_factory=list)
    per_image: list[dict[int, tuple[int, int]]] = field(default_factory=list)  # class -> (intersection, union)

    def update(self, predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
        """Score one label map (H, W) against its ground truth (H, W); returns this image's scores."""
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        if predicted.shape != target.shape:
            raise ScvaeError(f"label map {predicted.shape} and mask {target.shape} differ in size")
        valid = ~np.isin(target, self.ignore) if self.ignore else np.ones(target.shape, bool)
        p, t = predicted[valid].astype(np.int64), target[valid].astype(np.int64)
        if t.size == 0:
            return {}
        mapped = class_of_cluster(p, t)[p]
        self.per_image.append({int(c): (int(((mapped == c) & (t == c)).sum()), int(((mapped == c) | (t == c)).sum()))
                               for c in np.union1d(np.unique(t), np.unique(mapped[mapped >= 0]))})
        correct = int((mapped == t).sum())
        self.correct += correct
        self.total += t.size
        self.ari.append(float(adjusted_rand_score(t, p)))
        self.nmi.append(float(normalized_mutual_info_score(t, p)))
        return {"pixel_accuracy": correct / t.size, "ari": self.ari[-1], "nmi": self.nmi[-1]}

    def classes(self) -> set[int]:
        """Every class that was predicted or present in a scored image."""
        return set().union(*self.per_image)

    def result(self) -> dict[str, object]:
        if not self.total:
            raise ScvaeError("no pixels were scored (every mask pixel ignored?)")
        classes = sorted(self.classes())
        intersection, union = (m.sum(0) for m in _count_matrices(self, classes))
        iou = {c: i / u for c, i, u in zip(classes, intersection, union) if u > 0}
        return {"miou": float(np.mean(list(iou.values()))), "pixel_accuracy": self.correct / self.total,
                "ari": float(np.mean(self.ari)), "nmi": float(np.mean(self.nmi)),
                "per_class_iou": {str(c): v for c, v in iou.items()}, "n_images": len(self.ari)}


def _count_matrices(scorer: SegmentationScorer, classes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-image intersections and unions, (n_images, n_classes) each."""
    inter = np.array([[img.get(c, (0, 0))[0] for c in classes] for img in scorer.per_image], dtype=np.float64)
    union = np.array([[img.get(c, (0, 0))[1] for c in classes] for img in scorer.per_image], dtype=np.float64)
    return inter.reshape(-1, len(classes)), union.reshape(-1, len(classes))


def _miou(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """mIoU over classes with union > 0 from summed counts (..., C)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
    return np.nanmean(iou, axis=-1)


def paired_miou_difference(a: SegmentationScorer, b: SegmentationScorer, n_boot: int = 1000, level: float = 0.95,
                           seed: int = 0) -> dict[str, object]:
    """mIoU(a) - mIoU(b) for two methods scored on the same images in the same order, with a percentile
    bootstrap interval: images are resampled with replacement and both methods' counts re-summed. Written out
    rather than ``scipy.stats.bootstrap(paired=True)``: every resample here is one vectorised sum over
    (n_boot, n) indices, where scipy would call the ratio-of-sums statistic once per resample."""
    n = len(a.per_image)
    if n == 0 or n != len(b.per_image):
        raise ScvaeError(f"a paired comparison needs the same images for both methods, got {n} and {len(b.per_image)}")
    classes = sorted(a.classes() | b.classes())
    (ia, ua), (ib, ub) = _count_matrices(a, classes), _count_matrices(b, classes)
    difference = float(_miou(ia.sum(0), ua.sum(0)) - _miou(ib.sum(0), ub.sum(0)))
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = _miou(ia[idx].sum(1), ua[idx].sum(1)) - _miou(ib[idx].sum(1), ub[idx].sum(1))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return {"difference": difference, "ci": [float(low), float(high)], "level": level, "n_boot": n_boot,
            "fraction_above_zero": float((boot > 0).mean())}


def score_all(pairs: Iterable[tuple[np.ndarray, np.ndarray]], ignore: tuple[int, ...] = ()) -> dict[str, object]:
    """Scores of a sequence of (predicted, target) label maps."""
    scorer = SegmentationScorer(ignore=tuple(ignore))
    for predicted, target in pairs:
        scorer.update(predicted, target)
    return scorer.result()
