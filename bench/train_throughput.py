"""Training throughput: images/s, model-FLOP utilisation and peak memory per model family.

Trains each model for ``--steps`` optimizer steps (forward in ``--precision``, backward, Adam) on real photo
crops (scikit-image) or synthetic noise, after ``--warmup`` steps, all in one process. FLOPs per step are
counted once with torch's FlopCounterMode (forward + backward); MFU = achieved FLOP/s / the device's
peak (``--peak-tflops``, or a table of known GPUs for bf16 dense). Peak memory is CUDA's max allocated,
or the process's peak RSS on CPU.

    python bench/train_throughput.py --preset paper-f16 [--models scvae,ae,vqvae-strong] [--steps 50]
        [--precision bf16] [--data real|synthetic] [--batch-size N] [--json out.json]
    python bench/train_throughput.py --preset tiny        # CPU smoke run (the tests run this)

``--batch-size max`` doubles the batch from 8 until the next doubling runs out of memory (or reaches
``--max-batch``) and measures the largest that fits; ``--compile`` wraps the model in torch.compile
(inductor) and times only steps after the compiling warm-up step.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from scvae.data import CropDataset
from scvae.models import MODEL_REGISTRY
from scvae.presets import get_preset, model_settings

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def batch_of(kind: str, resolution: int, batch_size: int) -> torch.Tensor:
    if kind == "synthetic":
        return torch.rand(batch_size, 3, resolution, resolution, generator=torch.Generator().manual_seed(0)) * 2 - 1
    import skimage.data

    from scvae.data.images import resize_shorter

    photos = [resize_shorter(np.asarray(getattr(skimage.data, n)()), 2 * resolution)
              for n in ("astronaut", "coffee", "chelsea", "rocket")]
    data = CropDataset(photos, resolution, random_crop=True)
    return data.batch([i % len(photos) for i in range(batch_size)], torch.Generator().manual_seed(0))


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given:
        return given
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    return None


def step_fn(model, optimizer, x, precision: str, device: torch.device):
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
    return step


def fits(name: str, args, device: torch.device, batch_size: int) -> bool:
    """Whether one training step at ``batch_size`` fits in the device's memory."""
    settings = model_settings(args.preset, name)
    try:
        model = MODEL_REGISTRY[name](**settings).to(device).train()
        step_fn(model, torch.optim.Adam(model.parameters()), batch_of("synthetic", settings["resolution"], batch_size)
                .to(device), args.precision, device)()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def largest_batch(name: str, args, device: torch.device) -> int:
    batch = 8
    while batch * 2 <= args.max_batch and fits(name, args, device, batch * 2):
        batch *= 2
    return batch


def measure(name: str, args, device: torch.device) -> dict:
    settings = model_settings(args.preset, name)
    if args.batch_size == "max":
        batch_size = largest_batch(name, args, device)
    else:
        batch_size = int(args.batch_size or get_preset(args.preset)["train"].get("batch_size", 8))
    model = MODEL_REGISTRY[name](**settings).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    x = batch_of(args.data, settings["resolution"], batch_size).to(device)
    step = step_fn(model, optimizer, x, args.precision, device)
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    if args.compile:
        step = step_fn(torch.compile(model), optimizer, x, args.precision, device)
        step()  # compiles
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024))
    tflops = peak_tflops(device, args.peak_tflops)
    return {"model": name, "batch_size": batch_size, "compiled": args.compile, "images_per_s": batch_size / seconds, "sec_per_step": seconds,
            "tflop_per_step": flops / 1e12, "achieved_tflops": flops / seconds / 1e12,
            "mfu": flops / seconds / 1e12 / tflops if tflops else None, "peak_memory_gib": peak / 2**30,
            "peak_memory_kind": "cuda max allocated" if device.type == "cuda" else "process peak RSS (cumulative)",
            "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper-f16")
    parser.add_argument("--models", default="scvae,ae,vqvae-strong")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", help="images per step, or 'max': the largest that fits (default: the preset's)")
    parser.add_argument("--max-batch", type=int, default=512, help="the cap of --batch-size max")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (inductor)")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--data", default="real", choices=["real", "synthetic"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s for MFU (default: known GPUs)")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    rows = [measure(name, args, device) for name in args.models.split(",")]
    print(f"preset {args.preset}, {args.precision}, {args.data} images, {label}, {args.steps} timed steps"
          f"{', torch.compile' if args.compile else ''}")
    print("| model | batch | images/s | TFLOP/step | achieved TFLOP/s | MFU | peak memory (GiB) |\n" + "|---" * 7 + "|")
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "n/a (no peak known)"
        print(f"| {r['model']} | {r['batch_size']} | {r['images_per_s']:.1f} | {r['tflop_per_step']:.4f} | "
              f"{r['achieved_tflops']:.3f} | {mfu} | {r['peak_memory_gib']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "precision": args.precision, "device": label, "compiled": args.compile,
                       "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
