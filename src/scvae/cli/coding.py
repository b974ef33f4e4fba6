"""``scvae compress`` / ``scvae decompress``: real files for every family's codes (see :mod:`scvae.coding`)."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import ScvaeError
from .commands import size_argument, whole_image, check_images
from .outputs import claim_outputs

ENTROPY_MODEL = "entropy_model.safetensors"
SUFFIX = ".scvz"


def cmd_compress(args: argparse.Namespace) -> int:
    from ..coding import HEADER_BITS, ChannelEntropyModel, compress_image, fit_entropy_model
    from ..data import folder_datasets
    from ..files import write_text_atomic
    from ..training import load_model
    from .downstream import training_images

    paths = check_images(args.images)
    size = size_argument(args.size) or "full"
    if args.fit_images < 1:
        raise ScvaeError(f"--fit-images must be a positive integer, got {args.fit_images}")
    out = Path(args.out)
    targets = claim_outputs([out / f"{p.stem}{SUFFIX}" for p in paths], paths, overwrite=args.overwrite,
                            sources=paths)
    claim_outputs([out / "compress.json"] + ([] if args.entropy_model else [out / ENTROPY_MODEL]), paths,
                  overwrite=args.overwrite)
    model = load_model(args.model)
    if args.entropy_model:
        entropy_model = ChannelEntropyModel.load(args.entropy_model)
    else:
        fit_set = (folder_datasets(args.fit_data, model.resolution, model.in_channels)[0] if args.fit_data
                   else training_images(args.model, None, model))
        entropy_model = fit_entropy_model(model, fit_set, args.fit_images, context=args.context)
        entropy_model.save(out / ENTROPY_MODEL)
    records = []
    for path, target in zip(paths, targets):
        x = whole_image(path, size, model, allow_slow=args.allow_slow)
        t0 = time.perf_counter()
        encoded = compress_image(model, entropy_model, x)
        seconds = time.perf_counter() - t0
        target.write_bytes(encoded.data)
        records.append({"image": str(path), "file": target.name, "bits": 8 * len(encoded.data),
                        "ideal_bits": float(entropy_model.bits(encoded.symbols.cpu())[0]),
                        "pixels": int(x.shape[-1] * x.shape[-2]), "encode_seconds": seconds})
    n = len(records)
    mean = {k: sum(r[k] for r in records) / n for k in ("bits", "ideal_bits", "pixels", "encode_seconds")}
    summary = {"model": str(args.model), "model_type": model.model_type, "step": entropy_model.step,
               "header_bits": HEADER_BITS, "mean_bits": mean["bits"], "mean_ideal_bits": mean["ideal_bits"],
               "bits_per_pixel": mean["bits"] / mean["pixels"], "encode_seconds": mean["encode_seconds"],
               "files": records}
    write_text_atomic(out / "compress.json", json.dumps(summary, indent=2) + "\n")
    payload = mean["bits"] - HEADER_BITS
    print(f"{n} file(s) -> {out}: mean {mean['bits']:.0f} bits per image ({summary['bits_per_pixel']:.3f} bpp) = "
          f"{HEADER_BITS}-bit header + {payload:.0f}; the entropy model's rate {mean['ideal_bits']:.0f} bits "
          f"(payload / rate {payload / mean['ideal_bits']:.4f}); encode {1000 * mean['encode_seconds']:.1f} ms per image")
    return 0


def bitstream_files(arguments: list[str]) -> list[Path]:
    """The ``.scvz`` files named, or inside a named folder (what ``compress --out`` wrote); other files there
    (``compress.json``, the entropy model) are skipped with a note, a missing path or no bitstream at all
    is an error."""
    paths, skipped = [], []
    for argument in arguments:
        p = Path(argument)
        if p.is_dir():
            found = sorted(p.glob(f"*{SUFFIX}"))
            skipped += [q for q in p.iterdir() if q.is_file() and q.suffix != SUFFIX]
            paths += found
        elif not p.is_file():
            raise ScvaeError(f"{p}: no such file")
        elif p.suffix != SUFFIX:
            skipped.append(p)
        else:
            paths.append(p)
    if skipped:
        print(f"skipped {len(skipped)} file(s) that are not {SUFFIX} bitstreams: "
              f"{', '.join(q.name for q in skipped[:3])}{' ...' if len(skipped) > 3 else ''}")
    if not paths:
        raise ScvaeError(f"no {SUFFIX} bitstreams among {', '.join(arguments)}")
    return paths


def cmd_decompress(args: argparse.Namespace) -> int:
    from ..coding import ChannelEntropyModel, decompress_image
    from ..data import save_image
    from ..training import load_model

    paths = bitstream_files(args.files)
    out = Path(args.out)
    targets = claim_outputs([out / f"{p.stem}.png" for p in paths], paths, overwrite=args.overwrite, sources=paths)
    entropy_model = ChannelEntropyModel.load(args.entropy_model or paths[0].parent / ENTROPY_MODEL)
    model = load_model(args.model)
    t0 = time.perf_counter()
    images = [decompress_image(model, entropy_model, path.read_bytes(), str(path))[0] for path in paths]
    seconds = time.perf_counter() - t0  # every file decoded before any is written: a damaged one writes nothing
    for image, target in zip(images, targets):
        save_image(image[0], target)
    print(f"{len(paths)} image(s) -> {out}; decode {1000 * seconds / len(paths):.1f} ms per image")
    return 0


def add_coding_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="entropy-code images into files (.scvz), one per image")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", required=True, help="run directory or saved model directory")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", help="'full' (default): each whole image; N: shorter side resized to N")
    p.add_argument("--entropy-model", help=f"a saved {ENTROPY_MODEL} (default: fit one, written to --out)")
    p.add_argument("--fit-data", help="images to fit the entropy model on (default: the run's training split)")
    p.add_argument("--fit-images", type=int, default=2000, help="crops to fit on (default 2000)")
    p.add_argument("--context", action="store_true",
                   help="fit a model with spatial context: each channel's distribution chosen by how many of the "
                        "left and up neighbours are busy (smaller files, slower decoding)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--allow-slow", action="store_true",
                   help="run a whole-image pass even when its estimated cost is hours (attention grows with the area squared)")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decode .scvz files back to PNG images")
    p.add_argument("files", nargs="+", help=".scvz files written by scvae compress, or the folder holding them")
    p.add_argument("--model", required=True, help="the model they were written with")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--entropy-model", help=f"default: {ENTROPY_MODEL} beside the first file")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_decompress)
