"""Whole photos against crops: PSNR of a crop-trained model on whole frames, reconstructed whole (one pass)
and tiled (``reconstruct_any_size``: overlapping tiles of the training size), against 32 and 64 px crops
of the same frames, and how much the latent of a crop's centre changes between the crop alone and the whole
frame; one PNG of a frame (input | whole pass | tiled) and the colour error per channel.

    python bench/whole_images.py --model runs/demo --data ../shared/data/camvid/test --limit 20 \
        --json whole.json --png whole.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scvae.data import find_images, image_tensor
from scvae.evaluation.metrics import to_unit
from scvae.evaluation.plots import panel_figure
from scvae.training import load_model


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (to_unit(x) - to_unit(y)).square().mean()))


def crops(x: torch.Tensor, size: int) -> torch.Tensor:
    """Non-overlapping size x size crops (N, C, size, size) of x (1, C, H, W)."""
    c = x.shape[1]
    tiles = x.unfold(2, size, size).unfold(3, size, size)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, size, size)


def latent_change(model, x: torch.Tensor, size: int) -> float:
    """How much the latent of a region depends on the size of the pass: the relative L2 difference between
    the central half (in cells) of each ``size`` px crop's own latent and the same cells of the whole frame's
    latent, over every crop of the frame x (1, C, H, W)."""
    f = model.downsampling_factor
    pieces = crops(x[..., : x.shape[2] // size * size, : x.shape[3] // size * size], size)
    with torch.no_grad():
        alone = torch.cat([model.bottleneck(model.encoder(p)).latent for p in pieces.split(64)])
        whole = model.bottleneck(model.encoder(x)).latent
    cells, q = size // f, size // f // 4
    in_whole = crops(whole[..., : x.shape[2] // size * cells, : x.shape[3] // size * cells], cells)
    centre = (..., slice(q, cells - q), slice(q, cells - q))
    return float((alone[centre] - in_whole[centre]).norm() / alone[centre].norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--json")
    parser.add_argument("--png")
    args = parser.parse_args()
    model = load_model(args.model).eval()
    paths = find_images(Path(args.data))[:args.limit]
    rows = []
    for i, path in enumerate(paths):
        x = image_tensor(path, channels=model.in_channels)
        whole, tiled = model.reconstruct_any_size(x, tiled=False), model.reconstruct_any_size(x)
        row = {"image": path.name, "whole": psnr(x, whole), "tiled": psnr(x, tiled),
               "colour_error_whole": (to_unit(whole) - to_unit(x)).mean((0, 2, 3)).tolist(),
               "colour_error_tiled": (to_unit(tiled) - to_unit(x)).mean((0, 2, 3)).tolist(),
               "latent_change": latent_change(model, x, model.resolution)}
        for size in (32, 64):
            pieces = crops(x, size)
            row[f"crops_{size}"] = psnr(pieces, torch.cat([model.reconstruct(p) for p in pieces.split(64)]))
        rows.append(row)
        print(f"{path.name}: whole {row['whole']:.2f} dB, tiled {row['tiled']:.2f}, 32 px crops {row['crops_32']:.2f}, "
              f"64 px crops {row['crops_64']:.2f}, latent change {row['latent_change']:.3f}", flush=True)
        if i == 0 and args.png:
            panel_figure([[to_unit(t)[0].permute(1, 2, 0).numpy() for t in (x, whole, tiled)]],
                         ["input", f"one pass over the whole frame: {row['whole']:.1f} dB",
                          f"tiled at {model.resolution} px: {row['tiled']:.1f} dB"], args.png, height=3.2)
    keys = ("whole", "tiled", "crops_32", "crops_64", "latent_change")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print("| frames | one pass (dB) | tiled (dB) | 32 px crops (dB) | 64 px crops (dB) | latent change, crop alone "
          "against whole frame |\n|---|---|---|---|---|---|\n"
          f"| {len(rows)} | {mean['whole']:.2f} | {mean['tiled']:.2f} | {mean['crops_32']:.2f} | {mean['crops_64']:.2f} "
          f"| {mean['latent_change']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "data": args.data, "mean": mean, "images": rows},
                                              indent=2) + "\n")


if __name__ == "__main__":
    main()
