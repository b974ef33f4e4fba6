"""Stage 2 for every family: the learned prior's held-out bits per image against the per-channel entropy model's.

For each trained run (``family=RUN_DIR``), trains the learned prior of :mod:`scvae.prior` with the same
settings on the run's training split, and reports on the run's held-out split: the prior's negative
log-likelihood in bits per image, the bits of the per-channel entropy model (with and without the
neighbour context) fitted on the same training symbols, the decoder's PSNR at those codes, and seconds per
sample. With ``--classifier-data`` (a labelled folder: the runs' training images with their classes) it also
scores ``--samples`` samples against the held-out images in the features of a small classifier trained
there (:mod:`scvae.evaluation.sample_quality`: a Frechet distance and precision / recall, not FID), for the
learned prior and for the PCA + mixture baseline of ``scvae generate``. Writes a samples grid per family
and one JSON:

    python bench/prior_families.py --runs scvae=runs/probe/scvae,vqvae-strong=runs/probe/vqvae-strong \\
        --classifier-data runs/probe/split/train --real-data runs/probe/split/test --samples 1000 --out runs/priors \\
        --json docs/results/prior_families.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from safetensors.torch import load_file, save_file

from scvae.coding import ChannelEntropyModel, code_symbols
from scvae.config import load_run_config
from scvae.data import save_grid
from scvae.data.labelled import load_labelled
from scvae.downstream import collect_code_vectors, fit_code_prior, generate
from scvae.evaluation.sample_quality import SmallClassifier, classifier_features, sample_quality, train_classifier
from scvae.errors import ScvaeError
from scvae.prior import LearnedPrior, PriorConfig, PriorTraining, generate_from_prior, prior_from_symbols
from scvae.presets import PRIOR_BINDINGS, PRIOR_DEFAULTS
from scvae.training import build_datasets, load_model
from scvae.training.trainer import CONFIG_FILE


def feature_classifier(data: str, size: int, out: Path) -> SmallClassifier:
    """The small classifier of the sample-quality measure, trained once on ``data`` and kept in ``out``."""
    labelled = load_labelled(data, size)
    path = out / "classifier.safetensors"
    net = SmallClassifier(len(labelled.classes), labelled.images.shape[1])
    if path.is_file():
        net.load_state_dict(load_file(path))
        return net.eval()
    net = train_classifier(labelled.images, torch.from_numpy(labelled.labels).long())
    out.mkdir(parents=True, exist_ok=True)
    save_file(net.state_dict(), path)
    return net


def trained_prior(folder: Path, run: Path, settings: PriorTraining, step: float | None, binding: str) -> LearnedPrior:
    """The prior saved in ``folder`` (by ``scvae prior train`` or an earlier run of this bench), refused in one
    line unless it was trained on ``run``'s codes, at ``step``, for the same number of steps, with ``binding``."""
    prior = LearnedPrior.load(folder)
    same = (Path(prior.source).resolve() == run.resolve() and prior.info.get("steps") == settings.steps
            and prior.step == step and prior.network.config.binding == binding and "held_out_bits" in prior.info)
    if not same:
        raise ScvaeError(f"{folder}: a prior of {prior.source} after {prior.info.get('steps')} steps with "
                         f"{prior.network.config.binding} binding, not of {run} after {settings.steps} with {binding}; "
                         f"drop --reuse to train one")
    return prior


def measure(family: str, run: Path, settings: PriorTraining, images: int, samples: int, out: Path,
            classifier: SmallClassifier | None, real_images: torch.Tensor | None, reuse: bool = False,
            temperature: float = 1.0, binding: str = PRIOR_DEFAULTS["binding"]) -> dict:
    model = load_model(run)
    train, held_out = build_datasets(load_run_config(run / CONFIG_FILE))
    coded = code_symbols(model, train, images)
    held = code_symbols(model, held_out, images, coded.step)
    start = time.perf_counter()
    if reuse and (out / family).is_dir():
        prior, train_seconds = trained_prior(out / family, run, settings, coded.step, binding), None
    else:
        prior = prior_from_symbols(model, coded, held, settings=settings, config=PriorConfig(binding=binding),
                                   source=str(run))
        train_seconds = time.perf_counter() - start
        prior.save(out / family)
    per_channel = {name: float(ChannelEntropyModel.fit(coded.symbols, prior.step, model.model_type, context=context)
                               .bits(held.symbols).mean()) for name, context in (("channel", False), ("context", True))}
    start = time.perf_counter()
    drawn = generate_from_prior(model, prior, samples, temperature=temperature, seed=0, progress=False)
    seconds_per_sample = (time.perf_counter() - start) / samples
    tag = "" if temperature == 1.0 else f"_T{temperature:g}"
    save_grid(drawn.images[:64], out / f"samples_{family}{tag}.png", nrow=8, upscale=2)
    row = {"family": family, "run": str(run), "temperature": temperature, "binding": binding,
           "prior_bits": prior.info["held_out_bits"], "channel_bits": per_channel["channel"],
           "context_bits": per_channel["context"],
           "psnr": prior.info["held_out_psnr"], "held_out_images": prior.info["held_out_images"],
           "train_images": prior.info["train_images"], "sparse": prior.layout.sparse,
           "entries_per_position": prior.layout.max_entries, "train_seconds": train_seconds,
           "seconds_per_sample": seconds_per_sample, "sample_bits": float(drawn.bits.mean()), "samples": samples}
    if classifier is not None:
        real = classifier_features(classifier, held.images if real_images is None else real_images)
        baseline = generate(model, fit_code_prior(collect_code_vectors(model, train, 2000, progress=False)), samples)
        save_grid(baseline.images[:64], out / f"samples_{family}_pca_mixture.png", nrow=8, upscale=2)
        for name, drawn_images in (("prior", drawn.images), ("baseline", baseline.images)):
            quality = sample_quality(real, classifier_features(classifier, drawn_images))
            row |= {f"{name}_frechet": quality.frechet, f"{name}_precision": quality.precision,
                    f"{name}_recall": quality.recall}
    return row


def table(rows: list[dict]) -> str:
    quality = all("prior_frechet" in r for r in rows)
    lines = ["| family | learned prior, bits/image | per-channel model | with context | saved | PSNR (dB) | s/sample |"
             + (" Frechet (classifier) | precision | recall | PCA + mixture: Frechet, precision, recall |" if quality
                else ""),
             "|---|---|---|---|---|---|---|" + ("---|---|---|---|" if quality else "")]
    for r in rows:
        saved = 1 - r["prior_bits"] / r["context_bits"]
        label = r["family"] + ("" if r.get("temperature", 1.0) == 1.0 else f" (T {r['temperature']:g})")
        line = (f"| {label} | {r['prior_bits']:.0f} | {r['channel_bits']:.0f} | {r['context_bits']:.0f} | "
                f"{100 * saved:.1f} % | {r['psnr']:.2f} | {r['seconds_per_sample']:.3f} |")
        if quality:
            line += (f" {r['prior_frechet']:.2f} | {r['prior_precision']:.2f} | {r['prior_recall']:.2f} | "
                     f"{r['baseline_frechet']:.2f}, {r['baseline_precision']:.2f}, {r['baseline_recall']:.2f} |")
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="family=RUN_DIR,... (runs trained with scvae train)")
    parser.add_argument("--steps", type=int, default=PRIOR_DEFAULTS["steps"])
    parser.add_argument("--images", type=int, default=PRIOR_DEFAULTS["images"])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--classifier-data", help="labelled training folder DIR/<class>/<image> for the "
                                                  "sample-quality classifier (default: no sample quality)")
    parser.add_argument("--real-data", help="labelled folder of real images the samples are compared with, seen "
                                            "by neither the classifier nor the runs (default: the runs' held-out crops)")
    parser.add_argument("--out", default="runs/priors", help="priors and sample grids")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--reuse", action="store_true",
                        help="measure a prior already in --out/FAMILY (e.g. from scvae prior train on the same run, "
                             "with the same --steps) instead of training it again")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="sampling temperature of the learned prior (the PCA + mixture baseline has none)")
    parser.add_argument("--binding", choices=PRIOR_BINDINGS, default=PRIOR_DEFAULTS["binding"],
                        help="the prior's entry binding (scvae.prior.PriorConfig)")
    args = parser.parse_args(argv)
    if not args.temperature > 0:
        print(f"prior_families: --temperature must be > 0, got {args.temperature}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    settings = PriorTraining(steps=args.steps)
    out = Path(args.out)
    runs = [item.partition("=")[::2] for item in args.runs.split(",")]
    classifier = real = None
    if args.classifier_data:
        size = load_model(runs[0][1]).resolution
        classifier = feature_classifier(args.classifier_data, size, out)
        real = load_labelled(args.real_data, size).images if args.real_data else None
    rows = []
    for family, run in runs:
        try:
            rows.append(measure(family, Path(run), settings, args.images, args.samples, out, classifier, real,
                                args.reuse, args.temperature, args.binding))
        except ScvaeError as err:
            print(f"prior_families: {err}", file=sys.stderr)
            return 2
        print(table(rows[-1:]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"settings": settings.__dict__, "rows": rows}, indent=1) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
