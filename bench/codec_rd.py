"""Rate-distortion from real files: each run's held-out images compressed with ``scvae.coding`` and decoded,
next to JPEG and WebP (Pillow) on the same images, at equal bits per image.

For each run, an entropy model is fitted on the run's own training split; each held-out central crop is
compressed to a file, decompressed and scored. A run with continuous codes (SC-VAE, AE, VAE means) is
coded at the step the rate estimate picks (``--steps auto``) or at each of ``--steps`` (a quantised-after-
training sweep of one trained model, which costs no training). Prints a Markdown table, writes JSON and a
figure:

    python bench/codec_rd.py runs/cifar-compare/scvae runs/cifar-compare/ae --steps auto,1,0.5,0.25 \\
        --images 200 --json codec_rd.json --figure codec_rd.png
    python bench/codec_rd.py runs/scr-adaptive-0.01 --context --images 1000  # the spatial context's saving
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scvae.coding import HEADER_BITS, compress_image, decompress_image, fit_entropy_model
from scvae.config import load_run_config
from scvae.errors import ScvaeError
from scvae.evaluation import psnr_per_image, to_unit
from scvae.training import build_datasets, load_model

QUALITIES = (1, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def code_images(model, entropy_model, images: torch.Tensor) -> dict:
    """Compress and decompress each image (C, H, W): mean file bits, ideal bits, PSNR and times."""
    bits, ideal, psnr, encode, decode = [], [], [], 0.0, 0.0
    for x in images:
        t0 = time.perf_counter()
        encoded = compress_image(model, entropy_model, x[None])
        t1 = time.perf_counter()
        y, _ = decompress_image(model, entropy_model, encoded.data)
        decode += time.perf_counter() - t1
        encode += t1 - t0
        bits.append(8 * len(encoded.data))
        ideal.append(float(entropy_model.bits(encoded.symbols)[0]))
        psnr.append(float(psnr_per_image(to_unit(y), to_unit(x[None]))[0]))
    return {"bits": float(np.mean(bits)), "ideal_bits": float(np.mean(ideal)), "psnr": float(np.mean(psnr)),
            "encode_ms": 1000 * encode / len(images), "decode_ms": 1000 * decode / len(images),
            "n_images": len(images)}


def code_run(run_dir: Path, steps: list[str], fit_images: int, n_images: int,
             contexts: tuple[bool, ...] = (False,)) -> tuple[list[dict], torch.Tensor]:
    run = load_run_config(run_dir / "config.yaml")
    train_set, val_set = build_datasets(run)
    model = load_model(run_dir / "checkpoints" / "last")
    images = torch.cat([x for _, x in val_set.eval_batches(64, n_images)])
    rows = []
    for step in (steps if model.symbol_step() is None else ["auto"]):
        for context in contexts:
            entropy_model = fit_entropy_model(model, train_set, fit_images, context=context,
                                              step=None if step == "auto" else float(step))
            rows.append({"run": run_dir.name, "family": model.model_type, "context": context,
                         "step": entropy_model.step, "step_setting": step, **code_images(model, entropy_model, images)})
        if entropy_model.step is None:
            break  # discrete codes: the step does not apply
    return rows, images


def pillow_curve(images: torch.Tensor, fmt: str) -> list[dict]:
    """Mean file bits and PSNR of each quality of ``fmt`` ('JPEG' or 'WEBP') over ``images``."""
    arrays = [(to_unit(x).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for x in images]
    curve = []
    for quality in QUALITIES:
        bits, psnr = [], []
        for a in arrays:
            buffer = io.BytesIO()
            Image.fromarray(a).save(buffer, fmt, quality=quality)
            bits.append(8 * buffer.tell())
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=np.float64)
            mse = np.mean((decoded - a) ** 2)
            psnr.append(10 * np.log10(255 ** 2 / max(mse, 1e-10)))
        curve.append({"quality": quality, "bits": float(np.mean(bits)), "psnr": float(np.mean(psnr))})
    return sorted(curve, key=lambda p: p["bits"])


def at_bits(curve: list[dict], bits: float) -> float | None:
    xs = [p["bits"] for p in curve]
    return None if not xs[0] <= bits <= xs[-1] else float(np.interp(bits, xs, [p["psnr"] for p in curve]))


def figure(rows: list[dict], anchors: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in anchors.items():
        ax.plot([p["bits"] for p in curve], [p["psnr"] for p in curve], "--", color="grey" if name == "JPEG" else "k",
                label=f"{name} (Pillow, file size)")
    for run, context in dict.fromkeys((r["run"], r["context"]) for r in rows):
        points = sorted((r for r in rows if (r["run"], r["context"]) == (run, context)), key=lambda r: r["bits"])
        ax.plot([r["bits"] for r in points], [r["psnr"] for r in points], "o-" if not context else "s--",
                label=f"{run}{', context' if context else ''} (file size)")
    ax.set_xscale("log")
    ax.set_xlabel("bits per image (mean file size, header included)")
    ax.set_ylabel("held-out PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="training run directories")
    parser.add_argument("--steps", default="auto", help="comma-separated steps for continuous codes, or auto")
    parser.add_argument("--fit-images", type=int, default=2000)
    parser.add_argument("--images", type=int, default=200, help="held-out images to code")
    parser.add_argument("--context", action="store_true",
                        help="code each setting twice: per-channel model, then with spatial context")
    parser.add_argument("--json")
    parser.add_argument("--figure")
    args = parser.parse_args(argv)
    try:
        rows, images = [], None
        for run in map(Path, args.runs):
            if not (run / "config.yaml").is_file():
                raise ScvaeError(f"{run}: not a training run (no config.yaml)")
            coded, images = code_run(run, args.steps.split(","), args.fit_images, args.images,
                                     (False, True) if args.context else (False,))
            rows += coded
    except (ScvaeError, OSError, ValueError) as err:
        print(f"codec_rd: {err}", file=sys.stderr)
        return 2
    anchors = {fmt: pillow_curve(images, fmt) for fmt in ("JPEG", "WEBP")}
    print(f"| run | family | context | step | file bits | model's rate | file / rate | PSNR | JPEG at those bits | "
          f"WebP at those bits | encode ms | decode ms |\n|{'---|' * 12}")
    for r in rows:
        step = "" if r["step"] is None else f"{r['step']:.3g}"
        jpeg, webp = (at_bits(anchors[f], r["bits"]) for f in ("JPEG", "WEBP"))
        print(f"| {r['run']} | {r['family']} | {'yes' if r['context'] else 'no'} | {step} | {r['bits']:.0f} | {r['ideal_bits']:.0f} | "
              f"{(r['bits'] - HEADER_BITS) / r['ideal_bits']:.4f} | {r['psnr']:.2f} | "
              f"{'' if jpeg is None else f'{jpeg:.2f}'} | {'' if webp is None else f'{webp:.2f}'} | "
              f"{r['encode_ms']:.1f} | {r['decode_ms']:.1f} |")
    print(f"\nfile bits include the {HEADER_BITS}-bit header; 'file / rate' is the payload over the entropy "
          "model's ideal code length")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "anchors": anchors, "header_bits": HEADER_BITS},
                                              indent=2) + "\n")
    if args.figure:
        figure(rows, anchors, Path(args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
