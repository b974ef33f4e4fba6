"""Texture cues for the region method on BSDS500: none, a model's atom histograms, or textons (each cell's
nearest of K k-means centroids, gPb's texton counts) of the model's latent (``textonsK``) or of its codes
(``code-textonsK``: SC-VAE's sparse codes as vectors; ``decoder-textonsK``: the codes read through the
dictionary, D a, the decoder's input), each at a texture weight.

For every ``TEXTURE@WEIGHT`` config the hierarchy's level is chosen at ODS on the first ``--tune`` train
images and then applied to ``--split``; the textons' centroids are fitted on the last ``--fit`` train images,
so neither choice sees the scored split (``--fit-on split``: on the scored photos, without their labels, as
``scvae segment --texture textons`` fits on the photos it is given). Each config's seconds per scored photo
(its texture and hierarchy; the textons' fit once, spread over the photos) are timed in the same run as
Felzenszwalb-Huttenlocher's at its fixed scale on the same photos. A config may also set the merging's
other options (``MergeOptions`` fields: ``textons128@2+boundary_weight=3``); ``--tune-only`` scores the
configs on the train images alone, to choose among them without seeing ``--split``. Prints a table and
writes JSON:

    python bench/region_textons.py --data ../shared/data/bsds500 --model RUN \\
        --configs none@1,atoms@1,textons32@2 --json textons.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

from scvae.data import load_image
from scvae.downstream.region_benchmark import read_bsds_ground_truth
from scvae.downstream.region_merging import MergeOptions, atom_histograms, build_hierarchy, textons
from scvae.downstream.region_methods import FIXED, LEVELS, bsds_pairs, score_hierarchies, segmenter
from scvae.errors import ScvaeError

# a texture weight of 2 can double the merging costs, so the sweep goes past the region method's highest level
SWEEP = list(LEVELS) + [2.0, 2.25, 2.5, 2.8]
# textonsK: K textons of the latent; code-: of the codes; decoder-: of D a
TEXTONS = re.compile(r"(code-|decoder-)?textons([1-9][0-9]*)")
TEXTON_SPACES = {None: "latent", "code-": "codes", "decoder-": "decoder"}


def texture(name: str, model, fit_images: list):
    """``none`` -> None; ``atoms`` -> the atom histograms; ``[code-|decoder-]textonsK`` -> K textons fitted on
    ``fit_images`` (uint8 (H, W, 3) photos)."""
    if name == "none":
        return None
    if name == "atoms":
        return atom_histograms(model)
    parsed = TEXTONS.fullmatch(name)
    return textons(model, fit_images, int(parsed[2]), space=TEXTON_SPACES[parsed[1]])


def load_photos(pairs) -> list[tuple]:
    """(image, ground truth path) pairs -> (uint8 (H, W, 3) photo, its human segmentations), read once for
    every config."""
    return [(load_image(path, 3), read_bsds_ground_truth(truth)) for path, truth in pairs]


def scores(photos, cue, weight: float, fixed=None, **merge) -> dict:
    """The region benchmark over SWEEP's levels for one texture cue and weight (and other ``MergeOptions``
    fields in ``merge``), with the seconds per photo of the texture and the hierarchy (``sec_per_image``)."""
    options = MergeOptions(texture_weight=weight, **merge)
    return score_hierarchies(photos, lambda image: build_hierarchy(image, None if cue is None else cue(image), options),
                             SWEEP, fixed)


def config_label(row: dict) -> str:
    return f"{row['texture']} @ {row['weight']:g}" + "".join(f" +{k}={v:g}" for k, v in row["merge"].items())


def felzenszwalb_seconds(photos) -> float:
    """Felzenszwalb-Huttenlocher's seconds per photo at its fixed scale: the speed reference."""
    segment, start = segmenter("felzenszwalb"), time.perf_counter()
    for image, _ in photos:
        segment(image, FIXED["felzenszwalb"])
    return (time.perf_counter() - start) / len(photos)


def parse_configs(text: str) -> list[tuple[str, float, dict]]:
    """``TEXTURE@WEIGHT[+FIELD=VALUE...],...`` -> (texture, weight, {MergeOptions field: number}) per config,
    e.g. ``textons128@2+boundary_weight=3``."""
    fields = {f.name for f in dataclasses.fields(MergeOptions)} - {"texture_weight", "work_size"}
    configs = []
    for item in text.split(","):
        head, *settings = item.strip().split("+")
        name, _, weight = head.partition("@")
        if name not in ("none", "atoms") and not TEXTONS.fullmatch(name):
            raise ScvaeError(f"unknown texture {name!r} in {item!r}; choose none, atoms, textonsK, "
                             "code-textonsK or decoder-textonsK (e.g. textons128)")
        merge = {}
        for setting in settings:
            key, _, value = setting.partition("=")
            if key not in fields:
                raise ScvaeError(f"config {item!r}: {key!r} is not a merge option; choose from {sorted(fields)}")
            try:
                merge[key] = float(value)
            except ValueError:
                raise ScvaeError(f"config {item!r}: {key} must be a number, e.g. {key}=2") from None
        try:
            configs.append((name, float(weight or 1.0), merge))
        except ValueError:
            raise ScvaeError(f"config {item!r}: the weight after @ must be a number, e.g. textons32@2") from None
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the bsds500 folder (images/, groundTruth/)")
    parser.add_argument("--model", required=True, help="a trained run")
    parser.add_argument("--configs", default="none@1,atoms@1,textons32@2", help="TEXTURE@WEIGHT,...")
    parser.add_argument("--split", default="val")
    parser.add_argument("--tune", type=int, default=40, help="first train images: the level is chosen on them")
    parser.add_argument("--fit", type=int, default=60, help="last train images: the textons are fitted on them")
    parser.add_argument("--fit-on", choices=["train", "split"], default="train",
                        help="fit the textons on the last --fit train images, or on the scored photos themselves "
                             "(no labels; what scvae segment --texture textons does with the photos it is given)")
    parser.add_argument("--limit", type=int, help="score only the first N images of --split")
    parser.add_argument("--tune-only", action="store_true",
                        help="score the configs on the --tune train images only, to choose among them without "
                             "seeing --split")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    data = Path(args.data)
    try:
        configs = parse_configs(args.configs)
        train = bsds_pairs(data / "images/train", data / "groundTruth/train")
        if args.tune + args.fit > len(train):
            raise ScvaeError(f"--tune {args.tune} + --fit {args.fit} exceed the {len(train)} train images")
        split = bsds_pairs(data / "images" / args.split, data / "groundTruth" / args.split, args.limit)
        from scvae.training import load_model

        model = load_model(args.model)
        if args.tune_only and args.fit_on == "split":
            raise ScvaeError("--tune-only fits the textons on train: drop --fit-on split")
        tune_photos, photos = load_photos(train[:args.tune]), ([] if args.tune_only else load_photos(split))
        fit_images = ([image for image, _ in photos] if args.fit_on == "split"
                      else [load_image(path, 3) for path, _ in train[len(train) - args.fit:]])
        rows, reference = [], (None if args.tune_only else felzenszwalb_seconds(photos))
        for name, weight, merge in configs:
            start = time.perf_counter()
            cue = texture(name, model, fit_images)
            fit_seconds = time.perf_counter() - start
            tuned = scores(tune_photos, cue, weight, **merge)
            level = tuned["ods"]["covering_parameter"]
            print(f"{name}@{weight} {merge}: train ODS covering {tuned['ods']['covering']:.4f} at level {level}",
                  file=sys.stderr)
            if args.tune_only:
                rows.append({"texture": name, "weight": weight, "merge": merge, "level": level,
                             "tune_covering": tuned["ods"]["covering"], "tune": tuned["ods"]})
                continue
            scored = scores(photos, cue, weight, level, **merge)
            per_photo = scored["sec_per_image"] + fit_seconds / len(photos)
            rows.append({"texture": name, "weight": weight, "merge": merge, "level": level, "tune_covering": tuned["ods"]["covering"],
                         "covering_at_level": scored["fixed"]["covering"], "ods": scored["ods"], "ois": scored["ois"],
                         "fit_seconds": fit_seconds, "sec_per_image": per_photo,
                         "time_to_felzenszwalb": per_photo / reference})
            print(f"{name}@{weight}: covering {scored['fixed']['covering']:.3f} at level {level}", file=sys.stderr)
    except ScvaeError as err:
        print(f"region_textons: {err}", file=sys.stderr)
        return 2
    if args.tune_only:
        print(f"BSDS500 train, the first {args.tune} images (the textons fitted on the last {args.fit})\n")
        print("| texture @ weight | ODS covering | level | PRI | VoI |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {config_label(r)} | {r['tune_covering']:.4f} | {r['level']} | {r['tune']['pri']:.3f} | "
                  f"{r['tune']['voi']:.3f} |")
        if args.json:
            Path(args.json).write_text(json.dumps({"tune": args.tune, "fit": args.fit, "rows": rows}, indent=2) + "\n")
        return 0
    print(f"BSDS500 {args.split}, {len(split)} images; level chosen on {args.tune} train images; "
          f"Felzenszwalb {reference:.3f} s a photo in the same run\n")
    print("| texture @ weight | train ODS covering | level (train) | covering at it | ODS covering | OIS | PRI ODS | "
          "VoI ODS | s/photo | x Felzenszwalb |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {config_label(r)} | {r['tune_covering']:.4f} | {r['level']} | {r['covering_at_level']:.3f} | "
              f"{r['ods']['covering']:.3f} | {r['ois']['covering']:.3f} | {r['ods']['pri']:.3f} | "
              f"{r['ods']['voi']:.3f} | {r['sec_per_image']:.3f} | {r['time_to_felzenszwalb']:.2f} |")
    if args.json:
        result = {"split": args.split, "n_images": len(split), "tune": args.tune, "fit": args.fit,
                  "fit_on": args.fit_on, "felzenszwalb_sec_per_image": reference, "rows": rows}
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
