"""``scvae rd``: a small sweep per model family, each point's rate (bits per image) and PSNR on the same
held-out images, drawn as one rate-distortion figure with a Markdown + JSON table.

Each family sweeps the knob that sets its rate (SC-VAE the active atoms per code, the strong VQ-VAE its
codebook size, FSQ its levels, the residual VQ its number of stages, which takes it to the rates of
SC-VAE's denser codes, the beta-VAE its KL weight, the AE trained for rate its rate weight); the plain AE
and the VAE's means are also quantised after training at a sweep of steps (see :func:`ratings`). On a GPU, ``bench/rd_points.py`` trains such points in parallel.
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
from .files import write_text_atomic
from .evaluation import estimate_rate
from .evaluation.equal_rate import OTHERS, equal_rate_margins
from .evaluation.plots import rate_distortion_figure
from .evaluation.report import CONVENTIONS, package_versions
from .training import build_datasets, load_model

# Each family's points, as model overrides of the preset ({} is the preset itself). SC-VAE's low-rate points
# use 121 atoms, a learned dictionary and T = 16 LISTA values (no refit: its exact values cost more bits than
# they gain), and quantisation-aware values (``quantize_step``) above k = 2; k = 2 needs a slower
# balancing, k = 4 and 6 none (docs/design.md, "Fourth round"). The step grows finer as k grows: at k = 8 a
# step of 0.71 gives 0.35-0.8 dB more than 1.41 for 17 % more bits ("Seventh round"). The quantizers go
# from 256 codes up to the largest codebook that still gains (FSQ saturates near 8^7 codes at this budget);
# the residual VQ adds stages of 1024 codes, up to 10 bits each per position.
_LOW_RATE_SC = dict(n_atoms=121, refit=False, n_iter=16, learn_dictionary=True)
_COARSE = dict(quantize_step=2 ** 0.5)  # about 2 bits per value (docs/design.md, "Fourth round")
_FINE = dict(quantize_step=2 ** -0.5)  # about 3 bits per value
# The continuous families are rated two ways. A plain AE (and a VAE's posterior means) quantised after
# training, at each of these steps (None: the largest within 0.1 dB): a sweep of one trained model that
# costs no training. The AE trained for rate (``rate_weight``, Balle et al. 2017) at its own step of 1. The
# VAE also by its KL, the bits-back rate, as the family "vae-kl".
POST_TRAINING_STEPS = (None, 2.0, 2 ** 0.5, 1.0, 2 ** -0.5, 0.5, 2 ** -1.5, 0.25, 2 ** -2.5)
RATE_WEIGHTS = (3e-4, 1e-3, 3e-3, 1e-2)
SWEEPS: dict[str, list[dict[str, Any]]] = {
    "scvae": [dict(_LOW_RATE_SC, max_active=2, balance_step=1e-4),
              dict(_LOW_RATE_SC, max_active=4, balance_step=0.0, **_COARSE),
              dict(_LOW_RATE_SC, max_active=6, balance_step=0.0, **_COARSE),
              dict(_LOW_RATE_SC, max_active=6, balance_step=0.0, quantize_step=1.0),
              dict(_LOW_RATE_SC, max_active=8, **_FINE),
              dict(_LOW_RATE_SC, max_active=10, **_FINE), {}],
    "vqvae-strong": [{"codebook_size": 256}, {}, {"codebook_size": 4096}, {"codebook_size": 16384}],
    "fsq": [{"levels": [8, 6, 5]}, {}, {"levels": [8, 8, 8, 5, 5, 5]}, {"levels": [8, 8, 8, 8, 5, 5]},
            {"levels": [8] * 7}],
    "rvq": [{"num_quantizers": 2}, {"num_quantizers": 3}, {"num_quantizers": 4}, {}, {"num_quantizers": 16}],
    "vae": [{"kl_weight": w} for w in (1.0, 1e-1, 1e-2, 1e-3, 1e-4)],
    "ae": [{}, *({"rate_weight": w} for w in RATE_WEIGHTS)],
}


def ratings(family: str, changed: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """How one trained run is rated: (the family label its points get, their setting, estimate_rate's
    keywords), one per point (see POST_TRAINING_STEPS)."""
    if family == "ae" and changed.get("rate_weight", 0) > 0:
        return [("ae-rate", changed, {})]
    if family not in ("ae", "vae"):
        return [(family, changed, {})]
    swept = [(family, {**changed, "step": step} if step else changed, {"step": step, "kl": False})
             for step in POST_TRAINING_STEPS]
    return [("vae-kl", changed, {})] + swept if family == "vae" else swept


def run_name(family: str, overrides: dict[str, Any]) -> str:
    """The run folder of one sweep point: the family's name for the preset (the folder ``scvae compare``
    uses, so the two commands reuse each other's runs), else the family and each override."""
    def text(value: Any) -> str:
        return "x".join(map(str, value)) if isinstance(value, list) else str(value)

    return family + "".join(f"-{key}-{text(value)}" for key, value in overrides.items())


def rate_distortion(out: str | os.PathLike, families: list[str], preset: str | None = None,
                    steps: int | None = None, data: str | None = None, overrides: list[str] | None = None,
                    sweeps: dict[str, list[dict[str, Any]]] | None = None, overwrite: bool = False,
                    progress: bool = False) -> dict[str, Any]:
    """Train (or reuse) every sweep point into ``out/<run name>``; write rd.json, rd.md and rd.png."""
    out, sweeps = Path(out), {**SWEEPS, **(sweeps or {})}
    unknown = [f for f in families if f not in sweeps]
    if unknown:
        raise ScvaeError(f"no rate sweep for {', '.join(unknown)}; choose from {', '.join(sweeps)}")
    plan = []
    for family in families:
        base = resolve_config(preset, family, None, overrides, steps=steps, data=data)
        for point in sweeps[family]:
            changed = {k: v for k, v in point.items() if base.model.get(k) != v}
            extra = [f"model.{k}={json.dumps(v)}" for k, v in changed.items()]
            run = resolve_config(preset, family, None, [*(overrides or []), *extra], steps=steps, data=data)
            plan.append((family, changed, run_name(family, changed), run))
    first = plan[0][3]
    datasets = build_datasets(first)  # one split for every point
    points = []
    for family, changed, name, run in tqdm(plan, desc="rate-distortion", unit="run", disable=not progress):
        train_or_reuse(run, out / name, datasets, overwrite, progress)
        model = load_model(out / name / "checkpoints" / "last")
        for label, setting, options in ratings(family, changed):
            rate = estimate_rate(model, datasets[1], **options)
            points.append({"family": label, "run": name, "setting": setting, **rate.to_dict()})
    summary = {"preset": first.preset, "steps": first.train.steps, "n_val_images": len(datasets[1]),
               "data": first.train.data or "built-in scikit-image photos", "points": points,
               "conventions": CONVENTIONS, "versions": package_versions()}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "rd.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(out / "rd.md", rd_markdown(summary))
    rate_distortion_figure(points, out / "rd.png",
                           f"rate-distortion, {summary['n_val_images']} held-out images, {summary['steps']} steps each")
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
            CONVENTIONS["rate"] + ".\n" + _frontier_margins(summary["points"]))


def _frontier_margins(points: list[dict[str, Any]]) -> str:
    """SC-VAE's margin at each of its points over the envelope of every other family (seed means): at coded
    rates (without the beta-VAE's KL reading), then with it when there is one."""
    if not any(p["family"] == "scvae" for p in points) or all(p["family"] == "scvae" for p in points):
        return ""
    readings = [("at coded rates", [p for p in points if p["family"] != "vae-kl"])]
    if any(p["family"] == "vae-kl" for p in points):
        readings.append(("with the beta-VAE read at its KL (bits-back) rate", points))
    text = ""
    for title, chosen in readings:
        rows = ["| SC-VAE setting | bits per image | PSNR (dB) | best other family there | margin |",
                "|---|---|---|---|---|"]
        for r in equal_rate_margins(chosen, "scvae", OTHERS):
            there = "out of their range" if r["baseline"] is None else f"{r['baseline']:.2f}"
            margin = "" if r["margin"] is None else f"{r['margin']:+.2f}"
            rows.append(f"| {r['setting']} | {r['bits']:.0f} | {r['psnr']:.2f} | {there} | {margin} |")
        text += f"\nSC-VAE against the envelope of every other family at equal rate, {title}:\n\n" + "\n".join(rows) + "\n"
    return text
