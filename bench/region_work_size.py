"""The region method at the photo's own size (encoder margin 8, the method before issue 35) against the
default (merged at the codes' 160 px, margin 4): per-photo covering, PRI and VoI at the fixed level, and
their paired differences with 95 % bootstrap intervals over the photos.

    python bench/region_work_size.py --data ../shared/data/bsds500 --split val --model runs/probe/scvae \\
        [--limit 20] [--json docs/results/bsds_val100_speed_paired.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from scvae.data import load_image
from scvae.downstream.probe import paired_interval
from scvae.downstream.region_benchmark import read_bsds_ground_truth, score_image
from scvae.downstream.region_methods import FIXED, bsds_pairs
from scvae.downstream.region_merging import CODE_SIZE, MergeOptions, atom_histograms, build_hierarchy
from scvae.downstream.segmentation import CodeFeatures
from scvae.errors import ScvaeError

MEASURES = ("covering", "pri", "voi")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the bsds500 folder (images/, groundTruth/)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--model", required=True, help="an SC-VAE run")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    data = Path(args.data)
    try:
        pairs = bsds_pairs(data / "images" / args.split, data / "groundTruth" / args.split, args.limit)
        from scvae.training import load_model

        model = load_model(args.model)
    except ScvaeError as err:
        print(f"region_work_size: {err}", file=sys.stderr)
        return 2
    full_size = CodeFeatures(model, CODE_SIZE, space="codes", margin=8)
    default = atom_histograms(model)
    level, scores = FIXED["merge-codes"], {"full size": [], "default": []}
    for path, truth in pairs:
        image, truths = load_image(path, 3), read_bsds_ground_truth(truth)
        for name, hierarchy in (("full size", build_hierarchy(image, full_size(image), MergeOptions(work_size=None))),
                                ("default", build_hierarchy(image, default(image)))):
            score = score_image(hierarchy.cut_at(level), truths)
            scores[name].append([getattr(score, m) for m in MEASURES])
    before, after = np.array(scores["full size"]), np.array(scores["default"])
    result = {"n_images": len(pairs), "level": level}
    print(f"| measure at level {level} | full size, margin 8 | default | default minus full size [95 %] |\n|---|---|---|---|")
    for j, measure in enumerate(MEASURES):
        difference, low, high = paired_interval(after[:, j], before[:, j])
        result[measure] = {"before": float(before[:, j].mean()), "after": float(after[:, j].mean()),
                           "difference": difference, "interval95": [low, high]}
        print(f"| {measure} | {before[:, j].mean():.3f} | {after[:, j].mean():.3f} | {difference:+.3f} [{low:+.3f}, {high:+.3f}] |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
