"""The representation table: every family trained on one split, then probed with the same features.

Splits a labelled folder (default: the shared CIFAR-10 images) into train / test per class (10 % held out,
seed 0) as symlinked folders, trains (or reuses) one run per family on the training images only, with no
labels, and probes each family's features and the anchors (pixels, the Coates-Ng k-means recipe) with
:func:`scvae.downstream.probe.probe`. Prints one Markdown table and writes JSON:

    python bench/probe_families.py --work runs/probe --families scvae,ae,vqvae-strong,fsq --steps 1500 \\
        --json docs/results/probe_cifar.json
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from scvae.compare import train_or_reuse
from scvae.config import resolve_config
from scvae.data.labelled import class_folders, load_labelled, stratified_split
from scvae.downstream.features import ANCHOR_FEATURES
from scvae.downstream.probe import C_SELECTIONS, DEFAULT_C_SELECTION, paired_interval, probe
from scvae.errors import ScvaeError
from scvae.training import load_model

DATA = "../shared/data/cifar10_test/test"
FEATURES = ("codes:flat", "codes:split-quadrant-sum", "latent:split-quadrant-sum", "atoms:split-quadrant-sum",
            "kmeans:quadrant-sum", "kmeans@2:quadrant-sum")


def write_split(data: Path, work: Path, test_fraction: float, seed: int) -> tuple[Path, Path]:
    """Symlinked ``work/split/{train,test}/<class>/`` folders; the same files every time for one seed."""
    folders = class_folders(data)
    paths = [p for name in folders for p in folders[name]]
    labels = np.asarray([i for i, name in enumerate(folders) for _ in folders[name]])
    train_idx, test_idx = stratified_split(labels, test_fraction, seed)
    roots = work / "split" / "train", work / "split" / "test"
    for root, indices in zip(roots, (train_idx, test_idx)):
        for i in indices:
            link = root / paths[i].parent.name / paths[i].name
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(paths[i].resolve())
    return roots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA, help="labelled folder DATA/<class>/<image>")
    parser.add_argument("--work", default="runs/probe", help="split folders and one run per family")
    parser.add_argument("--families", default="scvae,ae,vqvae-strong,fsq")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--preset", default="small-32")
    parser.add_argument("--features", default=",".join(FEATURES))
    parser.add_argument("--overrides", default="", help="KEY=VALUE,... for every family's run (e.g. a seed)")
    parser.add_argument("--sc-overrides", default="", help="KEY=VALUE,... for the SC-VAE run only")
    parser.add_argument("--no-anchors", action="store_true")
    parser.add_argument("--c-selection", choices=C_SELECTIONS, default=DEFAULT_C_SELECTION,
                        help="how the linear probe's C is chosen (cv: 3-fold cross-validation, the steadier)")
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # each feature's line as it is scored
    try:
        work = Path(args.work)
        train_dir, test_dir = write_split(Path(args.data), work, 0.1, 0)
        features = [f for f in args.features.split(",") if f]
        results = {}
        for family in [f for f in args.families.split(",") if f]:
            overrides = [o for o in args.overrides.split(",") if o]
            if family == "scvae":
                overrides += [o for o in args.sc_overrides.split(",") if o]
            run = resolve_config(args.preset, family, None, overrides, steps=args.steps, data=str(train_dir))
            run_dir = work / "-".join([family, *overrides]).replace("=", "-")
            train_or_reuse(run, run_dir, None, overwrite=True, progress=True)
            model = load_model(run_dir / "checkpoints" / "last")
            train = load_labelled(train_dir, model.resolution)
            test = load_labelled(test_dir, model.resolution, classes=train.classes)
            results[run_dir.name] = probe(train, test, features, model, model_name=run_dir.name,
                                         c_selection=args.c_selection)
            print(f"\n{run_dir.name}\n{results[run_dir.name].table()}\n", flush=True)
        if not args.no_anchors:
            train = load_labelled(train_dir, 32)
            test = load_labelled(test_dir, 32, classes=train.classes)
            results["anchors"] = probe(train, test, list(ANCHOR_FEATURES), None, model_name="anchors",
                                       c_selection=args.c_selection)
    except (ScvaeError, OSError) as err:
        print(f"probe_families: {err}", file=sys.stderr)
        return 2
    rows = [(name, r) for name, result in results.items() for r in result.rows]
    best = {name: max(result.rows, key=lambda r: r.linear) for name, result in results.items()}
    print("| model | feature | dims | linear probe [95 %] | k-NN |\n|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r.feature} | {r.dims} | {100 * r.linear:.1f} % [{100 * r.linear_interval[0]:.1f}, "
              f"{100 * r.linear_interval[1]:.1f}] | {100 * (r.knn or 0):.1f} % |")
    margins = {}
    sc = [n for n in best if n.startswith("scvae")]
    for s in sc:
        for other in (n for n in best if n != s and not n.startswith("scvae")):
            diff, lo, hi = paired_interval(best[s].correct, best[other].correct)
            margins[f"{s} - {other}"] = {"best": [best[s].feature, best[other].feature], "difference": diff,
                                         "interval": [lo, hi]}
            print(f"{s} ({best[s].feature}) - {other} ({best[other].feature}): {100 * diff:+.1f} points "
                  f"[{100 * lo:+.1f}, {100 * hi:+.1f}]")
    if args.json:
        Path(args.json).write_text(json.dumps({"data": args.data, "steps": args.steps, "preset": args.preset,
                                               "results": {n: r.to_dict() for n, r in results.items()},
                                               "margins": margins}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
