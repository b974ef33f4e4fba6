"""Training-step time of every model family, measured side by side in one process.

Each round times ``--steps`` optimiser steps (forward, backward, Adam) of every model in turn on the same
batch of real photo crops, so all models see the same machine state; every other round takes the models in
reverse order, so no model always runs first after the last one's allocations. The median over rounds is reported
with the median of the per-round ratios to the reference model (default: the strong VQ-VAE) and their range. Run it with nothing else on the CPU.

    python bench/train_step_speed.py [--preset small-32] [--rounds 5] [--steps 10] [--json out.json]
        [--variant scvae-t4=scvae:n_iter=4 ...]   (a preset model with some settings changed, timed alongside)
        [--compile]   (every model also wrapped in torch.compile, timed alongside)
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import numpy as np
import torch

from scvae.config import TrainConfig
from scvae.data import CropDataset
from scvae.models import MODEL_REGISTRY
from scvae.presets import get_preset, model_settings
from scvae.training.compiling import compile_model


def real_batch(resolution: int, batch_size: int) -> torch.Tensor:
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    crops = [p[i:i + resolution, j:j + resolution] for p in photos for i in range(0, 256, 37) for j in range(0, 256, 41)]
    data = CropDataset([np.ascontiguousarray(c) for c in crops], resolution, random_crop=False)
    return data.batch(list(range(batch_size)))


def variant_model(spec: str, preset: str) -> tuple[str, torch.nn.Module]:
    """'scvae-t4=scvae:n_iter=4,refit=false' -> ('scvae-t4', the preset's scvae with model.n_iter=4 and
    model.refit=false), the settings parsed and checked as ``scvae train`` overrides are."""
    from scvae.config import build_model, resolve_config

    name, _, rest = spec.partition("=")
    family, _, pairs = rest.partition(":")
    if not name or family not in MODEL_REGISTRY:
        raise SystemExit(f"--variant {spec!r}: expected NAME=FAMILY:KEY=VALUE,... with FAMILY one of "
                         f"{', '.join(MODEL_REGISTRY)}")
    overrides = [f"model.{pair}" for pair in pairs.split(",") if pair]
    return name, build_model(resolve_config(preset, family, overrides=overrides)).train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small-32")
    parser.add_argument("--models", default="scvae,vqvae-strong,fsq,vqvae,ae,vae")
    parser.add_argument("--reference", default="vqvae-strong")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FAMILY:KEY=VALUE,...",
                        help="also time FAMILY's preset model with these model settings (values read as YAML)")
    parser.add_argument("--compile", action="store_true",
                        help="also time every model wrapped in torch.compile (inductor; needs a C++ compiler), "
                             "as NAME-compiled, in the same rounds")
    args = parser.parse_args()
    torch.manual_seed(0)
    names = args.models.split(",")
    batch_size = args.batch_size or get_preset(args.preset)["train"].get("batch_size", 32)
    x = real_batch(model_settings(args.preset, names[0])["resolution"], batch_size)
    models = {n: MODEL_REGISTRY[n](**model_settings(args.preset, n)).train() for n in names}
    for spec in args.variant:
        name, models[name] = variant_model(spec, args.preset)
        names.append(name)
    if args.compile:  # the compiled wrapper shares the eager model's parameters, so each gets a fresh copy
        for name in list(names):
            twin = copy.deepcopy(models[name])
            models[f"{name}-compiled"] = compile_model(twin, TrainConfig.compile_backend)  # as compile=true does
            names.append(f"{name}-compiled")
    optimizers = {n: torch.optim.Adam(m.parameters(), lr=1e-4) for n, m in models.items()}

    def run(name: str, steps: int) -> float:
        model, opt = models[name], optimizers[name]
        start = time.perf_counter()
        for _ in range(steps):
            out = model(x)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            model.after_step(out)
        return (time.perf_counter() - start) / steps

    for name in names:  # warm-up (allocator, k-means init, compilation)
        run(name, 3 if name.endswith("-compiled") else 2)
    times: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(args.rounds):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            times[name].append(run(name, args.steps))
    ref = times.get(args.reference)

    def ratios(name: str) -> list[float]:  # per round: both timed minutes apart at most, so drift cancels
        return [a / b for a, b in zip(times[name], ref)] if ref else []

    rows = {n: {"sec_per_step": statistics.median(t), "round_seconds": t,
                "ratio_to_reference": statistics.median(ratios(n)) if ref else None,
                "ratio_range": [min(ratios(n)), max(ratios(n))] if ref else None,
                "parameters": sum(p.numel() for p in models[n].parameters())} for n, t in times.items()}
    print(f"preset {args.preset}, batch {batch_size}, {torch.get_num_threads()} threads, {args.rounds} rounds of "
          f"{args.steps} steps; ratio to {args.reference}: median over rounds of the per-round ratio [range]")
    print("| model | s/step | ratio | ratio range | parameters |\n|---|---|---|---|---|")
    for n, r in rows.items():
        ratio = f"{r['ratio_to_reference']:.3f}" if r["ratio_to_reference"] else ""
        spread = f"{r['ratio_range'][0]:.3f}-{r['ratio_range'][1]:.3f}" if r["ratio_range"] else ""
        print(f"| {n} | {r['sec_per_step']:.4f} | {ratio} | {spread} | {r['parameters']:,} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "batch_size": batch_size, "threads": torch.get_num_threads(),
                       "reference": args.reference, "order": "alternating", "models": rows}, f, indent=2)


if __name__ == "__main__":
    main()
