"""Unsupervised segmentation on the shared datasets: SC-VAE code clustering against its baselines.

For each dataset, every method (the model's codes, optional baseline models' latents, pixels) clusters
the same images with the same k, position weight and refinement; scores are Hungarian-matched mIoU and
pixel accuracy, ARI and NMI (see scvae.downstream.segmentation_metrics). Prints one table and writes
bench/results/segmentation.json plus an overlay PNG per dataset.

    python bench/segmentation_benchmarks.py --model runs/x [--baseline runs/vae --baseline runs/vq]
        [--data-root ../shared/data | $SCVAE_SHARED_DATA] [--datasets horse,camvid,isbi,bsds500] [--limit N]
        [--regions] [--split val]

``--regions`` puts the region method (superpixels merged by colour, boundaries and the codes' atom
histograms, cut at k regions) first, so the paired mIoU intervals are its margins over the others.

``bsds500`` is scored differently: against all its annotators with covering, PRI and VoI at ODS, OIS and each
method's fixed parameter (chosen on train), every method over its own sweep
(scvae.downstream.region_methods); ``--split`` picks train or val.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

from scvae.data.masks import pair_images_with_masks
from scvae.downstream import CodeFeatures, SegmentOptions, comparison_methods, evaluate_segmentation
from scvae.downstream.region_methods import SWEEPS, bsds_pairs, region_table, run_region_benchmark
from scvae.downstream.segmentation_eval import result_json
from scvae.reporting.command_files import write_segmentation_eval

# name: (images, masks, k, ignore) relative to the data root (layouts of ../shared/data, see its README)
DATASETS = {
    "horse": ("weizmann_horse/rgb", "weizmann_horse/figure_ground", 2, ()),
    "camvid": ("camvid/test", "camvid/testannot", 11, (11,)),
    "isbi": ("isbi2012_em_membrane/image", "isbi2012_em_membrane/label", 2, ()),
}
CLASS_NAMES = {  # mask label i is named at position i (the CamVid order is SegNet's, see the data README)
    "horse": ["background", "horse"],
    "camvid": ["sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian",
               "bicyclist", "void"],
    "isbi": ["membrane", "cell"],
}


def bsds500(root: Path, split: str, names: list[str], model, limit: int | None) -> dict:
    """The region benchmark on BSDS500 ``split``; prints its table and returns its JSON."""
    pairs = bsds_pairs(root / "bsds500/images" / split, root / "bsds500/groundTruth" / split, limit)
    t0 = time.perf_counter()
    result = {"split": split, **run_region_benchmark(pairs, names, model, progress=print)}
    result["seconds"] = time.perf_counter() - t0
    print(f"\nBSDS500 {split}, {result['n_images']} images (parameter at ODS in brackets)\n\n{region_table(result)}\n",
          flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--baseline", action="append", default=[])
    p.add_argument("--data-root", default=os.environ.get("SCVAE_SHARED_DATA", "../shared/data"))
    p.add_argument("--datasets", default="horse,camvid,isbi")
    p.add_argument("--limit", type=int, help="first N images of each dataset")
    p.add_argument("--size", type=int, help="shorter side to encode at (default: own size)")
    p.add_argument("--position-weight", type=float, default=1.0)
    p.add_argument("--whiten", type=int, default=0)
    p.add_argument("--refine", default="none", choices=["none", "slic"])
    p.add_argument("--regions", action="store_true", help="the region method first (margins over the others)")
    p.add_argument("--split", default="val", help="bsds500: the split (default val)")
    p.add_argument("--bsds-methods", default=",".join(SWEEPS), help="bsds500: the methods (default: all)")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    root, out = Path(args.data_root), Path(args.out)
    methods = comparison_methods(args.model, args.baseline, args.size, args.position_weight, regions=args.regions)
    summary = {"model": args.model, "baselines": args.baseline, "size": args.size,
               "position_weight": args.position_weight, "whiten": args.whiten, "refine": args.refine, "datasets": {}}
    print("| dataset | k | images | method | mIoU | pixel acc | ARI | NMI | s/image |\n" + "|---" * 9 + "|")
    for name in args.datasets.split(","):
        if name == "bsds500":
            model = next(m.model for m in methods if isinstance(m, CodeFeatures))  # the --model run, loaded once
            summary["datasets"][name] = bsds500(root, args.split, args.bsds_methods.split(","), model, args.limit)
            continue
        images, masks, k, ignore = DATASETS[name]
        pairs = pair_images_with_masks(root / images, root / masks)[: args.limit]
        options = SegmentOptions(k=k, position_weight=args.position_weight, whiten=args.whiten, refine=args.refine)
        t0 = time.perf_counter()
        result = evaluate_segmentation(methods, pairs, options, ignore, progress=True, class_names=CLASS_NAMES[name])
        write_segmentation_eval(result, out / f"segmentation_{name}", title=name)
        summary["datasets"][name] = result_json(result)
        summary["datasets"][name]["seconds"] = time.perf_counter() - t0
        for method, s in result["methods"].items():
            print(f"| {name} | {k} | {s['n_images']} | {method} | {s['miou']:.3f} | {s['pixel_accuracy']:.3f} | "
                  f"{s['ari']:.3f} | {s['nmi']:.3f} | {s['sec_per_image']:.2f} |", flush=True)
        for other, d in result["paired_miou_difference"]["minus"].items():
            print(f"  {name}: {methods[0].name} mIoU minus {other}: {d['difference']:+.4f}, "
                  f"95 % bootstrap interval [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "segmentation.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
