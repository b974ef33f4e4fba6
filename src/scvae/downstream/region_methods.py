"""The segmenters the BSDS500 region benchmark compares, each over its own parameter sweep, and the benchmark
run itself: every method on the same images, scored against every annotator (:mod:`.region_benchmark`).

- scikit-image's ``felzenszwalb`` (scale), ``slic`` (number of segments) and ``quickshift`` (kernel size);
- ``pixels``: k-means on RGB + position; ``codes``: k-means on a model's per-position codes;
- ``merge`` and ``merge-codes``: superpixels merged by colour and boundaries, the latter also by the codes'
  atom histograms (:mod:`.region_merging`); one hierarchy per image, cut at every level threshold.

Each method also has a fixed parameter (:data:`FIXED`), its covering-best at ODS on BSDS500 train, so that
a score on another split at that parameter is one that was not tuned on it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..data import load_image
from ..errors import ScvaeError
from .region_benchmark import ImageScore, benchmark, read_bsds_ground_truth, score_image
from .region_merging import CODE_SIZE, DEFAULT_LEVEL
from .segmentation import CodeFeatures, PixelFeatures, SegmentOptions, segment

LEVELS = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4, 1.6, 1.8]
SWEEPS = {  # method: its parameter's values
    "felzenszwalb": [50, 100, 200, 400, 800, 1600, 3200],  # scale (sigma 0.8, min_size = scale / 4)
    "slic": [4, 8, 16, 32, 64, 128],  # n_segments (compactness 10)
    "quickshift": [5, 10],  # kernel_size (max_dist 1000: no cut; 2 s and 6 s for a 481 x 321 photo)
    "pixels": [2, 3, 4, 6, 8, 12, 16],  # k of k-means on RGB + position
    "codes": [2, 3, 4, 6, 8, 12, 16],  # k of k-means on the model's per-position codes
    "merge": LEVELS,  # level thresholds of the colour + boundary hierarchy
    "merge-codes": LEVELS,  # ... with the codes' atom histograms as texture
}
FIXED = {  # method: its covering-best parameter at ODS on BSDS500 train (docs/results/bsds_train.json)
    "felzenszwalb": 800, "slic": 4, "quickshift": 10, "pixels": 3, "codes": 3, "merge": 0.8,
    "merge-codes": DEFAULT_LEVEL}
HIERARCHICAL = ("merge", "merge-codes")  # one hierarchy per image, cut at every value of the sweep
NEEDS_MODEL = ("codes", "merge-codes")


def segmenter(method: str, model=None, size: int | None = CODE_SIZE) -> Callable:
    """For a flat method, a function (image uint8 (H, W, 3), parameter) -> labels (H, W); for a hierarchical
    one, image -> a hierarchy whose ``cut_at(level)`` gives its regions. ``model``: an SC-VAE for the code
    methods, encoding images with the shorter side at ``size`` (None: their own size)."""
    from skimage import segmentation

    if method not in SWEEPS:
        raise ScvaeError(f"unknown method {method!r}; choose from {', '.join(SWEEPS)}")
    if method in NEEDS_MODEL and model is None:
        raise ScvaeError(f"the {method} method needs a model")
    if method == "felzenszwalb":
        return lambda im, p: segmentation.felzenszwalb(im, scale=p, sigma=0.8, min_size=max(20, p // 4))
    if method == "slic":
        return lambda im, p: segmentation.slic(im, n_segments=p, compactness=10, start_label=1)
    if method == "quickshift":
        return lambda im, p: segmentation.quickshift(im, kernel_size=p, max_dist=1000, ratio=0.5)
    if method in ("pixels", "codes"):
        features = PixelFeatures() if method == "pixels" else CodeFeatures(model, size)
        return lambda im, p: segment(features, im, SegmentOptions(k=p, position_weight=1.0))
    from .region_merging import atom_histograms, build_hierarchy

    texture = atom_histograms(model, size) if method == "merge-codes" else None
    return lambda im: build_hierarchy(im, None if texture is None else texture(im))


def bsds_pairs(images: str | Path, ground_truth: str | Path, limit: int | None = None) -> list[tuple[Path, Path]]:
    """(image, ``<stem>.mat``) pairs of a BSDS-style layout: every jpg/png in ``images`` with its ground truth."""
    images, ground_truth = Path(images), Path(ground_truth)
    for folder in (images, ground_truth):
        if not folder.is_dir():
            raise ScvaeError(f"{folder}: not a folder")
    paths = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    pairs = [(p, ground_truth / f"{p.stem}.mat") for p in paths if (ground_truth / f"{p.stem}.mat").is_file()]
    if not pairs:
        raise ScvaeError(f"{images}: no image has a <name>.mat ground truth in {ground_truth}")
    return pairs[:limit]


def score_hierarchies(photos: Iterable[tuple[np.ndarray, list]], build: Callable, sweep: Sequence[float],
                      fixed: float | None = None) -> dict:
    """The benchmark (:func:`~.region_benchmark.benchmark`) of one hierarchy per photo, ``build(image)``, cut at
    every level of ``sweep``, for (uint8 (H, W, 3) photo, its human segmentations) pairs; with the seconds
    per photo of ``build`` (``sec_per_image``; one run gives every level)."""
    scores: list[list[ImageScore]] = []
    seconds = 0.0
    for image, truths in photos:
        t0 = time.perf_counter()
        hierarchy = build(image)
        seconds += time.perf_counter() - t0
        scores.append([score_image(hierarchy.cut_at(level), truths) for level in sweep])
    return {**benchmark(scores, sweep, fixed), "sec_per_image": seconds / len(scores)}


def run_region_benchmark(pairs: Sequence[tuple[Path, Path]], methods: Sequence[str], model=None,
                         progress: Callable[[str], None] | None = None, size: int | None = CODE_SIZE) -> dict:
    """Every method over its sweep on every (image, ground truth) pair; returns, per method, the measures at
    ODS, OIS and the fixed parameter (:func:`~.region_benchmark.benchmark`), and the seconds per image and
    setting (a hierarchy's one run counts once per image)."""
    truths = [read_bsds_ground_truth(gt) for _, gt in pairs]
    results = {}
    for method in methods:
        fn, sweep = segmenter(method, model, size), SWEEPS[method]
        photos = ((load_image(path, 3), gts) for (path, _), gts in zip(pairs, truths))
        if method in HIERARCHICAL:  # one run gives every level
            results[method] = score_hierarchies(photos, fn, sweep, FIXED[method])
        else:
            scores: list[list[ImageScore]] = []
            seconds = 0.0
            for image, gts in photos:
                row = []
                for parameter in sweep:
                    t0 = time.perf_counter()
                    labels = fn(image, parameter)
                    seconds += time.perf_counter() - t0
                    row.append(score_image(labels, gts))
                scores.append(row)
            results[method] = {**benchmark(scores, sweep, FIXED[method]),
                               "sec_per_image": seconds / (len(pairs) * len(sweep))}
        if progress is not None:
            o = results[method]["ods"]
            progress(f"{method}: ODS covering {o['covering']:.3f}, PRI {o['pri']:.3f}, VoI {o['voi']:.3f}")
    return {"n_images": len(pairs), "methods": results}


def drawn(image: np.ndarray, labels: np.ndarray, colour: tuple = (1, 1, 0)) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with the boundaries of ``labels`` (H, W) drawn in ``colour`` (RGB in [0, 1])."""
    from skimage.segmentation import mark_boundaries

    return (mark_boundaries(image, labels, color=colour) * 255).round().astype(np.uint8)


def region_rows(photos: Sequence[np.ndarray], model, size: int | None = CODE_SIZE) -> list[list[np.ndarray]]:
    """For each photo (uint8 (H, W, 3)): the photo, the region method with ``model``'s codes at its fixed
    level, and Felzenszwalb-Huttenlocher at its fixed scale, region boundaries drawn (the report's panel)."""
    ours, theirs = segmenter("merge-codes", model, size), segmenter("felzenszwalb")
    return [[p, drawn(p, ours(p).cut_at(FIXED["merge-codes"])), drawn(p, theirs(p, FIXED["felzenszwalb"]))]
            for p in photos]


def overlay_rows(pairs: Sequence[tuple[Path, Path]], result: dict, model=None,
                 size: int | None = CODE_SIZE) -> list[list[np.ndarray]]:
    """For each (image, ground truth) pair, uint8 (H, W, 3) panels: the photo, its first human segmentation,
    and each method of ``result`` at its fixed parameter (chosen on train; else its covering-best at ODS),
    region boundaries drawn."""
    best = shown_parameters(result)
    fns = {m: segmenter(m, model, size) for m in best}
    rows = []
    for path, truth in pairs:
        image = load_image(path, 3)
        row = [image, drawn(image, read_bsds_ground_truth(truth)[0], (1, 0, 0))]
        for method, fn in fns.items():
            labels = fn(image).cut_at(best[method]) if method in HIERARCHICAL else fn(image, best[method])
            row.append(drawn(image, labels, (1, 1, 0)))
        rows.append(row)
    return rows


def shown_parameters(result: dict) -> dict:
    """method -> the parameter its overlay is drawn at: the fixed one when scored, else the ODS covering one."""
    return {m: r.get("fixed", {}).get("parameter", r["ods"]["covering_parameter"]) for m, r in result["methods"].items()}


def region_table(result: dict) -> str:
    """Markdown: one row per method, each measure at ODS (its parameter in brackets), OIS and the fixed
    parameter, and the time."""
    lines = ["| method | covering ODS | OIS | fixed | PRI ODS | OIS | fixed | VoI ODS | OIS | fixed | fixed parameter "
             "| s per image and setting |", "|---" * 12 + "|"]
    for name, r in result["methods"].items():
        o, i = r["ods"], r["ois"]
        f = r.get("fixed", {"covering": float("nan"), "pri": float("nan"), "voi": float("nan"), "parameter": "-"})
        lines.append(f"| {name} | {o['covering']:.3f} ({o['covering_parameter']}) | {i['covering']:.3f} | "
                     f"{f['covering']:.3f} | {o['pri']:.3f} ({o['pri_parameter']}) | {i['pri']:.3f} | {f['pri']:.3f} | "
                     f"{o['voi']:.3f} ({o['voi_parameter']}) | {i['voi']:.3f} | {f['voi']:.3f} | {f['parameter']} | "
                     f"{r['sec_per_image']:.2f} |")
    return "\n".join(lines)
