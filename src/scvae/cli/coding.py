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
    from ..coding import HEADER_BITS, ChannelEntropyModel, fit_entropy_model
    from ..data import folder_datasets, image_batch
    from ..files import write_text_atomic
    from ..training import load_model
    from .downstream import training_images

    paths = check_images(args.images)
    size = size_argument(args.size) or (None if args.prior else "full")
    if args.fit_images < 1:
        raise ScvaeError(f"--fit-images must be a positive integer, got {args.fit_images}")
    if args.prior and (args.entropy_model or args.context):
        raise ScvaeError("--prior codes with the learned prior; it takes no --entropy-model or --context")
    out = Path(args.out)
    targets = claim_outputs([out / f"{p.stem}{SUFFIX}" for p in paths], paths, overwrite=args.overwrite,
                            sources=paths)
    claim_outputs([out / "compress.json"] + ([] if args.entropy_model or args.prior else [out / ENTROPY_MODEL]),
                  paths, overwrite=args.overwrite)
    model = load_model(args.model)
    if args.prior:
        coder = _PriorCoder(args.prior, model)
    elif args.entropy_model:
        coder = _ChannelCoder(ChannelEntropyModel.load(args.entropy_model), model)
    else:
        fit_set = (folder_datasets(args.fit_data, model.resolution, model.in_channels)[0] if args.fit_data
                   else training_images(args.model, None, model))
        coder = _ChannelCoder(fit_entropy_model(model, fit_set, args.fit_images, context=args.context), model)
        coder.entropy_model.save(out / ENTROPY_MODEL)
    records = []
    for path, target in zip(paths, targets):
        x = (image_batch([path], model.resolution, model.in_channels) if size is None
             else whole_image(path, size, model, tiled=not args.prior, allow_slow=args.allow_slow))
        t0 = time.perf_counter()
        encoded = coder.compress(x)
        seconds = time.perf_counter() - t0
        target.write_bytes(encoded.data)
        records.append({"image": str(path), "file": target.name, "bits": 8 * len(encoded.data),
                        "ideal_bits": coder.ideal_bits(encoded.symbols), "pixels": int(x.shape[-1] * x.shape[-2]),
                        "source_bits": 8 * path.stat().st_size, "encode_seconds": seconds})
    n = len(records)
    mean = {k: sum(r[k] for r in records) / n
            for k in ("bits", "ideal_bits", "pixels", "source_bits", "encode_seconds")}
    summary = {"model": str(args.model), "model_type": model.model_type, "step": coder.step,
               "coded_with": coder.name, "header_bits": HEADER_BITS, "mean_bits": mean["bits"],
               "mean_ideal_bits": mean["ideal_bits"], "bits_per_pixel": mean["bits"] / mean["pixels"],
               "mean_source_bits": mean["source_bits"], "encode_seconds": mean["encode_seconds"], "files": records}
    write_text_atomic(out / "compress.json", json.dumps(summary, indent=2) + "\n")
    payload = mean["bits"] - HEADER_BITS
    print(f"{n} file(s) -> {out}: mean {mean['bits']:.0f} bits per image ({summary['bits_per_pixel']:.3f} bpp) = "
          f"{HEADER_BITS}-bit header + {payload:.0f}; {coder.name}'s rate {mean['ideal_bits']:.0f} bits "
          f"(payload / rate {payload / mean['ideal_bits']:.4f}); the input files hold {mean['source_bits']:.0f} "
          f"bits ({mean['bits'] / mean['source_bits']:.2f}x); encode {1000 * mean['encode_seconds']:.1f} ms per image")
    return 0


class _ChannelCoder:
    """The per-channel entropy model's files (scvae.coding)."""

    name = "the entropy model"

    def __init__(self, entropy_model, autoencoder):
        self.entropy_model, self.autoencoder, self.step = entropy_model, autoencoder, entropy_model.step

    def compress(self, x):
        from ..coding import compress_image

        return compress_image(self.autoencoder, self.entropy_model, x, reconstruct=False)

    def ideal_bits(self, symbols) -> float:
        return float(self.entropy_model.bits(symbols.cpu()).sum())  # summed over the tiles of a tiled image

    def decompress(self, data: bytes, name: str):
        from ..coding import decompress_image

        return decompress_image(self.autoencoder, self.entropy_model, data, name)


class _PriorCoder:
    """The learned prior's files (scvae.prior.coding)."""

    name = "the learned prior"

    def __init__(self, folder: str, autoencoder):
        from ..prior import LearnedPrior

        self.prior, self.autoencoder = LearnedPrior.load(folder), autoencoder
        self.step = self.prior.step

    def compress(self, x):
        from ..prior.coding import compress_with_prior

        return compress_with_prior(self.autoencoder, self.prior, x)

    def ideal_bits(self, symbols) -> float:
        return float(self.prior.bits(symbols.cpu())[0])

    def decompress(self, data: bytes, name: str):
        from ..prior.coding import decompress_with_prior

        return decompress_with_prior(self.autoencoder, self.prior, data, name)


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


def _prior_coded(path: Path) -> bool:
    """Whether the file's header says a learned prior coded it."""
    from ..coding.bitstream import MAGIC, is_prior_coded

    with open(path, "rb") as f:
        head = f.read(5)
    return len(head) == 5 and head[:4] == MAGIC and bool(is_prior_coded(head[4]))


def cmd_decompress(args: argparse.Namespace) -> int:
    from ..coding import ChannelEntropyModel
    from ..data import save_image
    from ..training import load_model

    paths = bitstream_files(args.files)
    out = Path(args.out)
    targets = claim_outputs([out / f"{p.stem}.png" for p in paths], paths, overwrite=args.overwrite, sources=paths)
    prior_coded = [p for p in paths if not args.prior and _prior_coded(p)]
    if prior_coded:  # before looking for an entropy model such a file never had
        raise ScvaeError(f"{prior_coded[0]}: was coded with a learned prior; decompress it with --prior")
    model = load_model(args.model)
    coder = (_PriorCoder(args.prior, model) if args.prior else
             _ChannelCoder(ChannelEntropyModel.load(args.entropy_model or paths[0].parent / ENTROPY_MODEL), model))
    t0 = time.perf_counter()
    images = [coder.decompress(path.read_bytes(), str(path))[0] for path in paths]
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
    p.add_argument("--size", help="'full' (default): each whole image; N: shorter side resized to N; with --prior "
                                  "the default is the model's centre crop, the grid the prior was trained on")
    p.add_argument("--prior", help="code with a learned prior (a folder from `scvae prior train`) instead of the "
                                   "per-channel entropy model")
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
    p.add_argument("--prior", help="the learned prior the files were coded with (compress --prior)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_decompress)
