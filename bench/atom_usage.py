"""How evenly finished runs use their atoms (SC-VAE) or codes (VQ-VAE, FSQ), on each run's own held-out split.

"Atoms used" counts an atom active at a single held-out position; this prints, per run, the perplexity of
use (exp of the entropy of each unit's share of all activations: K when every unit is used equally), how
many units take less than a tenth of an even share, and the share of the six most used ones.

    python bench/atom_usage.py runs/cifar-compare/scvae runs/rd-qat/scvae-... [--json usage.json]

Writes a Markdown table to stdout and, with ``--json``, one row per run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from scvae.config import load_run_config
from scvae.evaluation.reconstruction import evaluate_reconstruction
from scvae.training import build_datasets, load_model
from scvae.training.trainer import CONFIG_FILE


def usage_row(run_dir: Path, batch_size: int = 100) -> dict:
    """PSNR and the usage statistics of one run directory, on its own held-out split."""
    _, val = build_datasets(load_run_config(run_dir / CONFIG_FILE))
    report = evaluate_reconstruction(load_model(run_dir), val, batch_size=batch_size)
    if report.usage_counts is None:
        raise ValueError(f"{run_dir}: its model has no atoms or codes to count")
    counts = torch.tensor(report.usage_counts, dtype=torch.float64)
    share = (counts / counts.sum()).sort(descending=True).values
    return {"run": str(run_dir), "psnr": report.psnr, "units": len(counts), "used": int((counts > 0).sum()),
            "perplexity": report.diagnostics["perplexity"],
            "below_tenth_of_even": int((share < 0.1 / len(counts)).sum()), "top6_share": float(share[:6].sum())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of SC-VAE, VQ-VAE or FSQ models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    missing = [str(run) for run in args.runs if not (run / CONFIG_FILE).is_file()]
    if missing:
        parser.error(f"not a run directory (no {CONFIG_FILE}): {', '.join(missing)}")
    torch.set_num_threads(args.threads)
    try:
        rows = [usage_row(run) for run in args.runs]
    except ValueError as error:
        parser.error(str(error))
    print("| run | PSNR | used | perplexity | below 1/10 of an even share | top 6 share |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['psnr']:.2f} | {r['used']} / {r['units']} | {r['perplexity']:.1f} | "
              f"{r['below_tenth_of_even']} | {100 * r['top6_share']:.1f} % |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
