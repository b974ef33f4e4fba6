"""``scvae rd``: a small sweep per model family, each point's rate (bits per image) and PSNR on the same
held-out images, drawn as one rate-distortion figure with a Markdown + JSON table.

Each family sweeps the knob that sets its rate: SC-VAE the active atoms per code, VQ-VAE and FSQ the
codebook size, the VAE its KL weight; the AE is one point (its rate is that of its quantised latent).
Runs are trained with the same backbone, split, seed and step budget, and a finished run of the same
config is reused (``scvae compare`` trains the same runs, so the two commands can share an output folder).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .compare import train_or_reuse
from .config import resolve_config
from .errors import ScvaeError
from .evaluation import estimate_rate
from .evaluation.plots import curves
from .evaluation.report import CONVENTIONS, package_versions
from .training import build_datasets, load_model

# k = 1 (one atom and its coefficient per position) puts SC-VAE at about a VQ token's rate.
SWEEPS: dict[str, tuple[str | None, list[Any]]] = {
    "scvae": ("max_active", [1, 4, 15]),
    "vqvae-strong": ("codebook_size", [1024]),
    "fsq": ("levels", [[8, 6, 5], [8, 5, 5, 5]]),
    "vae": ("kl_weight", [1.0]),
    "ae": (None, [None]),
}


def run_name(family: str, key: str | None, value: Any) -> str:
    """The run folder of one sweep point; the preset's own setting gets the plain family name, which is
    the folder ``scvae compare`` uses, so the two commands reuse each other's runs."""
    if key is None:
        return family
    text = "x".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"{family}-{key}-{text}"


def rate_distortion(out: str | os.PathLike, families: list[str], preset: str | None = None,
                    steps: int | None = None, data: str | None = None, overrides: list[str] | None = None,
                    sweeps: dict[str, tuple[str | None, list[Any]]] | None = None, overwrite: bool = False,
                    progress: bool = True) -> dict[str, Any]:
    """Train (or reuse) every sweep point into ``out/<run name>``; write rd.json, rd.md and rd.png."""
    out, sweeps = Path(out), {**SWEEPS, **(sweeps or {})}
    unknown = [f for f in families if f not in sweeps]
    if unknown:
        raise ScvaeError(f"no rate sweep for {', '.join(unknown)}; choose from {', '.join(sweeps)}")
    plan = []
    for family in families:
        key, values = sweeps[family]
        base = resolve_config(preset, family, None, overrides, steps=steps, data=data)
        for value in values:
            extra = [] if key is None else [f"model.{key}={json.dumps(value)}"]
            run = resolve_config(preset, family, None, [*(overrides or []), *extra], steps=steps, data=data)
            name = family if key is None or base.model.get(key) == value else run_name(family, key, value)
            plan.append((family, key, value, name, run))
    datasets = build_datasets(plan[0][4])  # one split for every point
    points = []
    for family, key, value, name, run in tqdm(plan, desc="rate-distortion", unit="run", disable=not progress):
        train_or_reuse(run, out / name, datasets, overwrite, progress)
        rate = estimate_rate(load_model(out / name / "checkpoints" / "last"), datasets[1])
        points.append({"family": family, "run": name, "setting": {key: value} if key else {}, **rate.to_dict()})
    summary = {"preset": plan[0][4].preset, "steps": plan[0][4].train.steps, "n_val_images": len(datasets[1]),
               "data": plan[0][4].train.data or "built-in scikit-image photos", "points": points,
               "conventions": CONVENTIONS, "versions": package_versions()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "rd.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "rd.md").write_text(rd_markdown(summary))
    series = {f: [(p["bits_per_image"], p["psnr"]) for p in points if p["family"] == f] for f in families}
    curves(series, out / "rd.png", "held-out PSNR (dB)",
           f"rate-distortion, {summary['n_val_images']} held-out images, {summary['steps']} steps each",
           xlabel="bits per image (log scale)", logx=True)
    return summary


def rd_markdown(summary: dict[str, Any]) -> str:
    rows = ["| family | setting | bits per image | bits per pixel | PSNR (dB) | PSNR before quantising | step |",
            "|---|---|---|---|---|---|---|"]
    for p in summary["points"]:
        setting = ", ".join(f"{k}={v}" for k, v in p["setting"].items()) or "preset"
        step = f"{p['step']:.4g}" if p["step"] else ""
        rows.append(f"| {p['family']} | {setting} | {p['bits_per_image']:.0f} | {p['bits_per_pixel']:.3f} | "
                    f"{p['psnr']:.2f} | {p['psnr_unquantised']:.2f} | {step} |")
    return (f"# Rate-distortion: preset {summary['preset']}, {summary['steps']} steps, "
            f"{summary['n_val_images']} held-out images\n\n" + "\n".join(rows) + "\n\nRate: " +
            CONVENTIONS["rate"] + ".\n")
