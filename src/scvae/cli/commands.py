"""The CLI's sub-commands; each parses nothing itself and calls the library."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import ScvaeError
from .outputs import claim_outputs

# torch and the library are imported inside each command, so that `scvae --help` answers at once.


def check_images(paths: list[str]) -> list[Path]:
    out = [Path(p) for p in paths]
    for p in out:
        if p.is_dir():
            raise ScvaeError(f"{p}: is a folder; expected an image file")
        if not p.is_file():
            raise ScvaeError(f"{p}: no such image file")
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from ..config import load_run_config, resolve_config
    from ..training import train
    from ..training.run_dir import recover_replaced_runs
    from ..training.trainer import CONFIG_FILE

    if args.model_type_deprecated:
        if args.model_type:
            raise ScvaeError("give the model type once, with --model-type")
        print("scvae: warning: `train --model` is deprecated (other commands take a run there); use --model-type",
              file=sys.stderr)
        args.model_type = args.model_type_deprecated
    out = Path(args.out)
    if os.environ.get("RANK", "0") == "0":  # a killed --overwrite start: the old run's config is the one to read
        recover_replaced_runs(out)
    if args.resume and (out / CONFIG_FILE).is_file():
        run = load_run_config(out / CONFIG_FILE)
        if args.steps is not None:
            if args.steps < 1:
                raise ScvaeError(f"steps must be a positive integer, got {args.steps}")
            run.train.steps = args.steps
        if args.overrides or args.config or args.preset or args.data:
            raise ScvaeError("--resume continues the stored config; only --steps may change")
    else:
        run = resolve_config(args.preset, args.model_type, args.config, args.overrides,
                             steps=args.steps, data=args.data, val_data=args.val_data)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(run.to_dict(), sort_keys=False), end="")
        return 0
    result = train(run, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                   command=getattr(args, "command_line", None))
    if result.rank != 0:  # under torchrun only rank 0 validates and reports
        return 0
    v = result.last_val
    line = f"done: {result.step} steps in {out}; val PSNR {v.get('psnr', float('nan')):.2f} dB, SSIM {v.get('ssim', float('nan')):.3f}"
    if "active_frac" in v:
        line += (f", active atoms {v['active_mean']:.1f}/{v['n_atoms']} ({100 * v['active_frac']:.1f}%), "
                 f"atoms used {v['atoms_used']}/{v['n_atoms']} (perplexity {v.get('perplexity', float('nan')):.1f})")
    print(line)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from ..data import image_batch, save_grid, save_image
    from ..training import load_model

    paths = check_images(args.images)
    size = size_argument(args.size)
    out = Path(args.out)
    names = [f"{path.stem}.png" for path in paths]
    if args.side_by_side:
        names += [f"{path.stem}_side_by_side.png" for path in paths]
    targets = claim_outputs([out / name for name in names], paths, overwrite=args.overwrite,
                            sources=paths * (2 if args.side_by_side else 1))
    model = load_model(args.model)
    for i, path in enumerate(paths):
        if size is None:  # the model's own crop: shorter side to its resolution, centre crop
            x = image_batch([path], model.resolution, model.in_channels)
        else:
            x = whole_image(path, size, model, tiled=True)
        y = model.reconstruct_any_size(x)
        save_image(y[0], targets[i])
        if args.side_by_side:
            save_grid(torch.cat([x, y]), targets[len(paths) + i], nrow=2)
    print(f"wrote {len(paths)} reconstruction(s) to {out}")
    if size is None:
        crop_note(paths, model, "reconstructed", "reconstructs whole images (tiled)")
    return 0


def crop_note(paths: list[Path], model, done: str, full: str) -> None:
    """Say in one line when the model's centre crop left out part of an image."""
    from PIL import Image

    cropped = 0
    for path in paths:
        with Image.open(path) as img:
            cropped += img.size != (model.resolution, model.resolution)
    if cropped:
        print(f"note: {done} the central {model.resolution}x{model.resolution} crop (shorter side resized to "
              f"{model.resolution}) of {cropped} image(s) of another size; --size full {full}")


def whole_image(path: Path, size: int | str, model, *, tiled: bool = False, allow_slow: bool = False):
    """(1, C, H, W): the whole image at its own size ('full') or with its shorter side resized to ``size``;
    refused in one line, before anything is allocated at that size, if the model's pass would not fit in
    memory, or (one pass over the whole image, not ``tiled``) would take hours without ``allow_slow``. Each
    refusal names a size that fits with room to spare."""
    import math

    from ..data import load_image
    from ..data.images import resize_shorter, to_tensor
    from ..resources import ADVICE_SHARE, COMPUTE_LIMIT, HEADROOM, available_bytes, require_compute, require_memory

    arr = load_image(path, model.in_channels)
    h, w = arr.shape[:2]
    scale = 1.0 if size == "full" else size / min(h, w)
    height, width = max(1, round(h * scale)), max(1, round(w * scale))
    f, what = model.downsampling_factor, f"{path.name} at {width}x{height} px"
    needed = model.activation_bytes(height, width)
    budget = ADVICE_SHARE * HEADROOM * available_bytes(next(model.parameters()).device)
    largest = int(min(height, width) * math.sqrt(budget / needed)) if needed > budget else min(height, width)
    require_memory(needed, what, next(model.parameters()).device,
                   f"--size {max(f, largest // f * f)} or less would fit with room to spare")
    if not tiled and not allow_slow:
        flops = model.inference_flops(height, width)
        if flops > COMPUTE_LIMIT:
            pixels = model.pixels_within_flops(0.1 * COMPUTE_LIMIT)  # a tenth of the limit: about a minute
            side = max(f, int(min(height, width) * math.sqrt(pixels / (height * width))) // f * f)
            require_compute(flops, what, f"--size {side} or less takes about a minute, or pass --allow-slow")
    return to_tensor(arr if size == "full" else resize_shorter(arr, size))[None]


def size_argument(text: str | None) -> int | str | None:
    if text is None or text == "full":
        return text
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise ScvaeError(f"--size must be 'full' or a positive integer, got {text!r}")
    return size


def cmd_encode(args: argparse.Namespace) -> int:
    import torch

    from ..data import image_batch
    from ..sparse import save_codes
    from ..training import load_model

    from types import SimpleNamespace

    from ..evaluation import SparseCodeDiagnostics

    paths = check_images(args.images)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ScvaeError(f"{out}: --out must end in .safetensors")
    claim_outputs([out], paths, overwrite=args.overwrite)
    size = size_argument(args.size)
    model = load_model(args.model)
    meta = {"model_type": model.model_type, "files": json.dumps([str(p) for p in paths])}
    if size is None:  # the model's centre crop of every image: one (N, K, h, w) tensor
        codes = torch.cat([model.encode(image_batch([p], model.resolution, model.in_channels)).codes for p in paths])
        layout = save_codes(str(out), codes, meta)
    else:  # whole images, each on its own grid: one tensor per image, "codes.<i>" in the order of the files
        images = [whole_image(p, size, model, allow_slow=args.allow_slow) for p in paths]
        per_image = [model.encode_any_size(x).codes for x in images]
        meta["pixel_sizes"] = json.dumps([list(x.shape[-2:]) for x in images])
        layout = save_codes(str(out), per_image, meta)
        codes = torch.cat([t.flatten(2) for t in per_image], dim=2)[..., None]  # (1, K, P, 1) for the stats
    if size is None:
        crop_note(paths, model, "encoded", "encodes whole images, each on its own grid")
    shapes = f"{tuple(codes.shape)}" if size is None else f"{len(paths)} tensors (1, K, h_i, w_i)"
    line = f"codes {shapes} -> {out}"
    if layout == "packed":
        line += " (packed: active atoms' indices and values; read with scvae.sparse.load_codes)"
    if model.sparse_codes:
        stats = SparseCodeDiagnostics()
        stats.update(SimpleNamespace(codes=codes))
        r = stats.result()
        line += (f"; active atoms per code: mean {r['active_mean']:.2f} ({100 * r['active_frac']:.1f}% of "
                 f"{r['n_atoms']}), median {r['active_median']:.0f}, max {r['active_max']}; "
                 f"atoms used: {r['atoms_used']}/{r['n_atoms']} (perplexity {r['perplexity']:.1f})")
    print(line)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation.report import evaluate_source
    from ..reporting.command_files import EVAL_FILES, write_eval
    from ..training import load_model

    if args.batch_size < 1:
        raise ScvaeError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.limit is not None and args.limit < 1:
        raise ScvaeError(f"--limit must be a positive integer, got {args.limit}")
    if args.size is not None and args.size < 1:
        raise ScvaeError(f"--size must be a positive integer, got {args.size}")
    weights = _metric_weights(args)
    out = Path(args.out) if args.out else Path(args.model) / "eval"
    claim_outputs([out / name for name in EVAL_FILES], overwrite=args.overwrite)
    model = load_model(args.model)
    result = evaluate_source(model, args.data, args.batch_size, args.limit, weights, size=args.size)
    for line in result["skipped"]:
        print(line)
    paths = write_eval(result, out)
    m = result["metrics"]
    print(f"{result['data']['n_images']} images ({result['data']['crop_size']} px crops): PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, "
          f"{m['bits_per_image']:.0f} bits per image ({m['bits_per_pixel']:.3f} bits per pixel); "
          f"wrote {paths['json']}, {paths['md']}, {paths['png']}")
    return 0


def _metric_weights(args: argparse.Namespace):
    from ..evaluation.perceptual import MetricWeights

    return MetricWeights(args.lpips_vgg, args.lpips_lin, args.inception_weights).check()


def cmd_compare(args: argparse.Namespace) -> int:
    from ..compare import compare

    models = _model_list(args.models)
    compare(args.out, models, args.preset, args.steps, args.data, args.overrides, overwrite=args.overwrite,
            progress=not args.no_progress, metric_weights=_metric_weights(args))
    print(Path(args.out, "compare.md").read_text())
    return 0


def cmd_rd(args: argparse.Namespace) -> int:
    from ..rate_distortion import rate_distortion

    families = _model_list(args.families)
    rate_distortion(args.out, families, args.preset, args.steps, args.data, args.overrides, overwrite=args.overwrite,
                    progress=not args.no_progress)
    print(Path(args.out, "rd.md").read_text() + f"figure: {Path(args.out, 'rd.png')}")
    return 0


def _model_list(text: str) -> list[str]:
    from ..config import model_class

    models = [m.strip() for m in text.split(",") if m.strip()]
    if not models:
        raise ScvaeError("the list of models is empty")
    for m in models:
        model_class(m)
    return models


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_onnx
    from ..training import load_model

    out = Path(args.out)
    claim_outputs([out / "encoder.onnx", out / "decoder.onnx"], overwrite=args.overwrite)
    paths = export_onnx(load_model(args.model), out)
    print(f"wrote {paths['encoder']} (images -> codes) and {paths['decoder']} (codes -> images); "
          "dynamic batch and image size")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from ..presets import PRESETS

    for name, spec in PRESETS.items():
        print(f"{name:12s} {spec['description']}")
    return 0
