"""Rate finished training runs the way ``scvae rd`` rates its sweep, without training anything.

Each run is rated on its own held-out split by :func:`scvae.rate_distortion.ratings`: the plain AE and a
VAE's means at every quantisation step of the post-training sweep, a VAE also by its KL, every other run
once. Writes a points file that ``bench/rd_margins.py`` reads:

    python bench/rate_points.py runs/ae runs/ae-rate_weight-0.001 runs/sc-adaptive --out points.json
    python bench/rate_points.py runs/bsds64-ae runs/bsds64-scvae --sweep --out points.json  # both swept
    python bench/rd_margins.py points.json runs/cifar-rd/rd.json --family scvae --against others
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scvae.config import load_run_config
from scvae.errors import ScvaeError
from scvae.evaluation import estimate_rate
from scvae.rate_distortion import POST_TRAINING_STEPS, ratings
from scvae.training import build_datasets, load_model


def rate_run(run_dir: Path, limit: int | None, sweep: bool = False) -> list[dict]:
    run = load_run_config(run_dir / "config.yaml")
    _, val_set = build_datasets(run)
    model = load_model(run_dir / "checkpoints" / "last")
    changed = {k: v for k, v in model.config.items() if k in ("rate_weight", "kl_weight") and v}
    plan = ratings(run.model_type, changed)
    if sweep:  # every continuous family quantised after training at the AE's steps, SC-VAE included
        plan = [(run.model_type, {**changed, "step": s} if s else changed, {"step": s, "kl": False})
                for s in POST_TRAINING_STEPS]
    points = []
    for family, setting, options in plan:
        rate = estimate_rate(model, val_set, limit=limit, **options)
        points.append({"family": family, "run": run_dir.name, "setting": {**setting, "run": run_dir.name},
                       **rate.to_dict()})
        print(f"{run_dir.name}: {family} {setting or ''} {rate.bits_per_image:.0f} bits, {rate.psnr:.2f} dB",
              flush=True)
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="training run directories")
    parser.add_argument("--out", required=True, help="points JSON to write")
    parser.add_argument("--limit", type=int, help="held-out images (default: all)")
    parser.add_argument("--sweep", action="store_true",
                        help="rate every run quantised after training at each of the AE's steps (continuous codes)")
    args = parser.parse_args(argv)
    try:
        points = [p for run in args.runs for p in rate_run(Path(run), args.limit, args.sweep)]
    except (ScvaeError, OSError) as err:
        print(f"rate_points: {err}", file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps({"points": points}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
