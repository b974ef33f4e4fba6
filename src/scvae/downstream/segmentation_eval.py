"""Score segmentation methods against ground-truth masks, all on the same images in one run."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data.masks import load_mask, load_pair
from ..errors import ScvaeError
from ..evaluation.plots import colorize, overlay
from .region_merging import CODE_SIZE, RegionMerging, atom_histograms
from .segmentation import CodeFeatures, FeatureFn, PixelFeatures, SegmentOptions, segment
from .segmentation_metrics import SegmentationScorer, class_of_cluster, paired_miou_difference

SCORE_COLUMNS = ["miou", "pixel_accuracy", "ari", "nmi", "sec_per_image"]


def mask_labels(pairs: Sequence[tuple[Path, Path]], ignore: Sequence[int], mode: str, threshold: int) -> set[int]:
    """The distinct ground-truth labels over all masks, ``ignore`` left out."""
    seen: set[int] = set()
    for _, mask_path in pairs:
        seen.update(np.unique(load_mask(mask_path, mode, threshold)).tolist())
    return seen - set(ignore)


def check_class_names(names: Sequence[str], labels: set[int]) -> None:
    """``names[i]`` names label i: refuse a list that misses a label the masks use."""
    missing = sorted(label for label in labels if not 0 <= label < len(names))
    if missing:
        raise ScvaeError(f"class names: {len(names)} given, but the masks also use label(s) "
                         f"{', '.join(map(str, missing[:5]))} (name label i at position i, from 0)")


def evaluate_segmentation(methods: Sequence[FeatureFn], pairs: Sequence[tuple[Path, Path]], options: SegmentOptions,
                          ignore: Sequence[int] = (), mask_mode: str = "auto", threshold: int = 128,
                          n_overlays: int = 4, progress: bool = True,
                          class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Segment every paired image with every method (same options) and score it; see segmentation_metrics.
    ``class_names[i]`` names mask label i (the overlays' legend).

    Returns a JSON-ready dict (``methods``: name -> scores) plus ``overlay_rows`` (pictures, not JSON)."""
    options.validate()
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ScvaeError(f"methods need distinct names, got {names}")
    scorers = {m.name: SegmentationScorer(ignore=tuple(ignore)) for m in methods}
    seconds = {m.name: 0.0 for m in methods}
    rows, row_names = [], []
    for i, (image_path, mask_path) in enumerate(tqdm(pairs, desc="segment-eval", unit="img", disable=not progress)):
        image, mask = load_pair(image_path, mask_path, 3, mask_mode, threshold)
        shown = i < n_overlays
        row = [image, _ground_truth_picture(mask, ignore)] if shown else []
        for method in methods:
            t0 = time.perf_counter()
            labels = method.segment(image, options.k) if isinstance(method, RegionMerging) else segment(method, image, options)
            seconds[method.name] += time.perf_counter() - t0
            scorers[method.name].update(labels, mask)
            if shown:
                row.append(overlay(image, _recoloured_to_classes(labels, mask, ignore)))
        if shown:
            rows.append(row)
            row_names.append(image_path.stem)
    results = {}
    for name, scorer in scorers.items():
        results[name] = {**scorer.result(), "sec_per_image": seconds[name] / len(pairs)}
    first = scorers[names[0]]
    paired = {other: paired_miou_difference(first, scorers[other], seed=options.seed) for other in names[1:]}
    return {"k": options.k, "position_weight": options.position_weight, "whiten": options.whiten,
            "refine": options.refine, "seed": options.seed, "ignore": list(ignore), "n_images": len(pairs),
            "class_names": list(class_names) if class_names else None,
            "methods": results, "paired_miou_difference": {"of": names[0], "minus": paired},
            "overlay_rows": rows, "overlay_names": row_names, "overlay_titles": ["image", "ground truth", *names]}


def comparison_methods(model: str | os.PathLike, baselines: Sequence[str | os.PathLike] = (), size: int | None = None,
                       position_weight: float = 1.0, regions: bool = False) -> list[FeatureFn | RegionMerging]:
    """The methods segment-eval compares: the model's codes, each baseline run's latents (named after its
    folder) and k-means on pixels, all working at the same ``size``; with ``regions``, the region method
    (superpixels merged by colour, boundaries and the model's atom histograms, cut at k regions) first."""
    from ..training import load_model

    methods: list[FeatureFn | RegionMerging] = [CodeFeatures(load_model(model), size)]
    if regions:
        methods.insert(0, RegionMerging(atom_histograms(methods[0].model, CODE_SIZE if size is None else size)))
    for run in baselines:
        features = CodeFeatures(load_model(run), size)
        features.name = f"{features.name} ({Path(run).name})"
        methods.append(features)
    methods.append(PixelFeatures(size, name="pixels + position" if position_weight > 0 else "pixels"))
    return methods


def _recoloured_to_classes(labels: np.ndarray, mask: np.ndarray, ignore: Sequence[int]) -> np.ndarray:
    """Cluster ids replaced by their Hungarian-matched class (unmatched clusters get ids past the classes),
    so that in the overlays a cluster has its class's colour in the ground-truth picture."""
    valid = ~np.isin(mask, list(ignore)) if ignore else np.ones(mask.shape, bool)
    lookup = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    if valid.any():
        matched = class_of_cluster(labels[valid], mask[valid])
        lookup[:len(matched)] = matched
    unmatched = lookup < 0
    lookup[unmatched] = int(mask.max()) + 1 + np.arange(int(unmatched.sum()))
    return lookup[labels]


def class_legend(result: dict[str, Any]) -> dict[int, str] | None:
    """Class id -> name for the overlays: the named classes that are scored (ignored labels are drawn black)."""
    names = result.get("class_names")
    if not names:
        return None
    return {i: name for i, name in enumerate(names) if i not in result["ignore"]}


def _ground_truth_picture(mask: np.ndarray, ignore: Sequence[int]) -> np.ndarray:
    picture = colorize(mask)
    if ignore:
        picture[np.isin(mask, list(ignore))] = 0
    return picture


def segmentation_table(result: dict[str, Any]) -> str:
    """Markdown: one row per method, then the first method's mIoU minus each other's with its bootstrap
    interval."""
    from ..evaluation.report import markdown_table, markdown_text

    table = markdown_table(result["methods"], SCORE_COLUMNS)
    paired = paired_rows(result)
    if not paired:
        return table
    of = result["paired_miou_difference"]["of"]
    return (table + f"\n{markdown_text(of)} mIoU minus each other method's ({PAIRED_NOTE}):\n\n"
            + markdown_table(paired, PAIRED_COLUMNS))


PAIRED_COLUMNS = ["difference", "95 % interval", "resamples above 0"]
PAIRED_NOTE = "paired bootstrap over images"


def paired_rows(result: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The paired mIoU differences of a result (or its JSON) as table rows, one per other method."""
    minus = result.get("paired_miou_difference", {}).get("minus", {})
    return {other: {"difference": f"{d['difference']:+.4f}", "95 % interval": f"[{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]",
                    "resamples above 0": f"{d['fraction_above_zero']:.0%}"} for other, d in minus.items()}


def result_json(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready part of an :func:`evaluate_segmentation` result (the overlay pictures left out)."""
    return {k: v for k, v in result.items() if not k.startswith("overlay_")}
