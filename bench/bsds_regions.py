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
from pathlib import Path

import numpy as np

from scvae.data import load_image
from scvae.downstream.region_benchmark import read_bsds_ground_truth
from scvae.downstream.region_methods import best_segmentation, bsds_pairs, region_table, run_region_benchmark
from scvae.errors import ScvaeError


def load(model_dir: str | None):
    if model_dir is None:
        return None
    from scvae.training import load_model

    return load_model(model_dir)


def run(data: Path, split: str, methods: list[str], model: str | None, limit: int | None) -> dict:
    pairs = bsds_pairs(data / "images" / split, data / "groundTruth" / split, limit)
    result = run_region_benchmark(pairs, methods, load(model), lambda line: print(line, file=sys.stderr, flush=True))
    return {"split": split, **result}


def overlays(data: Path, result: dict, methods: list[str], model: str | None, n: int, png: str) -> None:
    """The photo, one human segmentation and each method at its covering-best parameter, boundaries drawn."""
    from skimage.segmentation import mark_boundaries

    from scvae.evaluation.plots import panel_figure

    split, loaded = result["split"], load(model)
    rows = []
    for path, truth in bsds_pairs(data / "images" / split, data / "groundTruth" / split, n):
        image = load_image(path, 3)
        human = read_bsds_ground_truth(truth)[0]
        row = [image, mark_boundaries(image, human, color=(1, 0, 0))]
        for method in methods:
            best = result["methods"][method]["ods"]["covering_parameter"]
            row.append(mark_boundaries(image, best_segmentation(method, image, best, loaded), color=(1, 1, 0)))
        rows.append([(np.asarray(v) * (255 if np.asarray(v).dtype != np.uint8 else 1)).astype(np.uint8) for v in row])
    titles = ["photo", "a human segmentation"] + [
        f"{m} ({result['methods'][m]['ods']['covering_parameter']})" for m in methods]
    panel_figure(rows, titles, png, height=2.2)


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
    print(region_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.overlays:
        overlays(Path(args.data), result, [m.strip() for m in args.methods.split(",")], args.model, args.overlays,
                 args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
