"""Few-label segmentation: a linear classifier per position on frozen features, trained on a few labelled
images and scored by mIoU on the rest (the supervised side of the paper's downstream task).

For each draw, ``n`` images are chosen at random as the labelled set (the same images for every method, so
the methods are paired); every position of their feature grids, with its normalised (y, x) position
appended, is labelled by the mask at the cell's centre, and a multinomial logistic regression is fitted on
the standardised rows. Every other image is then scored cell by cell; the class probabilities are
interpolated bilinearly between the cells' centres (``upsample="bilinear"``, the default; ``"nearest"``
gives each cell's label to all its pixels, as before 2026-12), and the argmax is scored against the mask.
The draws' per-image counts are pooled, so :func:`paired_miou_difference` resamples images of every draw.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ScvaeError
from .segmentation import FeatureFn, FeatureGrid, upsample_labels, upsample_scores
from .segmentation_metrics import SegmentationScorer, _count_matrices, _miou, paired_miou_difference

MAX_ROWS = 60_000  # training positions kept per draw (a random subset beyond it): the fit stays seconds
POSITION_WEIGHT = 1.0  # (y, x) in [0, 1] appended to every method's standardised features
UPSAMPLING = ("bilinear", "nearest")


@dataclass
class FewLabelResult:
    """One method at one number of labelled images: mIoU of each draw and the pooled scorer."""

    method: str
    n_labelled: int
    draws: list[float]
    scorer: SegmentationScorer = field(repr=False)

    @property
    def miou(self) -> float:
        return float(np.mean(self.draws))


def cell_labels(mask: np.ndarray, grid: FeatureGrid) -> np.ndarray:
    """The mask's label (h, w) at the centre of each grid cell (cells are ``grid.cell`` working pixels, the
    working image scaled to the mask)."""
    h, w = grid.values.shape[:2]
    sy, sx = mask.shape[0] / grid.shape[0], mask.shape[1] / grid.shape[1]
    ys = np.minimum(((np.arange(h) + 0.5) * grid.cell * sy).astype(int), mask.shape[0] - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * grid.cell * sx).astype(int), mask.shape[1] - 1)
    return mask[np.ix_(ys, xs)]


def _rows(grid: FeatureGrid) -> np.ndarray:
    h, w, c = grid.values.shape
    ys, xs = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    return np.concatenate([grid.values.reshape(-1, c), POSITION_WEIGHT * np.stack([ys.ravel(), xs.ravel()], 1)], 1)


def supervised_counts(predicted: np.ndarray, target: np.ndarray, ignore: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Class -> (intersection, union) of a predicted label map against its mask, ignored labels left out."""
    valid = ~np.isin(target, ignore)
    p, t = predicted[valid], target[valid]
    return {int(c): (int(((p == c) & (t == c)).sum()), int(((p == c) | (t == c)).sum()))
            for c in np.union1d(np.unique(t), np.unique(p))}


def few_label_segmentation(methods: dict[str, FeatureFn], pairs: list[tuple[np.ndarray, np.ndarray]],
                           n_labelled: int, draws: int = 3, ignore: tuple[int, ...] = (), seed: int = 0,
                           progress=None, upsample: str = UPSAMPLING[0]) -> dict[str, FewLabelResult]:
    """Score every method of ``methods`` (name -> features of an image) on ``pairs`` (image uint8 (H, W, 3),
    mask (H, W)) with ``n_labelled`` labelled images per draw; ``upsample``: how cell predictions reach the
    pixels (``bilinear`` class probabilities or ``nearest`` labels). Returns name -> :class:`FewLabelResult`."""
    from sklearn.linear_model import LogisticRegression

    if upsample not in UPSAMPLING:
        raise ScvaeError(f"upsample must be one of {', '.join(UPSAMPLING)}, got {upsample!r}")
    if not 1 <= n_labelled < len(pairs):
        raise ScvaeError(f"need between 1 and {len(pairs) - 1} labelled images for {len(pairs)} pairs, got {n_labelled}")
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(len(pairs), n_labelled, replace=False) for _ in range(draws)]
    results = {}
    for name, features in methods.items():
        grids = [features(image) for image, _ in pairs]  # each image's grid once, for every draw
        scorer, per_draw = SegmentationScorer(ignore=tuple(ignore)), []
        for labelled in chosen:
            x = np.concatenate([_rows(grids[i]) for i in labelled])
            y = np.concatenate([cell_labels(pairs[i][1], grids[i]).ravel() for i in labelled])
            keep = ~np.isin(y, ignore)
            x, y = x[keep], y[keep]
            if len(x) > MAX_ROWS:
                take = rng.choice(len(x), MAX_ROWS, replace=False)
                x, y = x[take], y[take]
            mean, std = x.mean(0), x.std(0) + 1e-6
            draw = SegmentationScorer(ignore=tuple(ignore))
            classifier = None
            if len(np.unique(y)) > 1:  # else a single class among the labelled cells: it is every prediction
                classifier = LogisticRegression(C=1.0, max_iter=300, tol=1e-3).fit((x - mean) / std, y)
            for i in sorted(set(range(len(pairs))) - set(labelled.tolist())):
                grid, mask = grids[i], pairs[i][1]
                predicted = _predict(classifier, int(y[0]), (_rows(grid) - mean) / std, grid, mask.shape, upsample)
                counts = supervised_counts(predicted, mask, tuple(ignore))
                draw.per_image.append(counts)
            scorer.per_image.extend(draw.per_image)
            per_draw.append(_pooled_miou(draw))
        results[name] = FewLabelResult(name, n_labelled, per_draw, scorer)
        if progress:
            progress(f"{name}, {n_labelled} labelled: mIoU {results[name].miou:.3f} "
                     f"({', '.join(f'{m:.3f}' for m in per_draw)})")
    return results


def _predict(classifier, only: int, rows: np.ndarray, grid: FeatureGrid, size: tuple[int, int],
             upsample: str) -> np.ndarray:
    """Pixel labels (H, W) = ``size`` of one image from its standardised cell rows (h w, F); without a
    classifier every pixel is ``only``."""
    cells = grid.values.shape[:2]
    if classifier is None:
        return np.full(size, only, np.int64)
    if upsample == "nearest" or grid.cell == 1:
        return upsample_labels(classifier.predict(rows).reshape(cells), grid, size)
    scores = classifier.predict_proba(rows).reshape(*cells, -1)
    return classifier.classes_[upsample_scores(scores, grid, size)]


def _pooled_miou(scorer: SegmentationScorer) -> float:
    """mIoU of the scorer's images with their counts summed, as :func:`paired_miou_difference` computes it."""
    inter, union = _count_matrices(scorer, sorted(scorer.classes()))
    return float(_miou(inter.sum(0), union.sum(0)))


def paired_margin(a: FewLabelResult, b: FewLabelResult, seed: int = 0) -> dict[str, object]:
    """mIoU of ``a`` minus ``b`` over their pooled test images, with a paired bootstrap interval."""
    return paired_miou_difference(a.scorer, b.scorer, seed=seed)
