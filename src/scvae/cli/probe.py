"""``scvae probe``: how good a representation a model's codes are, by linear and k-NN probes on labelled
folders (``ROOT/<class>/<image>``); a thin call into :func:`scvae.downstream.probe.probe`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ScvaeError
from .outputs import claim_outputs


def cmd_probe(args: argparse.Namespace) -> int:
    from ..data.labelled import class_folders, load_labelled, stratified_split
    from ..downstream.features import ANCHOR_FEATURES, DEFAULT_FEATURES, feature_name, parse_features
    from ..downstream.probe import probe
    from ..files import write_text_atomic
    from ..training import load_model

    features = [f.strip() for f in (args.features or "").split(",") if f.strip()]
    if not features:
        features = list(DEFAULT_FEATURES if args.model else ()) + list(ANCHOR_FEATURES if args.anchors or not args.model else ())
    specs = [parse_features(f) for f in features]  # every name checked before any work
    needing_model = [feature_name(parts) for parts in specs if any(s.needs_model for s in parts)]
    if args.model is None and needing_model:
        raise ScvaeError(f"features {', '.join(needing_model)} need --model")
    if args.test_data is not None and args.test_fraction is not None:
        raise ScvaeError("give --test-data or --test-fraction, not both")
    if args.size is not None and args.size < 8:
        raise ScvaeError(f"--size must be at least 8, got {args.size}")
    class_folders(args.data)
    if args.test_data is not None:
        class_folders(args.test_data)
    json_path = claim_outputs([Path(args.json)], overwrite=args.overwrite)[0] if args.json else None
    model = load_model(args.model) if args.model else None
    size = args.size or (model.resolution if model is not None else 32)
    train = load_labelled(args.data, size, model.in_channels if model is not None else 3)
    if args.test_data is not None:
        test = load_labelled(args.test_data, size, train.images.shape[1], classes=train.classes)
    else:
        train_idx, test_idx = stratified_split(train.labels, args.test_fraction or 0.1, args.seed)
        train, test = train.subset(train_idx), train.subset(test_idx)
    print(f"probing {len(specs)} feature(s): {len(train.labels)} training and {len(test.labels)} test images, "
          f"{len(train.classes)} classes, {size} px")
    result = probe(train, test, [feature_name(p) for p in specs], model, knn=not args.no_knn, seed=args.seed,
                   model_name=args.model, c_selection=args.c_selection)
    print(result.table())
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0


def add_probe_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="linear and k-NN probes of a model's codes on labelled folders "
                                      "(labels = class sub-folders), against pixels and the Coates-Ng k-means recipe")
    p.add_argument("--model", help="run or model directory (leave out to score only the anchors)")
    p.add_argument("--data", required=True, help="labelled training images: DATA/<class>/<image>")
    p.add_argument("--test-data", help="labelled test images, same classes (default: hold out --test-fraction)")
    p.add_argument("--test-fraction", type=float, help="fraction of each class of --data held out for testing "
                                                      "when there is no --test-data (default 0.1)")
    p.add_argument("--features", help="comma-separated SOURCE[@D][/S]:POOLING names, e.g. codes:split-pyramid-sum, "
                                      "latent:flat, atoms:split-quadrant-sum, kmeans@2:quadrant-sum, pixels:flat, "
                                      "coates:quadrant-sum; A+B concatenates two (default: the model's best-known set)")
    p.add_argument("--anchors", action="store_true", help="add the pixel and Coates-Ng anchors to the default set")
    p.add_argument("--size", type=int, help="images are resized and centre-cropped to this (default: the model's)")
    p.add_argument("--no-knn", action="store_true", help="skip the k-NN probe")
    p.add_argument("--c-selection", choices=("holdout", "cv"), default="holdout",
                   help="how the linear probe's C is chosen on the training images: one validation fifth and a "
                        "grid of factors of 10 (holdout, default), or 3-fold cross-validation over half-decades (cv)")
    p.add_argument("--seed", type=int, default=0, help="split, validation and k-means seed")
    p.add_argument("--json", help="also write the result to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_probe)
