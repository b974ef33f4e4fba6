"""Few-label segmentation: a linear classifier per position on frozen features of every family, trained on
1, 5 and 20 labelled images and scored by mIoU on the rest, against pixels + position, with paired
bootstrap intervals (``scvae.downstream.few_label``). Prints one table per dataset and writes JSON:

    python bench/few_label_segmentation.py --runs runs/probe/scvae runs/probe/ae runs/probe/vqvae-strong \\
        runs/probe/fsq --datasets horse,camvid --labelled 1,5,20 --json docs/results/few_label.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scvae.data.masks import load_pair, pair_images_with_masks
from scvae.downstream.few_label import UPSAMPLING, few_label_segmentation, paired_margin
from scvae.downstream.segmentation import CODE_SPACES, CodeFeatures, KMeansCodes, PixelFeatures
from scvae.errors import ScvaeError
from scvae.training import load_model

# name: (images, masks, ignored labels) relative to the data root (layouts of ../shared/data, see its README)
DATASETS = {"horse": ("weizmann_horse/rgb", "weizmann_horse/figure_ground", ()),
            "camvid": ("camvid/test", "camvid/testannot", (11,))}
PIXELS = "pixels + position"


def space_features(model, space: str, size: int, images: list):
    """One run's features in one space; ``kmeans`` is fitted on ``images``, never on their masks."""
    if space == "kmeans":
        return KMeansCodes(CodeFeatures(model, size, space="latent")).fit(images)
    if space not in CODE_SPACES:
        raise ScvaeError(f"unknown space {space!r}; choose from {', '.join((*CODE_SPACES, 'kmeans'))}")
    return CodeFeatures(model, size, space=space)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run directories, one per family")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--datasets", default="horse,camvid")
    parser.add_argument("--labelled", default="1,5,20")
    parser.add_argument("--draws", type=int, default=3, help="random labelled sets per number")
    parser.add_argument("--size", type=int, default=128, help="shorter side the images are encoded at")
    parser.add_argument("--limit", type=int, help="images per dataset (default: all)")
    parser.add_argument("--spaces", default="codes",
                        help="comma-separated: codes (SC-VAE's sparse codes, a VQ's code vectors, an AE's latent), "
                             "decoder (what the decoder receives: SC-VAE's D a), latent (the bottleneck's input) "
                             "and/or kmeans (the latent's k-means triangle codes, as the probe's kmeans feature, "
                             "fitted on each dataset's images without their labels); each run is scored in each")
    parser.add_argument("--upsample", choices=UPSAMPLING, default=UPSAMPLING[0],
                        help="cell predictions to pixels: bilinear class probabilities, or nearest labels (the tables "
                             "before 2026-12)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    try:
        spaces = args.spaces.split(",")
        models = {Path(run).name: load_model(run) for run in args.runs}
        report = {}
        for dataset in args.datasets.split(","):
            images, masks, ignore = DATASETS[dataset]
            root = Path(args.data_root)
            pairs = [load_pair(i, m) for i, m in pair_images_with_masks(root / images, root / masks)[:args.limit]]
            methods, unlabelled = {PIXELS: PixelFeatures(args.size)}, [image for image, _ in pairs]
            for run_name, model in models.items():
                for space in spaces:
                    name = run_name if len(spaces) == 1 else f"{run_name} ({space})"
                    methods[name] = space_features(model, space, args.size, unlabelled)
            report[dataset] = {}
            for n in (int(v) for v in args.labelled.split(",")):
                results = few_label_segmentation(methods, pairs, n, args.draws, ignore, progress=print,
                                                 upsample=args.upsample)
                rows = {}
                for name, result in results.items():
                    margin = paired_margin(result, results[PIXELS]) if name != PIXELS else None
                    rows[name] = {"miou": result.miou, "draws": result.draws, "minus_pixels": margin}
                report[dataset][n] = rows
                print(f"\n{dataset}, {n} labelled image(s), {len(pairs) - n} scored, {args.draws} draws\n\n"
                      "| features | mIoU | minus pixels + position [95 %] |\n|---|---|---|")
                for name, row in rows.items():
                    m = row["minus_pixels"]
                    interval = "-" if m is None else f"{m['difference']:+.3f} [{m['ci'][0]:+.3f}, {m['ci'][1]:+.3f}]"
                    print(f"| {name} | {row['miou']:.3f} | {interval} |")
                print(flush=True)
    except (ScvaeError, OSError, KeyError) as err:
        print(f"few_label_segmentation: {err}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps({"size": args.size, "draws": args.draws, "upsample": args.upsample,
                                               "datasets": report},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
