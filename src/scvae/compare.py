"""``scvae compare``: SC-VAE against its baselines with the same backbone, split, seed and step budget."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .config import RunConfig, load_run_config, resolve_config
from .evaluation import evaluate_reconstruction, estimate_rate
from .evaluation.perceptual import MetricWeights, score_dataset
from .evaluation.plots import curves, labelled_rows, usage_histogram
from .evaluation.report import CONVENTIONS, markdown_table, package_versions
from .training import build_datasets, load_model, train
from .errors import ScvaeError
from .files import write_text_atomic
from .training.checkpoint import load_trainer_state
from .training.loggers import read_metrics
from .training.trainer import CONFIG_FILE

COLUMNS = ["psnr", "ssim", "lpips", "rfid", "bits_per_image", "active_frac", "atoms_used_frac", "codebook_usage", "perplexity", "active_units_frac",
           "channels_collapsed", "sec_per_step", "parameters"]


def val_curve(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["psnr"]) for r in read_metrics(run_dir) if r["split"] == "val"]


def finished_run(run: RunConfig, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished run of ``run``'s config (logging, validation and saving
    cadence aside: they do not change the weights)."""
    try:
        same = load_run_config(run_dir / CONFIG_FILE).trained_weights_key() == run.trained_weights_key()
        return same and int(load_trainer_state(run_dir / "checkpoints" / "last")["step"]) == run.train.steps
    except (OSError, ScvaeError, KeyError, TypeError, ValueError):
        return False


def train_or_reuse(run: RunConfig, run_dir: Path, datasets, overwrite: bool, progress: bool) -> float:
    """Train ``run`` into ``run_dir`` unless a finished run of the same config is there (then reuse it, e.g.
    after an interrupted comparison or when runs were trained in parallel); returns seconds per step."""
    if not finished_run(run, run_dir):
        return train(run, run_dir, overwrite=overwrite, progress=progress, datasets=datasets).seconds_per_step
    timed = [r["sec_per_step"] for r in read_metrics(run_dir) if r["split"] == "train" and "sec_per_step" in r]
    return timed[-1] if timed else float("nan")


def compare(out: str | os.PathLike, models: list[str], preset: str | None = None, steps: int | None = None,
            data: str | None = None, overrides: list[str] | None = None, overwrite: bool = False,
            progress: bool = False, metric_weights: MetricWeights | None = None) -> dict[str, Any]:
    """Train each model type into ``out/<model>``, evaluate all on the same held-out images (LPIPS and rFID
    too when ``metric_weights`` names their files), write compare.json, compare.md, psnr_vs_steps.png and
    reconstructions.png into ``out``."""
    out = Path(out)
    runs = {m: resolve_config(preset, m, None, overrides, steps=steps, data=data) for m in models}
    first = runs[models[0]]
    datasets = build_datasets(first)  # one split shared by every model
    results: dict[str, dict[str, Any]] = {}
    outer = tqdm(models, desc="compare", unit="model", disable=not progress, position=0)
    for name in outer:
        outer.set_postfix(model=name)
        run = runs[name]
        seconds = train_or_reuse(run, out / name, datasets, overwrite, progress)
        model = load_model(out / name / "checkpoints" / "last")
        report = evaluate_reconstruction(model, datasets[1], 64, None)
        rate = estimate_rate(model, datasets[1])
        scores, skipped = score_dataset(model, datasets[1], metric_weights)
        results[name] = {**report.summary(), **scores, "bits_per_image": rate.bits_per_image, "rate": rate.to_dict(),
                         "sec_per_step": seconds,
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "diagnostics": report.diagnostics, "usage_counts": report.usage_counts}
        usage_histogram({"model_type": name, "usage_counts": report.usage_counts, "diagnostics": report.diagnostics,
                         "data": {"n_images": report.n_images}}, out / f"usage_{name}.png")
    summary = {"preset": first.preset, "steps": first.train.steps, "seed": first.train.seed,
               "data": first.train.data or "built-in scikit-image photos", "n_val_images": len(datasets[1]),
               "models": results, "skipped": skipped, "conventions": CONVENTIONS, "versions": package_versions()}
    write_text_atomic(out / "compare.json", json.dumps(summary, indent=2) + "\n")
    table = markdown_table({m: r for m, r in results.items()}, COLUMNS)
    write_text_atomic(out / "compare.md", (
        f"# SC-VAE vs baselines: preset {first.preset}, {first.train.steps} steps, seed {first.train.seed}, "
        f"{len(datasets[1])} held-out images\n\n{table}\nEvaluated on the last checkpoint of each run. "
        f"Empty cells do not apply to that model.\n"))
    curves({m: val_curve(out / m) for m in models}, out / "psnr_vs_steps.png", "validation PSNR (dB)",
           "validation PSNR during training")
    _side_by_side(out, models, datasets[1])
    return summary


@torch.no_grad()
def _side_by_side(out: Path, models: list[str], val_set, n: int = 8) -> None:
    """Held-out inputs in the first row, then one labelled row of reconstructions per model."""
    x = val_set.batch(list(range(min(n, len(val_set)))))
    rows = [x] + [load_model(out / m / "checkpoints" / "last").reconstruct(x) for m in models]
    labelled_rows(rows, ["input", *models], out / "reconstructions.png", "held-out images and reconstructions")
