"""The BSDS500 region benchmark: scikit-image's bottom-up segmenters, k-means on pixels + position and on an
SC-VAE's codes, each over its own parameter sweep, scored against every annotator with covering, PRI and
VoI at ODS and OIS (:mod:`scvae.downstream.region_benchmark`), with the time per image.

    python bench/bsds_regions.py --data ../shared/data/bsds500 --split val [--model runs/x] [--limit 20] \\
        [--methods felzenszwalb,slic,quickshift,pixels,codes] [--json bsds.json] [--overlays 4 --png overlays.png]

``--overlays N`` draws the first N images: the photo, the first human segmentation, and each method's
segmentation at its covering-best parameter (ODS), with region boundaries.

k-means labels are scored as they come: one region per cluster, connected or not.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from scvae.data import load_image
from scvae.downstream import CodeFeatures, PixelFeatures, SegmentOptions, segment
from scvae.downstream.region_benchmark import benchmark, read_bsds_ground_truth, score_image
from scvae.errors import ScvaeError

SWEEPS = {  # method: its parameter's values, coarse (few regions) last or first as the method has it
    "felzenszwalb": [50, 100, 200, 400, 800, 1600, 3200],  # scale (sigma 0.8, min_size = scale / 4)
    "slic": [4, 8, 16, 32, 64, 128],  # n_segments (compactness 10)
    "quickshift": [10, 20, 40, 80],  # max_dist (kernel_size 5)
    "pixels": [2, 3, 4, 6, 8, 12, 16],  # k of k-means on RGB + position
    "codes": [2, 3, 4, 6, 8, 12, 16],  # k of k-means on the model's per-position codes
    "merge": [2, 3, 4, 6, 8, 12, 16, 24, 32],  # regions cut from the colour + boundary hierarchy
    "merge-codes": [2, 3, 4, 6, 8, 12, 16, 24, 32],  # ... with the codes' atom histograms as texture
}
HIERARCHICAL = ("merge", "merge-codes")  # one hierarchy per image, cut at every value of the sweep


def segmenter(method: str, model_dir: str | None):
    """A function (image uint8 (H, W, 3), parameter) -> labels (H, W)."""
    from skimage import segmentation

    if method == "felzenszwalb":
        return lambda im, p: segmentation.felzenszwalb(im, scale=p, sigma=0.8, min_size=max(20, p // 4))
    if method == "slic":
        return lambda im, p: segmentation.slic(im, n_segments=p, compactness=10, start_label=1)
    if method == "quickshift":
        return lambda im, p: segmentation.quickshift(im, kernel_size=5, max_dist=p, ratio=0.5)
    if method == "pixels":
        features = PixelFeatures()
        return lambda im, p: segment(features, im, SegmentOptions(k=p, position_weight=1.0))
    if method == "codes":
        if model_dir is None:
            raise ScvaeError("the codes method needs --model")
        from scvae.training import load_model

        features = CodeFeatures(load_model(model_dir), None)
        return lambda im, p: segment(features, im, SegmentOptions(k=p, position_weight=1.0))
    if method in HIERARCHICAL:
        from scvae.downstream.region_merging import build_hierarchy

        texture = None
        if method == "merge-codes":
            if model_dir is None:
                raise ScvaeError("the merge-codes method needs --model")
            from scvae.training import load_model

            texture = CodeFeatures(load_model(model_dir), None, space="codes")
        return lambda im: build_hierarchy(im, None if texture is None else texture(im))
    raise ScvaeError(f"unknown method {method!r}; choose from {', '.join(SWEEPS)}")


def run(data: Path, split: str, methods: list[str], model: str | None, limit: int | None) -> dict:
    images = sorted((data / "images" / split).glob("*.jpg"))[:limit]
    if not images:
        raise ScvaeError(f"{data / 'images' / split}: no BSDS images")
    truths = [read_bsds_ground_truth(data / "groundTruth" / split / f"{p.stem}.mat") for p in images]
    results = {}
    for method in methods:
        fn, sweep = segmenter(method, model), SWEEPS[method]
        scores, seconds = [], 0.0
        for path, gts in zip(images, truths):
            image = load_image(path, 3)
            row = []
            if method in HIERARCHICAL:  # one run gives every number of regions
                t0 = time.perf_counter()
                hierarchy = fn(image)
                seconds += (time.perf_counter() - t0) * len(sweep)
                row = [score_image(hierarchy.cut(n), gts) for n in sweep]
            for parameter in sweep if method not in HIERARCHICAL else ():
                t0 = time.perf_counter()
                labels = fn(image, parameter)
                seconds += time.perf_counter() - t0
                row.append(score_image(labels, gts))
            scores.append(row)
        results[method] = {**benchmark(scores, sweep), "sec_per_image": seconds / (len(images) * len(sweep))}
        r = results[method]
        print(f"{method}: ODS covering {r['ods']['covering']:.3f}, PRI {r['ods']['pri']:.3f}, VoI {r['ods']['voi']:.3f}",
              file=sys.stderr, flush=True)
    return {"split": split, "n_images": len(images), "methods": results}


def overlays(data: Path, result: dict, methods: list[str], model: str | None, n: int, png: str) -> None:
    """The photo, one human segmentation and each method at its covering-best parameter, boundaries drawn."""
    from skimage.segmentation import mark_boundaries

    from scvae.evaluation.plots import panel_figure

    split = result["split"]
    rows = []
    for path in sorted((data / "images" / split).glob("*.jpg"))[:n]:
        image = load_image(path, 3)
        human = read_bsds_ground_truth(data / "groundTruth" / split / f"{path.stem}.mat")[0]
        row = [image, mark_boundaries(image, human, color=(1, 0, 0))]
        for method in methods:
            fn, best = segmenter(method, model), result["methods"][method]["ods"]["covering_parameter"]
            labels = fn(image).cut(best) if method in HIERARCHICAL else fn(image, best)
            row.append(mark_boundaries(image, labels, color=(1, 1, 0)))
        rows.append([(np.asarray(v) * (255 if np.asarray(v).dtype != np.uint8 else 1)).astype(np.uint8) for v in row])
    titles = ["photo", "a human segmentation"] + [
        f"{m} ({result['methods'][m]['ods']['covering_parameter']})" for m in methods]
    panel_figure(rows, titles, png, height=2.2)


def table(result: dict) -> str:
    lines = ["| method | covering ODS | OIS | PRI ODS | OIS | VoI ODS | OIS | s per image and setting |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in result["methods"].items():
        o, i = r["ods"], r["ois"]
        lines.append(f"| {name} | {o['covering']:.3f} ({o['covering_parameter']}) | {i['covering']:.3f} | "
                     f"{o['pri']:.3f} ({o['pri_parameter']}) | {i['pri']:.3f} | {o['voi']:.3f} ({o['voi_parameter']}) | "
                     f"{i['voi']:.3f} | {r['sec_per_image']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the bsds500 folder (images/, groundTruth/)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--methods", default="felzenszwalb,slic,pixels")
    parser.add_argument("--model", help="an SC-VAE run, for the codes method")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json")
    parser.add_argument("--overlays", type=int, default=0, help="images drawn in --png (default 0: none)")
    parser.add_argument("--png", default="overlays.png")
    args = parser.parse_args(argv)
    try:
        result = run(Path(args.data), args.split, [m.strip() for m in args.methods.split(",")], args.model,
                     args.limit)
    except ScvaeError as err:
        print(f"bsds_regions: {err}", file=sys.stderr)
        return 2
    print(f"BSDS500 {result['split']}, {result['n_images']} images (parameter at ODS in brackets)\n")
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.overlays:
        overlays(Path(args.data), result, [m.strip() for m in args.methods.split(",")], args.model, args.overlays,
                 args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
