"""Scores of unsupervised label maps against ground truth: Hungarian-matched mIoU and pixel accuracy, ARI, NMI.

Cluster ids are arbitrary, and each image is clustered on its own, so every image's clusters are matched
to its classes by the Hungarian algorithm (scipy's ``linear_sum_assignment``) on the cluster x class
overlap, maximising the number of correctly labelled pixels. A cluster left unmatched (k > classes)
labels its pixels wrong. Intersections and unions are summed over the whole set before the per-class
IoU, and mIoU is the mean over classes that occur (union > 0). ARI and NMI (scikit-learn) need no
matching and are averaged over images. Pixels whose ground truth is in ``ignore`` count nowhere.
"""
from __future__ import annotations

from collections import defaultdict
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


@dataclass
class SegmentationScorer:
    """Accumulates scores image by image: ``update(predicted, target)`` then ``result()``."""

    ignore: tuple[int, ...] = ()
    intersection: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    union: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    correct: int = 0
    total: int = 0
    ari: list[float] = field(default_factory=list)
    nmi: list[float] = field(default_factory=list)

    def update(self, predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
        """Score one label map (H, W) against its ground truth (H, W); returns this image's scores."""
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        if predicted.shape != target.shape:
            raise ScvaeError(f"label map {predicted.shape} and mask {target.shape} differ in size")
        valid = ~np.isin(target, self.ignore) if self.ignore else np.ones(target.shape, bool)
        p, t = predicted[valid].astype(np.int64), target[valid].astype(np.int64)
        if t.size == 0:
            return {}
        mapping = match_clusters(p, t)
        mapped = np.array([mapping.get(int(c), -1) for c in range(int(p.max()) + 1)])[p]
        for c in np.union1d(np.unique(t), np.unique(mapped[mapped >= 0])):
            self.intersection[int(c)] += int(((mapped == c) & (t == c)).sum())
            self.union[int(c)] += int(((mapped == c) | (t == c)).sum())
        correct = int((mapped == t).sum())
        self.correct += correct
        self.total += t.size
        self.ari.append(float(adjusted_rand_score(t, p)))
        self.nmi.append(float(normalized_mutual_info_score(t, p)))
        return {"pixel_accuracy": correct / t.size, "ari": self.ari[-1], "nmi": self.nmi[-1]}

    def result(self) -> dict[str, object]:
        if not self.total:
            raise ScvaeError("no pixels were scored (every mask pixel ignored?)")
        iou = {c: self.intersection[c] / self.union[c] for c in sorted(self.union) if self.union[c] > 0}
        return {"miou": float(np.mean(list(iou.values()))), "pixel_accuracy": self.correct / self.total,
                "ari": float(np.mean(self.ari)), "nmi": float(np.mean(self.nmi)),
                "per_class_iou": {str(c): v for c, v in iou.items()}, "n_images": len(self.ari)}


def score_all(pairs: Iterable[tuple[np.ndarray, np.ndarray]], ignore: tuple[int, ...] = ()) -> dict[str, object]:
    """Scores of a sequence of (predicted, target) label maps."""
    scorer = SegmentationScorer(ignore=tuple(ignore))
    for predicted, target in pairs:
        scorer.update(predicted, target)
    return scorer.result()
