"""Why a crop-trained model fails on larger inputs: its decoder run on 64 px crops' code grids with one part
at a time made to see only the training size.

Each 64 px crop is encoded as four 32 px quadrants (the training size), and their code grids are decoded:
whole (16 x 16, as a 64 px input would be), with GroupNorm statistics or attention taken per quadrant, or
quadrant by quadrant (the training condition), then quadrant by quadrant with the decoder's convolutions
padded otherwise than by the zeros it was trained with. A decoder that needs its zero padding to find its
place in the image collapses in the last rows.

    python bench/size_ablation.py --model runs/probe/scvae --data ../shared/data/camvid/test --limit 4 \\
        [--json ablation.json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import torch
from torch import nn

from scvae.data import find_images, image_tensor
from scvae.data.datasets import tile_mosaic
from scvae.models.backbone import AttnBlock
from scvae.training import load_model
from whole_images import crops, psnr


def to_quadrants(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (4 B, C, H / 2, W / 2), each image's quadrants in raster order."""
    b, c, h, w = t.shape
    return t.reshape(b, c, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5).reshape(4 * b, c, h // 2, w // 2)


def from_quadrants(t: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_quadrants`: each group of four laid out as a 2 x 2 mosaic."""
    return tile_mosaic(t, 2)


@contextlib.contextmanager
def per_quadrant(cls: type[nn.Module]):
    """Every ``cls`` layer computes on each quadrant of its input separately."""
    forward = cls.forward
    cls.forward = lambda self, t: from_quadrants(forward(self, to_quadrants(t))) if t.shape[-1] % 2 == 0 \
        else forward(self, t)
    try:
        yield
    finally:
        cls.forward = forward


@contextlib.contextmanager
def padded_with(decoder: nn.Module, mode: str):
    convs = [m for m in decoder.modules() if isinstance(m, nn.Conv2d) and m.padding == (1, 1)]
    for m in convs:
        m.padding_mode = mode
    try:
        yield
    finally:
        for m in convs:
            m.padding_mode = "zeros"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--json")
    args = parser.parse_args()
    model = load_model(args.model).eval()
    size = 2 * model.resolution
    x = torch.cat([crops(image_tensor(path, channels=model.in_channels), size)
                   for path in find_images(Path(args.data))[:args.limit]])
    with torch.no_grad():
        grid = from_quadrants(model.bottleneck(model.encoder(to_quadrants(x))).latent_hat)
        decoder = model.decoder
        rows = {"whole grid": lambda: decoder(grid)}
        rows["GroupNorm per quadrant"] = lambda: _within(per_quadrant(nn.GroupNorm), lambda: decoder(grid))
        rows["attention per quadrant"] = lambda: _within(per_quadrant(AttnBlock), lambda: decoder(grid))
        rows["quadrant by quadrant (the training condition)"] = lambda: from_quadrants(decoder(to_quadrants(grid)))
        for mode in ("replicate", "reflect", "circular"):
            rows[f"quadrant by quadrant, {mode} padding"] = lambda mode=mode: _within(
                padded_with(decoder, mode), lambda: from_quadrants(decoder(to_quadrants(grid))))
        result = {name: psnr(x, run()) for name, run in rows.items()}
    print(f"{len(x)} crops of {size} px, encoded as {model.resolution} px quadrants\n| decoder | PSNR (dB) |\n|---|---|")
    for name, value in result.items():
        print(f"| {name} | {value:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "data": args.data, "crops": len(x),
                                               "psnr": result}, indent=2) + "\n")


def _within(context, fn):
    with context:
        return fn()


if __name__ == "__main__":
    main()
