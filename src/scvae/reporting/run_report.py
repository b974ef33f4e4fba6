"""``scvae report RUN``: one self-contained HTML page that shows a run.

Everything is computed from the run directory through the library API (the same calls the CLI makes),
written as PNGs next to the page (``<page>_files/``) and embedded in the page as data URIs, so the HTML
file alone can be mailed or archived. Results of ``scvae eval`` and ``scvae segment-eval`` saved in the
run directory are included when present.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import load_run_config
from ..data import save_grid
from ..downstream import (CodeFeatures, SegmentOptions, collect_code_vectors, fit_code_prior, generate, interpolate,
                          segment)
from ..downstream.region_methods import FIXED, region_rows
from ..downstream.segmentation_eval import PAIRED_COLUMNS, PAIRED_NOTE, paired_rows
from ..errors import ScvaeError
from ..files import write_text_atomic
from ..presets import GENERATION_DEFAULTS
from ..prior import LearnedPrior, generate_from_prior
from ..evaluation import evaluate_reconstruction
from ..evaluation.plots import dictionary_image, overlay, panel_figure, training_curves, usage_histogram
from ..training import build_datasets, load_model
from ..training.loggers import read_metrics
from ..training.trainer import CONFIG_FILE, RUN_INFO_FILE
from . import html

SEGMENTATION_PHOTOS = ("astronaut", "coffee", "chelsea")


FIGURES = ("training_curves.png", "reconstructions.png", "usage.png", "dictionary.png", "decoded_atoms.png",
           "interpolation.png", "samples.png", "prior_samples.png", "segments.png", "regions.png")  # what build_report writes into <stem>_files/


def report_files(out: str | os.PathLike) -> list[Path]:
    """The figure files the report ``out`` writes beside itself, in ``<out stem>_files/``."""
    out = Path(out)
    return [out.parent / f"{out.stem}_files" / name for name in FIGURES]


def _read_json(path: Path) -> Any:
    """The parsed JSON at ``path``, or None when it is missing or damaged (the report then says so)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _damaged(path: Path) -> str:
    return html.paragraph(f"{path.name} is damaged or not in the expected form, so it is not shown.", "note")


def build_report(run_dir: str | os.PathLike, out: str | os.PathLike, data: str | None = None,
                 progress: bool = True, n_eval: int = 256, n_fit: int = GENERATION_DEFAULTS["fit_images"],
                 prior: str | os.PathLike | None = None) -> Path:
    """Write the HTML report of ``run_dir`` to ``out`` (figures in ``<out stem>_files/``); returns ``out``.
    ``prior``: a learned prior of the run (``scvae prior train``), whose samples the report shows too."""
    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ScvaeError(f"{run_dir}: not a run directory (no {CONFIG_FILE}); `scvae report` takes a training run")
    run = load_run_config(run_dir / CONFIG_FILE)
    if data is not None:
        run.train.data, run.train.val_data = data, None
    model = load_model(run_dir)
    learned = LearnedPrior.load(prior) if prior is not None else None
    train_set, val_set = build_datasets(run)
    files = out.parent / f"{out.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    stages = [_overview, _training, _reconstruction, _comparison, _dictionary, _interpolation, _generation,
              _segmentation]
    sections = []
    context = {"run": run, "run_dir": run_dir, "model": model, "train": train_set, "val": val_set, "files": files,
               "n_eval": n_eval, "n_fit": n_fit, "prior": learned}
    for stage in tqdm(stages, desc="report", unit="section", disable=not progress):
        sections.append(stage(context))
    title = f"scvae report: {run.model_type} run {run_dir.resolve().name}"
    write_text_atomic(out, html.page(title, [s for s in sections if s]))
    return out


def _overview(c: dict) -> str:
    run, model = c["run"], c["model"]
    rows = read_metrics(c["run_dir"])
    last_step = max((r["step"] for r in rows), default=0)
    grid = model.resolution // model.downsampling_factor
    values = {"model type": run.model_type, "preset": run.preset,
              "parameters": sum(p.numel() for p in model.parameters()), "steps trained": last_step,
              "training data": run.train.data or "built-in scikit-image photos",
              "training images": len(c["train"]), "held-out images": len(c["val"]),
              "latent grid": f"{grid}^2 positions of {model.config['z_channels']} channels"}
    parts = [html.key_values(values),
             html.paragraph("Model config: " + json.dumps(model.config, sort_keys=True), "note")]
    starts = _run_starts(c["run_dir"] / RUN_INFO_FILE)
    if starts is None:
        parts.append(html.paragraph(f"{RUN_INFO_FILE} is unreadable: how the run was made is not known.", "note"))
    elif starts:
        rows = {f"{i + 1}. {s.get('date', '')}": {"from step": s.get("step"), "command": " ".join(s.get("command", [])),
                                                   "versions": ", ".join(f"{k} {v}" for k, v in s.get("versions", {}).items())}
                for i, s in enumerate(starts)}
        parts += [html.paragraph("How the run was made (every start and resume):"),
                  html.table(rows, ["from step", "command", "versions"], corner="start (UTC)")]
    return html.section("Run", *parts)


def _run_starts(path: Path) -> list[dict] | None:
    """The recorded starts of a run ([] when the run predates the record, None when the file is damaged)."""
    if not path.is_file():
        return []
    try:
        starts = json.loads(path.read_text())["starts"]
        return starts if isinstance(starts, list) and all(isinstance(s, dict) for s in starts) else None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def _held_out(t) -> str:
    """Which images the held-out numbers come from, in words (``t``: the run's TrainConfig)."""
    if t.val_data:
        return f"the separate folder {t.val_data}"
    if t.data is None:
        return "the built-in photos' held-out bottom band"
    if t.split_group == "none":
        return (f"{t.val_ratio:.0%} of the files held out file by file: with video frames or near-duplicates "
                "this is an in-distribution score, not generalisation")
    return f"{t.val_ratio:.0%} of the files held out by whole {t.split_group} groups"


def _training(c: dict) -> str:
    rows = read_metrics(c["run_dir"])
    if not rows:
        return html.section("Training", html.paragraph("No metrics.jsonl in this run.", "note"))
    path = c["files"] / "training_curves.png"
    training_curves(rows, path)
    return html.section("Training", html.image(path, "training loss and validation metrics against steps"))


def _reconstruction(c: dict) -> str:
    model, val_set, files = c["model"], c["val"], c["files"]
    report = evaluate_reconstruction(model, val_set, 64, c["n_eval"])
    c["report"] = report
    x = val_set.batch(list(range(min(8, len(val_set)))))
    save_grid([x, model.reconstruct(x)], files / "reconstructions.png", nrow=len(x), upscale=max(1, 96 // x.shape[-1]))
    usage_histogram({"model_type": model.model_type, "usage_counts": report.usage_counts,
                     "diagnostics": report.diagnostics, "data": {"n_images": report.n_images}}, files / "usage.png")
    parts = [html.paragraph(f"{report.n_images} held-out images (central crops) from {_held_out(c['run'].train)}:"),
             html.key_values(report.summary()),
             html.image(files / "reconstructions.png", "held-out images (top) over their reconstructions (bottom)"),
             html.image(files / "usage.png", "atom / code usage over the held-out images (KL per channel for a VAE)")]
    whole = c["run_dir"] / "eval" / "eval.json"
    if whole.is_file():
        saved = _read_json(whole)
        try:
            source = f"{saved['data']['n_images']} images of {saved['data']['source']}"
            parts[:0] = [html.paragraph(f"scvae eval over {source}:"), html.key_values(dict(saved["metrics"]))]
        except (KeyError, TypeError, ValueError):
            parts.insert(0, _damaged(whole))
    return html.section("Reconstruction and code statistics", *parts)


@torch.no_grad()
def _dictionary(c: dict) -> str:
    model, files = c["model"], c["files"]
    if model.model_type != "scvae":
        return ""
    dictionary = model.lista.dictionary
    if model.lista.learn_dictionary:  # a fixed DCT's tiles say nothing about the run
        dictionary_image(dictionary, files / "dictionary.png")
        parts = [html.image(files / "dictionary.png", f"the {dictionary.shape[1]} learned atoms, each a "
                            f"{int(dictionary.shape[0] ** 0.5)}^2 patch over the latent channels")]
    else:
        parts = [html.paragraph(f"Fixed dictionary: the {dictionary.shape[1]} atoms of the overcomplete 2-D DCT over "
                                f"the {dictionary.shape[0]} latent channels. What each atom means in pixels:")]
    codes = model.encode(c["val"].batch(list(range(min(16, len(c["val"])))))).codes
    magnitude = float(codes[codes != 0].abs().median()) if (codes != 0).any() else 1.0
    k, side = model.n_atoms, model.resolution // model.downsampling_factor
    decoded = model.decode(torch.eye(k).view(k, k, 1, 1).expand(k, k, side, side) * magnitude).sample.clamp(-1, 1)
    save_grid(decoded, files / "decoded_atoms.png", nrow=int(np.ceil(np.sqrt(k))),
              upscale=max(1, 48 // model.resolution))
    parts.append(html.image(files / "decoded_atoms.png", f"each atom alone at every position (value {magnitude:.2f}, "
                            "the median active magnitude), decoded: what an atom means in pixels"))
    return html.section("Dictionary", *parts)


def _interpolation(c: dict) -> str:
    model, val_set, files = c["model"], c["val"], c["files"]
    n = len(val_set)
    pairs = [(0, n // 2), (n // 4, 3 * n // 4), (n // 8, n - 1)] if n > 1 else []
    strips, notes = [], []
    for a, b in pairs:
        if a == b:
            continue
        result = interpolate(model, val_set.crop(a), val_set.crop(b), steps=8, space="codes")
        strips.append(result.images)
        notes.append(f"{100 * result.monotonicity_violation():.1f}%")
    if not strips:
        return ""
    save_grid(strips, files / "interpolation.png", nrow=8, upscale=max(1, 96 // model.resolution))
    return html.section("Interpolation", html.image(
        files / "interpolation.png", "each row: held-out image A (left) to B (right), linear in code space at the "
        f"model's sparsity; largest return towards A per row: {', '.join(notes)} of the final distance"))


def _generation(c: dict) -> str:
    model, files, g = c["model"], c["files"], GENERATION_DEFAULTS
    vectors = collect_code_vectors(model, c["train"], c["n_fit"], seed=g["seed"], progress=False)
    prior = fit_code_prior(vectors, g["components"], g["mixtures"], g["seed"])
    result = generate(model, prior, g["n"], g["seed"])
    save_grid(result.images, files / "samples.png", nrow=8, upscale=max(1, 96 // model.resolution))
    return html.section("Generation", html.image(
        files / "samples.png", f"{g['n']} samples (the defaults of `scvae generate`): PCA({prior.n_components}) + {prior.mixture.n_components}-component "
        f"Gaussian mixture fitted to {len(vectors)} training code maps, projected to valid codes and decoded; "
        f"novelty (nearest training code / typical spacing) median {np.median(result.novelty):.2f}")
        + _learned_prior_samples(c))


def _learned_prior_samples(c: dict) -> str:
    model, files, g, prior = c["model"], c["files"], GENERATION_DEFAULTS, c["prior"]
    if prior is None:
        return ""
    drawn = generate_from_prior(model, prior, g["n"], seed=g["seed"], progress=False)
    save_grid(drawn.images, files / "prior_samples.png", nrow=8, upscale=max(1, 96 // model.resolution))
    held = prior.info.get("held_out_bits")
    return html.image(files / "prior_samples.png", f"{g['n']} samples of the learned prior (`scvae generate --prior`, "
                      f"temperature 1), {drawn.bits.mean():.0f} bits each under it"
                      + (f"; held-out codes cost {held:.0f} bits per image" if held is not None else ""))


def _segmentation_photos(c: dict, size: int) -> tuple[list[np.ndarray], list[str], str]:
    """Three held-out images of the run's own data when they are at least ``size`` px on their shorter
    side (the working images of data_scale > 1 runs); otherwise three built-in photos."""
    val = c["val"]
    own = [i for i in range(len(val)) if min(np.asarray(val.images[i]).shape[:2]) >= size][:3]
    if own:
        return [np.asarray(val.images[i])[:, :, :3] for i in own], [val.names[i] for i in own], "held-out images"
    import skimage.data

    photos = [np.asarray(getattr(skimage.data, n)())[:, :, :3] for n in SEGMENTATION_PHOTOS]
    return photos, list(SEGMENTATION_PHOTOS), "built-in photos (the run's own images are smaller than that)"


def _comparison(c: dict) -> str:
    """The comparison and rate-distortion figures of ``scvae compare`` / ``scvae rd`` when the run is one
    of theirs (they write into the run's parent folder)."""
    folder, parts = c["run_dir"].parent, []
    figures = [("rd.png", "rd.json", "rate-distortion: held-out PSNR against bits per image, every family (scvae rd)"),
               ("reconstructions.png", "compare.json",
                "held-out images and each compared model's reconstructions (scvae compare)")]
    for png, marker, caption in figures:
        if (folder / png).is_file() and (folder / marker).is_file():
            parts.append(html.image(folder / png, caption))
    if (folder / "compare.json").is_file():
        saved = _read_json(folder / "compare.json")
        rows = saved.get("models", {}) if isinstance(saved, dict) else None
        if not isinstance(rows, dict):
            parts.insert(0, _damaged(folder / "compare.json"))
        elif rows:
            columns = [k for k in ("psnr", "ssim", "bits_per_image", "active_frac", "atoms_used_frac", "codebook_usage")
                       if any(k in r for r in rows.values() if isinstance(r, dict))]
            parts.insert(0, html.table({k: v for k, v in rows.items() if isinstance(v, dict)}, columns, corner="model"))
    return html.section("Comparison with the other families", *parts) if parts else ""


def _saved_segment_eval(path: Path) -> list[str]:
    """The tables of a saved ``segment_eval.json``, or a note when it is damaged."""
    result = _read_json(path)
    try:
        parts = [html.paragraph(f"scvae segment-eval on {result['n_images']} images ({result.get('title', '')}), "
                                f"k = {result['k']}:"),
                 html.table(result["methods"], ["miou", "pixel_accuracy", "ari", "nmi", "sec_per_image"])]
        paired = paired_rows(result)
        if paired:
            of = result["paired_miou_difference"]["of"]
            parts.append(html.paragraph(f"{of} mIoU minus each other method's ({PAIRED_NOTE}):"))
            parts.append(html.table(paired, PAIRED_COLUMNS, corner="minus"))
        return parts
    except (KeyError, TypeError, ValueError, AttributeError):
        return [_damaged(path)]


def _segmentation(c: dict) -> str:
    model, files = c["model"], c["files"]
    parts = []
    saved = c["run_dir"] / "segment_eval"
    if (saved / "segment_eval.json").is_file():
        parts += _saved_segment_eval(saved / "segment_eval.json")
        if (saved / "overlays.png").is_file():
            parts.append(html.image(saved / "overlays.png", "ground truth and each method's clusters"))
    size = 4 * model.resolution
    features = CodeFeatures(model, size)
    photos, names, source = _segmentation_photos(c, size)
    rows = [[p] + [overlay(p, segment(features, p, SegmentOptions(k=k))) for k in (2, 4, 8)] for p in photos]
    panel_figure(rows, ["photo", "k = 2", "k = 4", "k = 8"], files / "segments.png", names)
    parts.append(html.image(files / "segments.png", f"k-means on the per-position codes of {source} encoded "
                            f"at shorter side {size} px (one position = {model.downsampling_factor}^2 pixels there)"))
    panel_figure(region_rows(photos, model), ["photo", f"region merging (level {FIXED['merge-codes']})",
                                               f"Felzenszwalb-Huttenlocher (scale {FIXED['felzenszwalb']})"],
                 files / "regions.png", names)
    parts.append(html.image(files / "regions.png", "regions, boundaries drawn: superpixels merged by colour, "
                            "boundaries and the codes' atom histograms (scvae segment --method regions), next to "
                            "scikit-image's Felzenszwalb-Huttenlocher, each at its parameter chosen on BSDS500 train"))
    return html.section("Unsupervised segmentation", *parts)

