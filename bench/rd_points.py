"""Rate-distortion points trained side by side: one process per point, ``--jobs`` at a time.

``scvae rd`` trains its fixed sweep one run after another, which suits a laptop. On a GPU the small presets
leave the card mostly idle, so this script trains any list of points in parallel processes (one CPU
thread each) and evaluates every one on the same held-out split: PSNR, SSIM, the rate (bits per image,
``scvae.evaluation.estimate_rate``) and the collapse diagnostics. A point is a family followed by
``KEY=VALUE`` overrides, as on the ``scvae train`` command line. A point's ``psnr`` is measured after the
quantisation its rate assumes (as in ``scvae rd``; ``psnr_unquantised`` is the plain held-out PSNR).

    python bench/rd_points.py --data ../shared/data/cifar10_test --out runs/rd-points --jobs 8 \\
        --point "scvae" --point "scvae model.max_active=4" --point "fsq model.levels=[8,8,8,5,5,5]" \\
        [--device cuda] [--preset small-32] [--steps 1500] [--deadline 600] [--merge runs/cifar-rd/rd.json]

Writes ``points.json`` (every finished point, rewritten as each one lands, so a stopped sweep keeps what it
finished), ``points.md`` and ``rd.png`` (``--merge`` adds the points of an earlier rd.json or points.json
to the table and figure; with ``--merge`` alone nothing is trained). The table lists every point; the
figure draws each family's best operating points (its upper envelope: no point of the family has fewer
bits and a higher PSNR) as a line, and every other point as a marker.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

SUMMARY_KEYS = ("psnr", "ssim", "active_frac", "atoms_used_frac", "codebook_usage", "perplexity")


def point_name(spec: str) -> str:
    """'fsq model.levels=[8,5,5,5]' -> 'fsq-levels-8x5x5x5': the run folder of one point."""
    family, *overrides = shlex.split(spec)
    parts = [family]
    for item in overrides:
        key, _, value = item.partition("=")
        parts += [key.split(".")[-1], re.sub(r"[^0-9A-Za-z.]+", "x", value.strip("[]"))]
    return "-".join(parts)


def run_point(spec: str, args: argparse.Namespace) -> dict:
    """Train (or reuse) one point and evaluate it on the held-out split; returns its row."""
    import torch

    from scvae.compare import train_or_reuse, val_curve
    from scvae.config import resolve_config
    from scvae.evaluation import estimate_rate, evaluate_reconstruction
    from scvae.training import build_datasets, load_model
    from scvae.training.trainer import pick_device

    torch.set_num_threads(1)
    family, *overrides = shlex.split(spec)
    extra = [f"device={args.device}", "num_threads=1", "num_workers=0"]
    run = resolve_config(args.preset, family, None, [*overrides, *extra], steps=args.steps, data=args.data)
    run_dir = Path(args.out) / point_name(spec)
    datasets = build_datasets(run)
    seconds = train_or_reuse(run, run_dir, datasets, overwrite=True, progress=False)
    device = pick_device(args.device)
    model = load_model(run_dir / "checkpoints" / "last").to(device)
    report = evaluate_reconstruction(model, datasets[1], 64, None, device=device)
    rate = estimate_rate(model, datasets[1], device=device)
    summary = report.summary()
    return {"family": family, "run": point_name(spec), "spec": spec, "setting": overrides,
            **{k: summary[k] for k in SUMMARY_KEYS if k in summary}, **rate.to_dict(),
            "sec_per_step": seconds, "val_curve": val_curve(run_dir), "device": str(device),
            "n_val_images": len(datasets[1]), "steps": run.train.steps, "preset": run.preset}


def write_outputs(out: Path, points: list[dict], merged: list[dict]) -> None:
    from scvae.evaluation.plots import rate_distortion_figure

    (out / "points.json").write_text(json.dumps({"points": points, "merged": merged}, indent=2) + "\n")
    rows = ["| family | setting | bits per image | PSNR (dB) | SSIM | active | atoms used | codebook used | source |",
            "|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(merged + points, key=lambda p: (p["family"], p["bits_per_image"])):
        setting = " ".join(p["setting"]) if isinstance(p["setting"], list) else \
            ", ".join(f"{k}={v}" for k, v in p["setting"].items())
        cells = [f"{p[k]:.3g}" if isinstance(p.get(k), float) else "" for k in
                 ("ssim", "active_frac", "atoms_used_frac", "codebook_usage")]
        rows.append(f"| {p['family']} | {setting or 'preset'} | {p['bits_per_image']:.0f} | {p['psnr']:.2f} | "
                    f"{' | '.join(cells)} | {p.get('device', 'merged')} |")
    (out / "points.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows), flush=True)
    rate_distortion_figure(merged + points, out / "rd.png", "rate-distortion, held-out images")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--point", action="append", default=[], help="family then KEY=VALUE overrides")
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--preset", default="small-32")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=None, help="start no point after this many seconds")
    parser.add_argument("--merge", action="append", default=[], help="an earlier rd.json or points.json")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.one:  # a child: one point, its row as JSON on the last line of stdout
        print(json.dumps(run_point(args.point[0], args)), flush=True)
        return 0
    merged = []
    for path in args.merge:
        data = json.loads(Path(path).read_text())
        merged += data.get("points", []) + data.get("merged", [])
    base = [sys.executable, os.path.abspath(__file__), "--one", "--out", args.out, "--preset", args.preset,
            "--device", args.device] + (["--data", args.data] if args.data else []) + \
        (["--steps", str(args.steps)] if args.steps else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start, queue, running, points = time.time(), list(args.point), {}, []
    while queue or running:
        while queue and len(running) < args.jobs and (args.deadline is None or time.time() - start < args.deadline):
            spec = queue.pop(0)
            log = open(out / f"{point_name(spec)}.log", "w")
            running[spec] = (subprocess.Popen(base + ["--point", spec], stdout=subprocess.PIPE, stderr=log,
                                              text=True, env=env), log)
        if args.deadline is not None and time.time() - start >= args.deadline and queue:
            print(f"deadline: {len(queue)} points not started: {queue}", flush=True)
            queue = []
        for spec, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[spec]
            log.close()
            lines = proc.stdout.read().strip().splitlines()
            if proc.returncode == 0 and lines:
                points.append(json.loads(lines[-1]))
                print(f"[{time.time() - start:.0f} s] {spec}: {points[-1]['psnr']:.2f} dB, "
                      f"{points[-1]['bits_per_image']:.0f} bits", flush=True)
                write_outputs(out, points, merged)
            else:
                print(f"[{time.time() - start:.0f} s] {spec}: failed (exit {proc.returncode}), see its log", flush=True)
        time.sleep(1)
    write_outputs(out, points, merged)
    return 0


if __name__ == "__main__":
    sys.exit(main())
