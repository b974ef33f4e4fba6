"""Throughput of real files against the network alone, side by side in one process.

For one run and a folder of images at the model's resolution: images per second of ``encode`` (the network
to codes) and ``decode`` (codes to images), of ``compress`` / ``decompress`` with the per-channel entropy
model (with and without the neighbour context), and, with ``--prior``, with the learned prior. Ratios are
against the network alone, measured in the same run; the absolute times are this machine's. Prints a table,
writes JSON:

    python bench/coding_speed.py --model runs/probe/scvae --data runs/probe/split/test --images 200 \\
        --prior runs/priors/scvae --prior-images 10 --json docs/results/coding_speed.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from scvae.coding import compress_image, decompress_image, fit_entropy_model
from scvae.config import load_run_config
from scvae.data import find_images, image_batch
from scvae.prior import LearnedPrior
from scvae.prior.coding import compress_with_prior, decompress_with_prior
from scvae.training import build_datasets, load_model
from scvae.training.trainer import CONFIG_FILE


def per_second(work, items: int) -> float:
    start = time.perf_counter()
    work()
    return items / (time.perf_counter() - start)


@torch.no_grad()
def measure(model, images: torch.Tensor, coder: str, entropy_model=None, prior=None) -> dict:
    """Images per second of the network and of the files, one image at a time (as compress runs)."""
    one = [x[None] for x in images]
    codes = [model.encode(x).codes for x in one]
    encode = per_second(lambda: [model.encode(x) for x in one], len(one))
    decode = per_second(lambda: [model.decode(c) for c in codes], len(one))
    if prior is None:
        compress = lambda x: compress_image(model, entropy_model, x, reconstruct=False)  # noqa: E731
        decompress = lambda data: decompress_image(model, entropy_model, data)  # noqa: E731
    else:
        compress = lambda x: compress_with_prior(model, prior, x)  # noqa: E731
        decompress = lambda data: decompress_with_prior(model, prior, data)  # noqa: E731
    files: list[bytes] = []
    comp = per_second(lambda: files.extend(compress(x).data for x in one), len(one))
    decomp = per_second(lambda: [decompress(data) for data in files], len(one))
    return {"coder": coder, "images": len(one), "encode_per_s": encode, "decode_per_s": decode,
            "compress_per_s": comp, "decompress_per_s": decomp, "compress_over_encode": comp / encode,
            "decompress_over_decode": decomp / decode, "mean_bits": 8 * sum(map(len, files)) / len(files)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="images to code (read recursively)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--prior", help="a learned prior of the run (scvae prior train)")
    parser.add_argument("--prior-images", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = load_model(args.model).eval()
    paths = find_images(args.data)[:args.images]
    images = image_batch(paths, model.resolution, model.in_channels)
    train = build_datasets(load_run_config(Path(args.model) / CONFIG_FILE))[0]
    rows = [measure(model, images, f"per-channel{' + context' * context}",
                    entropy_model=fit_entropy_model(model, train, 2000, context=context)) for context in (False, True)]
    if args.prior:
        rows.append(measure(model, images[:args.prior_images], "learned prior", prior=LearnedPrior.load(args.prior)))
    print("| coder | images | encode /s | compress /s | compress / encode | decode /s | decompress /s | "
          "decompress / decode | bits/image |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['coder']} | {r['images']} | {r['encode_per_s']:.1f} | {r['compress_per_s']:.1f} | "
              f"{r['compress_over_encode']:.3f} | {r['decode_per_s']:.1f} | {r['decompress_per_s']:.1f} | "
              f"{r['decompress_over_decode']:.3f} | {r['mean_bits']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "threads": torch.get_num_threads(),
                                               "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
