"""Where an SC-VAE spends its atoms: the number of active atoms per position, as a histogram over the
held-out split and as a map over a few images (beside the images themselves).

A fixed cap that always binds shows as one bar at k and a flat map; content-adaptive sparsity spends few
atoms on flat regions and many on texture and edges.

    python bench/active_atoms.py runs/rd/scvae-... [runs/...] --images 1000 --json active.json --figure active.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from scvae.config import load_run_config
from scvae.errors import ScvaeError
from scvae.training import build_datasets, load_model


def active_counts(run_dir: Path, n_images: int) -> tuple[np.ndarray, torch.Tensor, int]:
    """Active atoms per position (N, h, w), the images (N, C, H, W) and the number of atoms K."""
    run = load_run_config(run_dir / "config.yaml")
    _, val_set = build_datasets(run)
    model = load_model(run_dir / "checkpoints" / "last")
    if model.model_type != "scvae":
        raise ScvaeError(f"{run_dir}: a {model.model_type} run has no atoms")
    images = torch.cat([x for _, x in val_set.eval_batches(64, n_images)])
    codes = torch.cat([model.encode(images[i:i + 64]).codes for i in range(0, len(images), 64)])
    return (codes != 0).sum(1).numpy(), images, model.n_atoms


def summary(counts: np.ndarray, n_atoms: int) -> dict:
    flat = counts.ravel()
    return {"mean": float(flat.mean()), "std": float(flat.std()), "min": int(flat.min()), "max": int(flat.max()),
            "at_max_fraction": float((flat == flat.max()).mean()), "n_atoms": n_atoms,
            "histogram": np.bincount(flat, minlength=int(flat.max()) + 1).tolist(),
            "within_image_std": float(counts.reshape(len(counts), -1).std(1).mean())}


def figure(results: dict[str, tuple[np.ndarray, torch.Tensor]], path: Path, n_maps: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_maps = min(n_maps, *(len(images) for _, images in results.values()))
    fig, axes = plt.subplots(len(results), 1 + 2 * n_maps, figsize=(2.2 * (1 + 2 * n_maps), 2.4 * len(results)),
                             squeeze=False)
    for row, (name, (counts, images)) in zip(axes, results.items()):
        flat = counts.ravel()
        row[0].bar(np.arange(flat.max() + 1), np.bincount(flat) / flat.size)
        row[0].set_title(f"{name}\nactive atoms per position", fontsize=7)
        for i in range(n_maps):
            picture = ((images[i].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
            row[1 + 2 * i].imshow(picture, interpolation="nearest")
            shown = row[2 + 2 * i].imshow(counts[i], cmap="viridis", vmin=0, vmax=flat.max())
            for ax in (row[1 + 2 * i], row[2 + 2 * i]):
                ax.set_xticks([]), ax.set_yticks([])
        fig.colorbar(shown, ax=row[-1], fraction=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="SC-VAE training run directories")
    parser.add_argument("--images", type=int, default=1000, help="held-out images")
    parser.add_argument("--json")
    parser.add_argument("--figure")
    args = parser.parse_args(argv)
    try:
        measured = {Path(r).name: active_counts(Path(r), args.images) for r in args.runs}
    except (ScvaeError, OSError) as err:
        print(f"active_atoms: {err}", file=sys.stderr)
        return 2
    stats = {name: summary(counts, n_atoms) for name, (counts, _, n_atoms) in measured.items()}
    print("| run | mean active | std over positions | std within an image | min | max | share at max |\n"
          "|---|---|---|---|---|---|---|")
    for name, s in stats.items():
        print(f"| {name} | {s['mean']:.2f} of {s['n_atoms']} | {s['std']:.2f} | {s['within_image_std']:.2f} | "
              f"{s['min']} | {s['max']} | {100 * s['at_max_fraction']:.1f} % |")
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=2) + "\n")
    if args.figure:
        figure({name: (counts, images) for name, (counts, images, _) in measured.items()}, Path(args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
