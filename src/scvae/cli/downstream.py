"""CLI sub-commands for the downstream tasks and the report; each is a thin call into the library."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import ScvaeError
from ..presets import REGION_DEFAULTS, TEXTON_DEFAULTS
from .commands import check_images
from .outputs import claim_outputs


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ScvaeError(f"--{name} must be a positive integer, got {value}")


def png_out(args: argparse.Namespace, inputs: list[Path] = ()) -> Path:
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ScvaeError(f"{out}: --out must be a .png file")
    return claim_outputs([out], inputs, overwrite=args.overwrite)[0]


def cmd_interpolate(args: argparse.Namespace) -> int:
    from ..data import image_batch, save_grid
    from ..downstream import interpolate
    from ..training import load_model

    paths = check_images([args.image_a, args.image_b])
    check_positive("size", args.size)
    out = png_out(args, paths)
    model = load_model(args.model)
    size = args.size or model.resolution
    if size % model.downsampling_factor:
        raise ScvaeError(f"--size must be a multiple of {model.downsampling_factor}, got {size}")
    x = image_batch(paths, size, model.in_channels)
    result = interpolate(model, x[0], x[1], args.steps, args.space)
    save_grid(result.images, out, nrow=len(result.images), upscale=max(1, 96 // size))
    print(f"{args.steps} frames ({args.space} space) -> {out}; distance to A grows monotonically within "
          f"{100 * result.monotonicity_violation():.1f}% of its final value")
    return 0


def training_images(model_arg: str, data: str | None, model):
    """The training split of the run that made the model (or of ``data`` / the built-in photos)."""
    return run_datasets(model_arg, data, model)[0]


def run_datasets(model_arg: str, data: str | None, model):
    """(train, validation) splits of the run that made the model, as it split them (or of ``data`` / the
    built-in photos)."""
    from ..config import load_run_config
    from ..data import builtin_datasets, folder_datasets
    from ..training import build_datasets
    from ..training.trainer import CONFIG_FILE

    config = Path(model_arg) / CONFIG_FILE
    if config.is_file():
        run = load_run_config(config)
        if data is not None:
            run.train.data, run.train.val_data = data, None
        return build_datasets(run)
    if data is None:
        return builtin_datasets(model.resolution, model.in_channels)
    return folder_datasets(data, model.resolution, model.in_channels)


def _segment_options(args: argparse.Namespace, k: int):
    from ..downstream import SegmentOptions

    check_positive("size", args.size)
    options = SegmentOptions(k=k, position_weight=args.position_weight, whiten=args.whiten, refine=args.refine,
                             seed=args.seed)
    options.validate()
    return options


def cmd_segment(args: argparse.Namespace) -> int:
    from ..data import load_image
    from ..downstream import CodeFeatures, segment
    from ..downstream.region_merging import CODE_SIZE, MergeOptions, atom_histograms, segment_regions, textons
    from ..downstream.region_methods import drawn
    from ..training import load_model
    from ..evaluation.plots import overlay, save_labels, save_rgb

    paths = check_images(args.images)
    regions = args.method == "regions"
    if args.texture is not None and not regions:
        raise ScvaeError("--texture chooses what --method regions merges by; --method kmeans clusters the codes")
    with_textons = regions and args.texture == "textons"
    level = args.level if args.level is not None else (TEXTON_DEFAULTS if with_textons else REGION_DEFAULTS)["level"]
    if not (level > 0 and math.isfinite(level)):
        raise ScvaeError(f"--level must be a finite number > 0, got {level}")
    k = args.k if args.k is not None else 4
    options = _segment_options(args, 2 if regions and args.k is None else k)
    out = Path(args.out)
    targets = claim_outputs([out / f"{p.stem}_{kind}.png" for p in paths for kind in ("labels", "overlay")], paths,
                            overwrite=args.overwrite, sources=[p for p in paths for _ in range(2)])
    size = args.size if args.size is not None or not regions else CODE_SIZE
    model = load_model(args.model)
    merging = MergeOptions(texture_weight=TEXTON_DEFAULTS["texture_weight"]) if with_textons else None
    if with_textons:  # fitted on every photo given, so they are read (and encoded) once, up front
        photos = [load_image(path, 3) for path in paths]
        features = textons(model, photos, size=size)
    else:
        photos = None
        features = atom_histograms(model, size) if regions else CodeFeatures(model, size)
    for i, path in enumerate(tqdm(paths, desc="segment", unit="img", disable=len(paths) < 2)):
        image = photos[i] if photos is not None else load_image(path, 3)
        labels = (segment_regions(image, features(image), args.k, level, merging) if regions
                  else segment(features, image, options))
        save_labels(labels, targets[2 * i])
        save_rgb(drawn(image, labels) if regions else overlay(image, labels), targets[2 * i + 1])
    count = f"{args.k} regions" if args.k is not None else f"regions at level {level}"
    cue = features.name if with_textons else "atom histograms"
    what = f"{count} (superpixels merged by colour, {cue} and boundaries)" if regions else f"k={k} clusters"
    print(f"segmented {len(paths)} image(s) into {what} -> {out} (<name>_labels.png, <name>_overlay.png)")
    return 0


def _class_names(value: str | None) -> list[str] | None:
    """--class-names: 'Sky,Building,...' or a text file with one name per line (label 0 first)."""
    if not value:
        return None
    path = Path(value)
    if path.is_file():
        try:
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ScvaeError(f"--class-names {value}: cannot read it ({exc})") from None
    else:
        names = [name.strip() for name in value.split(",")]
    if not names or not all(names):
        raise ScvaeError(f"--class-names {value!r}: expected names separated by commas, or a file with one per line")
    return names


def cmd_segment_eval(args: argparse.Namespace) -> int:
    from ..data.masks import pair_images_with_masks
    from ..downstream import comparison_methods, evaluate_segmentation
    from ..reporting.command_files import SEGMENT_EVAL_FILES, write_segmentation_eval
    from ..downstream.segmentation_eval import check_class_names, mask_labels, segmentation_table

    check_positive("limit", args.limit)
    out = Path(args.out) if args.out else Path(args.model) / "segment_eval"
    if (args.masks is None) == (args.ground_truth is None):
        raise ScvaeError("give one of --masks DIR (one mask per image) or --ground-truth DIR (BSDS .mat files)")
    if args.ground_truth is not None:
        return _region_eval(args, out)
    pairs = pair_images_with_masks(args.images, args.masks, args.mask_suffix)[: args.limit]
    names = _class_names(args.class_names)
    labels = mask_labels(pairs, args.ignore, args.mask_mode, args.threshold) if names or args.k is None else set()
    if names:
        check_class_names(names, labels)
    if args.k is None and len(labels) < 2:
        ignored = f" once --ignore {', '.join(map(str, args.ignore))} is left out" if args.ignore else ""
        raise ScvaeError(f"the masks hold {len(labels)} class label(s){ignored}: clustering needs at least 2 "
                         "(ignore fewer labels, or give --k)")
    claim_outputs([out / name for name in SEGMENT_EVAL_FILES], overwrite=args.overwrite)
    options = _segment_options(args, args.k if args.k is not None else len(labels))
    methods = comparison_methods(args.model, args.baseline, args.size, args.position_weight)
    result = evaluate_segmentation(methods, pairs, options, args.ignore, args.mask_mode, args.threshold,
                                   args.overlays, progress=not args.no_progress, class_names=names)
    paths = write_segmentation_eval(result, out, title=f"{args.images} vs {args.masks}")
    print(segmentation_table(result) + f"\nwrote {paths['json']}, {paths['md']}, {paths['png']}")
    return 0


def _region_eval(args: argparse.Namespace, out: Path) -> int:
    """segment-eval against BSDS-style ground truth: several human segmentations per image, scored with
    covering, PRI and VoI at ODS and OIS over each method's sweep."""
    import json

    from ..downstream.region_merging import CODE_SIZE
    from ..downstream.region_methods import (NEEDS_MODEL, SWEEPS, bsds_pairs, overlay_rows, region_table,
                                             run_region_benchmark)
    from ..evaluation.plots import panel_figure
    from ..files import write_text_atomic
    from ..training import load_model

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in SWEEPS]
    if not methods or unknown:
        raise ScvaeError(f"--methods: unknown {', '.join(unknown) or 'none given'}; choose from {', '.join(SWEEPS)}")
    pairs = bsds_pairs(args.images, args.ground_truth, args.limit)
    files = [out / "region_eval.json", out / "region_eval.md", out / "overlays.png"]
    claim_outputs(files, overwrite=args.overwrite)
    model = load_model(args.model) if any(m in NEEDS_MODEL for m in methods) else None
    size = args.size if args.size is not None else CODE_SIZE
    result = run_region_benchmark(pairs, methods, model, None if args.no_progress else print, size)
    rows = overlay_rows(pairs[: args.overlays], result, model, size)
    out.mkdir(parents=True, exist_ok=True)
    table = region_table(result)
    write_text_atomic(files[0], json.dumps(result, indent=2) + "\n")
    write_text_atomic(files[1], f"# {args.images} vs {args.ground_truth}, {result['n_images']} images\n\n{table}\n")
    if rows:
        panel_figure(rows, ["photo", "a human segmentation", *methods], str(files[2]), height=2.2)
    print(table + f"\nwrote {files[0]}, {files[1]}" + (f", {files[2]}" if rows else ""))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..reporting.run_report import build_report, report_files

    out = Path(args.out) if args.out else Path(args.run) / "report.html"
    if out.suffix.lower() not in (".html", ".htm"):
        raise ScvaeError(f"{out}: --out must be an .html file")
    claim_outputs([out, *report_files(out)], overwrite=args.overwrite)
    path = build_report(args.run, out, data=args.data, progress=not args.no_progress, prior=args.prior)
    print(f"wrote {path}")
    return 0


def add_downstream_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpolate", help="decode a path between two images in code space; writes a strip PNG")
    p.add_argument("--model", required=True, help="run directory or saved model directory")
    p.add_argument("image_a"), p.add_argument("image_b")
    p.add_argument("--steps", type=int, default=8, help="frames including both ends (default 8)")
    p.add_argument("--space", default="codes", choices=["codes", "latent"],
                   help="codes: linear in codes, kept at the model's sparsity; latent: linear in D a")
    p.add_argument("--size", type=int, help="working size (default: the model's resolution)")
    p.add_argument("--out", default="interpolation.png", help="output PNG")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_interpolate)

    def clustering(p: argparse.ArgumentParser, k_help: str) -> None:
        p.add_argument("--k", type=int, help=k_help)
        p.add_argument("--position-weight", type=float, default=1.0,
                       help="weight of (y, x) in the features (default 1)")
        p.add_argument("--whiten", type=int, default=0,
                       help="cluster in the first N whitened principal components of each image (default 0: off)")
        p.add_argument("--size", type=int, help="resize the shorter side to this before encoding (default: own size)")
        p.add_argument("--refine", default="none", choices=["none", "slic"], help="edge-aware superpixel refinement")
        p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("segment", help="cluster per-position codes (image patches) into label maps and overlays")
    p.add_argument("--model", required=True, help="run directory or saved model directory")
    p.add_argument("images", nargs="+", help="image files (any size)")
    clustering(p, "clusters (kmeans, default 4) or regions (regions; default: as many as --level gives)")
    p.add_argument("--method", default="kmeans", choices=["kmeans", "regions"],
                   help="kmeans: cluster the per-position codes (--k clusters, default 4); regions: merge "
                        "superpixels by colour, atom histograms and boundaries into a hierarchy, cut at --level "
                        "(the number of regions follows the image) or at --k regions; codes at --size, default "
                        f"{REGION_DEFAULTS['code_size']}")
    p.add_argument("--texture", choices=["atoms", "textons"],
                   help="regions: the texture the merging compares: the codes' atom histograms (atoms, the "
                        f"default), or {TEXTON_DEFAULTS['n_textons']} textons of the latent (k-means centroids "
                        "fitted on all the images given, without labels; each cell counted for its nearest), "
                        f"merged at weight {TEXTON_DEFAULTS['texture_weight']:g}: 0.576 covering on BSDS500 val "
                        "against 0.544 with atoms")
    p.add_argument("--level", type=float,
                   help=f"regions: the hierarchy's cut (default {REGION_DEFAULTS['level']} with atoms, "
                        f"{TEXTON_DEFAULTS['level']} with textons, the covering-best on BSDS500 train; higher: fewer, "
                        "larger regions)")
    p.add_argument("--out", default="segments", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("segment-eval", help="score code clustering against masks, with pixel and latent baselines")
    p.add_argument("--model", required=True, help="run directory or saved model directory")
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--masks", help="folder of masks with the images' file names")
    p.add_argument("--ground-truth", help="instead of --masks: BSDS-style <name>.mat files with several human "
                                          "segmentations per image, scored with covering, PRI and VoI at ODS and OIS")
    p.add_argument("--methods", default="merge-codes,felzenszwalb,pixels",
                   help="with --ground-truth: the methods, each over its own sweep (default "
                        "merge-codes,felzenszwalb,pixels; also slic, quickshift, codes, merge)")
    clustering(p, "clusters (default: classes in the masks)")
    p.add_argument("--baseline", action="append", default=[], help="another model (VAE / VQ-VAE run) to compare")
    p.add_argument("--ignore", type=int, action="append", default=[], help="mask label to ignore (repeatable)")
    p.add_argument("--class-names", help="names of mask labels 0, 1, ...: 'sky,building,...' or a file with one "
                                         "per line; adds a colour legend to overlays.png")
    p.add_argument("--mask-mode", default="auto", choices=["auto", "binary", "index", "colour"])
    p.add_argument("--threshold", type=int, default=128, help="binary masks: value >= threshold is foreground")
    p.add_argument("--mask-suffix", default="", help="suffix of mask file stems (e.g. _mask)")
    p.add_argument("--limit", type=int, help="evaluate only the first N pairs")
    p.add_argument("--overlays", type=int, default=4, help="images shown in overlays.png (default 4)")
    p.add_argument("--out", help="output folder (default: RUN/segment_eval)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_segment_eval)

    p = sub.add_parser("report", help="one self-contained HTML page of a run")
    p.add_argument("run", help="run directory")
    p.add_argument("--data", help="images for the report's examples (default: the run's data)")
    p.add_argument("--prior", help="a learned prior of the run (scvae prior train): its samples are shown too")
    p.add_argument("--out", help="output HTML file (default RUN/report.html)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_report)
