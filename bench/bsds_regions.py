"""The BSDS500 region benchmark: scikit-image's bottom-up segmenters, k-means on pixels + position and on an
SC-VAE's codes, each over its own parameter sweep, scored against every annotator with covering, PRI and
VoI at ODS and OIS (:mod:`scvae.downstream.region_benchmark`), with the time per image.

    python bench/bsds_regions.py --data ../shared/data/bsds500 --split val [--model runs/x] [--limit 20] \\
        [--methods felzenszwalb,slic,quickshift,pixels,codes] [--json bsds.json] [--overlays 4 --png overlays.png]

``--overlays N`` draws the first N images: the photo, the first human segmentation, and each method's
segmentation at its fixed parameter (chosen on train), with region boundaries.

k-means labels are scored as they come: one region per cluster, connected or not.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scvae.downstream.region_methods import (bsds_pairs, overlay_rows, region_table, run_region_benchmark,
                                             shown_parameters)
from scvae.errors import ScvaeError


def load(model_dir: str | None):
    if model_dir is None:
        return None
    from scvae.training import load_model

    return load_model(model_dir)


def overlays(pairs, result: dict, model, png: str) -> None:
    """The photo, one human segmentation and each method at its fixed parameter, boundaries drawn."""
    from scvae.evaluation.plots import panel_figure

    titles = ["photo", "a human segmentation"] + [f"{m} ({p})" for m, p in shown_parameters(result).items()]
    panel_figure(overlay_rows(pairs, result, model), titles, png, height=2.2)


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
    data, methods = Path(args.data), [m.strip() for m in args.methods.split(",")]
    try:
        pairs = bsds_pairs(data / "images" / args.split, data / "groundTruth" / args.split, args.limit)
        model = load(args.model)
        result = {"split": args.split, **run_region_benchmark(
            pairs, methods, model, lambda line: print(line, file=sys.stderr, flush=True))}
    except ScvaeError as err:
        print(f"bsds_regions: {err}", file=sys.stderr)
        return 2
    print(f"BSDS500 {result['split']}, {result['n_images']} images (parameter at ODS in brackets)\n")
    print(region_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.overlays:
        overlays(pairs[: args.overlays], result, model, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
