"""Stage 2 for every family: the learned prior's held-out bits per image against the per-channel entropy model's.

For each trained run (``family=RUN_DIR``), trains the learned prior of :mod:`scvae.prior` with the same
settings on the run's training split, and reports on the run's held-out split: the prior's negative
log-likelihood in bits per image, the bits of the per-channel entropy model (with and without the
neighbour context) fitted on the same training symbols, the decoder's PSNR at those codes, and seconds per
sample. Writes a samples grid per family and one JSON:

    python bench/prior_families.py --runs scvae=runs/probe/scvae,vqvae-strong=runs/probe/vqvae-strong \\
        --steps 2000 --out runs/priors --json docs/results/prior_families.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from scvae.coding import ChannelEntropyModel, code_symbols
from scvae.config import load_run_config
from scvae.data import save_grid
from scvae.prior import PriorTraining, fit_prior, generate_from_prior
from scvae.presets import PRIOR_DEFAULTS
from scvae.training import build_datasets, load_model
from scvae.training.trainer import CONFIG_FILE


def measure(family: str, run: Path, settings: PriorTraining, images: int, samples: int, out: Path) -> dict:
    model = load_model(run)
    train, held_out = build_datasets(load_run_config(run / CONFIG_FILE))
    start = time.perf_counter()
    prior = fit_prior(model, train, held_out, settings=settings, images=images, source=str(run))
    train_seconds = time.perf_counter() - start
    prior.save(out / family)
    coded = code_symbols(model, train, images, prior.step)
    held = code_symbols(model, held_out, images, prior.step)
    per_channel = {name: float(ChannelEntropyModel.fit(coded.symbols, prior.step, model.model_type, context=context)
                               .bits(held.symbols).mean()) for name, context in (("channel", False), ("context", True))}
    start = time.perf_counter()
    drawn = generate_from_prior(model, prior, samples, seed=0, progress=False)
    seconds_per_sample = (time.perf_counter() - start) / samples
    save_grid(drawn.images, out / f"samples_{family}.png", nrow=int(samples ** 0.5), upscale=2)
    return {"family": family, "run": str(run), "prior_bits": prior.info["held_out_bits"],
            "channel_bits": per_channel["channel"], "context_bits": per_channel["context"],
            "psnr": prior.info["held_out_psnr"], "held_out_images": prior.info["held_out_images"],
            "train_images": prior.info["train_images"], "sparse": prior.layout.sparse,
            "entries_per_position": prior.layout.max_entries, "train_seconds": train_seconds,
            "seconds_per_sample": seconds_per_sample, "sample_bits": float(drawn.bits.mean())}


def table(rows: list[dict]) -> str:
    lines = ["| family | learned prior, bits/image | per-channel model | with context | saved | PSNR (dB) | "
             "s/sample |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        saved = 1 - r["prior_bits"] / r["context_bits"]
        lines.append(f"| {r['family']} | {r['prior_bits']:.0f} | {r['channel_bits']:.0f} | {r['context_bits']:.0f} | "
                     f"{100 * saved:.1f} % | {r['psnr']:.2f} | {r['seconds_per_sample']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="family=RUN_DIR,... (runs trained with scvae train)")
    parser.add_argument("--steps", type=int, default=PRIOR_DEFAULTS["steps"])
    parser.add_argument("--images", type=int, default=PRIOR_DEFAULTS["images"])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--out", default="runs/priors", help="priors and sample grids")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    settings = PriorTraining(steps=args.steps)
    out = Path(args.out)
    rows = []
    for item in args.runs.split(","):
        family, _, run = item.partition("=")
        rows.append(measure(family, Path(run), settings, args.images, args.samples, out))
        print(table(rows[-1:]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"settings": settings.__dict__, "rows": rows}, indent=1) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
