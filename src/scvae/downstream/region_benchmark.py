"""The BSDS500 region benchmark (Arbelaez et al., TPAMI 2011): segmentation covering, the probabilistic
Rand index (PRI) and the variation of information (VoI), against every human segmentation of an image,
at the optimal dataset scale (ODS) and the optimal image scale (OIS) of a parameter sweep.

As the BSDS benchmark code computes them:

- covering: for every region R of every human segmentation, the best intersection over union with a
  region of the machine segmentation, weighted by |R|; summed over the annotators' regions and divided by
  their total area (the mean over annotators of how well the machine segmentation covers each one);
- PRI: the Rand index over all pixel pairs against each human segmentation, averaged over annotators;
- VoI: H(S) + H(G) - 2 I(S, G) in bits, averaged over annotators (lower is better).

Over a dataset, covering pools the counts of all images (pixel-weighted), PRI and VoI average the images.
ODS picks one parameter for the whole set; OIS the best parameter per image.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ScvaeError


def contingency(seg: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Pixel counts (regions of ``seg``, regions of ``gt``) of two label maps of one shape."""
    if seg.shape != gt.shape:
        raise ScvaeError(f"a segmentation of shape {seg.shape} against ground truth of shape {gt.shape}")
    _, a = np.unique(seg.ravel(), return_inverse=True)
    _, b = np.unique(gt.ravel(), return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1), np.int64)
    np.add.at(table, (a, b), 1)
    return table


def rand_index(table: np.ndarray) -> float:
    """The Rand index of a contingency table: the share of unordered pixel pairs both maps group alike."""
    n = table.sum()
    pairs = n * (n - 1) / 2
    same_both = (table * (table - 1) / 2).sum()
    same_a = (table.sum(1) * (table.sum(1) - 1) / 2).sum()
    same_b = (table.sum(0) * (table.sum(0) - 1) / 2).sum()
    return float((pairs + 2 * same_both - same_a - same_b) / pairs)


def variation_of_information(table: np.ndarray) -> float:
    """H(A) + H(B) - 2 I(A, B) in bits."""
    joint = table / table.sum()
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mutual = (joint[nz] * np.log2(joint[nz] / np.outer(pa, pb)[nz])).sum()
    entropy = lambda p: -(p[p > 0] * np.log2(p[p > 0])).sum()  # noqa: E731
    return float(entropy(pa) + entropy(pb) - 2 * mutual)


def covering_counts(table: np.ndarray) -> tuple[float, float]:
    """(sum over the ground truth's regions of |R| x best IoU with a segment, total area) for one
    annotator."""
    seg_area, gt_area = table.sum(1), table.sum(0)
    union = seg_area[:, None] + gt_area[None, :] - table
    best = (table / union).max(0)
    return float((gt_area * best).sum()), float(gt_area.sum())


@dataclass
class ImageScore:
    """One segmentation of one image against all its annotators: covering as pooled counts, PRI, VoI."""

    covering_hits: float
    covering_area: float
    pri: float
    voi: float

    @property
    def covering(self) -> float:
        return self.covering_hits / self.covering_area


def score_image(seg: np.ndarray, ground_truths: Sequence[np.ndarray]) -> ImageScore:
    """Score ``seg`` (H, W) labels against every human segmentation of the image."""
    tables = [contingency(seg, gt) for gt in ground_truths]
    hits, area = np.sum([covering_counts(t) for t in tables], axis=0)
    return ImageScore(float(hits), float(area), float(np.mean([rand_index(t) for t in tables])),
                      float(np.mean([variation_of_information(t) for t in tables])))


def benchmark(scores: Sequence[Sequence[ImageScore]], parameters: Sequence, fixed=None) -> dict:
    """``scores[i][j]``: image i segmented with ``parameters[j]``. Returns each measure at ODS (with its
    parameter) and OIS, every parameter's dataset scores (``sweep``) and, when ``fixed`` is one of the
    parameters, the scores at it (``fixed``: a parameter chosen elsewhere, not on these images)."""
    hits = np.array([[s.covering_hits for s in row] for row in scores])
    area = np.array([[s.covering_area for s in row] for row in scores])
    pri = np.array([[s.pri for s in row] for row in scores])
    voi = np.array([[s.voi for s in row] for row in scores])
    covering = hits.sum(0) / area.sum(0)
    best_cover = (hits / area).argmax(1)
    rows = np.arange(len(scores))
    sweep = [{"parameter": p, "covering": float(c), "pri": float(r), "voi": float(v)}
             for p, c, r, v in zip(parameters, covering, pri.mean(0), voi.mean(0))]
    return {
        "ods": {"covering": float(covering.max()), "covering_parameter": parameters[int(covering.argmax())],
                "pri": float(pri.mean(0).max()), "pri_parameter": parameters[int(pri.mean(0).argmax())],
                "voi": float(voi.mean(0).min()), "voi_parameter": parameters[int(voi.mean(0).argmin())]},
        "ois": {"covering": float(hits[rows, best_cover].sum() / area[rows, best_cover].sum()),
                "pri": float(pri.max(1).mean()), "voi": float(voi.min(1).mean())},
        "sweep": sweep, "n_images": len(scores),
        **({"fixed": sweep[list(parameters).index(fixed)]} if fixed in list(parameters) else {})}


def read_bsds_ground_truth(path: str | os.PathLike) -> list[np.ndarray]:
    """Every human segmentation (H, W) of one BSDS ``groundTruth/<id>.mat`` file."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        cells = loadmat(str(path))["groundTruth"][0]
        segmentations = [np.asarray(cell["Segmentation"][0, 0]) for cell in cells]
    except FileNotFoundError:
        raise ScvaeError(f"{path}: no such ground-truth file") from None
    except (KeyError, IndexError, ValueError, TypeError, OSError) as exc:
        raise ScvaeError(f"{path}: not a BSDS ground-truth file ({type(exc).__name__}: {exc})") from None
    if not segmentations or any(s.ndim != 2 for s in segmentations):
        raise ScvaeError(f"{path}: holds no 2-D segmentations")
    return segmentations
