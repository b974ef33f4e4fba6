"""``scvae prior train`` (fit the learned prior of scvae.prior to a run's codes) and ``scvae generate`` (sample it,
or the PCA + mixture baseline); thin calls into the library."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import ScvaeError
from ..presets import GENERATION_DEFAULTS, PRIOR_BINDINGS, PRIOR_DEFAULTS
from .downstream import check_positive, png_out, run_datasets, training_images
from .outputs import make_folder


def _settings_key(args: argparse.Namespace) -> dict:
    """What a checkpoint must match to be resumed: the model, the data and the training settings."""
    return {"model": str(Path(args.model).resolve()), "data": args.data, "steps": args.steps,
            "batch_size": args.batch_size, "lr": args.lr, "images": args.images, "seed": args.seed,
            "binding": args.binding}


def _claim_prior_folder(out: Path, overwrite: bool, key: dict):
    """The checkpoint state to resume from, or None to start; refuses a finished prior (without
    --overwrite), a checkpoint of other settings, and a folder with other files."""
    from ..prior.training import CHECKPOINT, CONFIG, WEIGHTS, load_checkpoint

    if out.exists() and not out.is_dir():
        raise ScvaeError(f"{out}: is a file; --out must be a folder for the prior")
    if not out.is_dir():
        make_folder(out)
        return None
    files = {p.name for p in out.iterdir()}
    if overwrite:
        for name in (CONFIG, WEIGHTS, CHECKPOINT):
            (out / name).unlink(missing_ok=True)
        files -= {CONFIG, WEIGHTS, CHECKPOINT}
    if CONFIG in files or WEIGHTS in files:
        raise ScvaeError(f"{out}: already holds a trained prior; pass --overwrite to replace it")
    if files - {CHECKPOINT, CHECKPOINT + ".partial"}:
        raise ScvaeError(f"{out}: folder is not empty and holds no prior checkpoint; choose another --out")
    found = load_checkpoint(out)
    if found is None:
        return None
    state, meta = found
    if meta != key:
        changed = sorted(k for k in key if meta.get(k) != key[k])
        raise ScvaeError(f"{out}: holds a checkpoint of other settings ({', '.join(changed)}); pass --overwrite "
                         f"to start afresh")
    return state


def cmd_prior_train(args: argparse.Namespace) -> int:
    from ..prior import PriorConfig, PriorTraining, fit_prior
    from ..prior.training import CHECKPOINT, save_checkpoint
    from ..training import load_model

    for name in ("steps", "batch_size", "images", "save_every"):
        if getattr(args, name) < 1:
            raise ScvaeError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if not args.lr > 0:
        raise ScvaeError(f"--lr must be positive, got {args.lr}")
    out, key = Path(args.out), _settings_key(args)
    model = load_model(args.model)
    train, held_out = run_datasets(args.model, args.data, model)
    resume = _claim_prior_folder(out, args.overwrite, key)
    if resume is not None:
        print(f"resuming the prior in {out} from step {int(resume['step'])}")
    settings = PriorTraining(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             save_every=args.save_every)
    prior = fit_prior(model, train, held_out, settings=settings, config=PriorConfig(binding=args.binding),
                      images=args.images, source=str(args.model),
                      resume=resume, progress=not args.no_progress,
                      checkpoint=lambda step, state: save_checkpoint(out, state, key))
    prior.save(out)
    (out / CHECKPOINT).unlink(missing_ok=True)
    info = prior.info
    held = (f"{info['held_out_bits']:.1f} bits per image on {info['held_out_images']} held-out crops, "
            f"decoded at {info['held_out_psnr']:.2f} dB PSNR") if "held_out_bits" in info else "no held-out images"
    print(f"prior for the {prior.model_type} model -> {out}; {info['train_images']} training crops, "
          f"{args.steps} steps; {held}")
    if args.json:
        Path(args.json).write_text(json.dumps(prior.to_dict(), indent=2) + "\n")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    if args.prior is not None:
        return _generate_from_prior(args)
    from ..data import save_grid
    from ..downstream import collect_code_vectors, fit_code_prior, generate
    from ..training import load_model

    if args.model is None:
        raise ScvaeError("generate needs --model (the PCA + mixture baseline) or --prior (a learned prior)")
    for name in ("n", "fit_images", "components", "mixtures"):
        check_positive(name.replace("_", "-"), getattr(args, name))
    out = png_out(args)
    model = load_model(args.model)
    train_set = training_images(args.model, args.data, model)
    vectors = collect_code_vectors(model, train_set, args.fit_images, seed=args.seed, progress=not args.no_progress)
    prior = fit_code_prior(vectors, args.components, args.mixtures, args.seed)
    result = generate(model, prior, args.n, args.seed)
    save_grid(result.images, out, nrow=int(np.ceil(np.sqrt(args.n))), upscale=max(1, 96 // model.resolution))
    print(f"{args.n} samples -> {out}; prior: PCA({prior.n_components}) + {prior.mixture.n_components}-component "
          f"Gaussian mixture over {len(vectors)} training code maps; novelty (nearest-training distance / typical) "
          f"median {np.median(result.novelty):.2f}, min {result.novelty.min():.2f}")
    return 0


def _generate_from_prior(args: argparse.Namespace) -> int:
    import time

    from ..data import save_grid
    from ..prior import LearnedPrior, generate_from_prior
    from ..training import load_model

    check_positive("n", args.n)
    if not args.temperature > 0:
        raise ScvaeError(f"--temperature must be positive, got {args.temperature}")
    prior = LearnedPrior.load(args.prior)
    model_path = args.model or prior.source
    if not model_path:
        raise ScvaeError(f"{args.prior}: the prior does not name its model; pass --model")
    out = png_out(args)
    model = load_model(model_path)
    start = time.perf_counter()
    result = generate_from_prior(model, prior, args.n, args.temperature, args.seed, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    save_grid(result.images, out, nrow=int(np.ceil(np.sqrt(args.n))), upscale=max(1, 96 // model.resolution))
    print(f"{args.n} samples -> {out}; learned prior at temperature {args.temperature:g}, "
          f"{result.bits.mean():.0f} bits per sample under the prior, {seconds / args.n:.2f} s per sample")
    return 0


def add_prior_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prior", help="the learned prior over a model's codes (stage 2): train it")
    actions = p.add_subparsers(dest="prior_command", parser_class=type(p))
    t = actions.add_parser("train", help="train an autoregressive prior on a run's training codes; resumes")
    d = PRIOR_DEFAULTS
    t.add_argument("--model", required=True, help="run directory or saved model directory")
    t.add_argument("--data", help="images to train on (default: the run's training split; its held-out split "
                                  "gives the held-out bits)")
    t.add_argument("--out", required=True, help="folder for the prior (config.json + prior.safetensors)")
    t.add_argument("--steps", type=int, default=d["steps"], help=f"optimisation steps (default {d['steps']})")
    t.add_argument("--batch-size", type=int, default=d["batch_size"], help=f"default {d['batch_size']}")
    t.add_argument("--lr", type=float, default=d["lr"], help=f"default {d['lr']}")
    t.add_argument("--images", type=int, default=d["images"],
                   help=f"training crops encoded once (default {d['images']})")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--binding", choices=PRIOR_BINDINGS, default=d["binding"],
                   help="how an entry's channel and value embeddings combine (default %(default)s; product also "
                        "binds which channel had which value)")
    t.add_argument("--save-every", type=int, default=d["save_every"],
                   help=f"steps between checkpoints a stopped run resumes from (default {d['save_every']})")
    t.add_argument("--json", help="also write the prior's config and scores to this JSON file")
    t.add_argument("--overwrite", action="store_true", help="replace a prior or checkpoint in --out")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_prior_train)
    p.set_defaults(func=_choose_action)

    p = sub.add_parser("generate", help="sample new images from a learned prior (--prior), or from a PCA + "
                                        "Gaussian-mixture baseline over training codes (--model alone)")
    p.add_argument("--model", help="run directory or saved model directory (with --prior: default, the prior's)")
    p.add_argument("--prior", help="a prior folder from `scvae prior train`")
    p.add_argument("--temperature", type=float, default=1.0, help="with --prior: below 1 sharpens, above flattens")
    g = GENERATION_DEFAULTS
    p.add_argument("--n", type=int, default=g["n"], help=f"number of samples (default {g['n']})")
    p.add_argument("--data", help="images to fit the prior on (default: the run's training data)")
    p.add_argument("--fit-images", type=int, default=g["fit_images"],
                   help=f"training crops to fit on (default {g['fit_images']})")
    p.add_argument("--components", type=int, default=g["components"], help=f"PCA components (default {g['components']})")
    p.add_argument("--mixtures", type=int, default=g["mixtures"],
                   help=f"Gaussian mixture components (default {g['mixtures']})")
    p.add_argument("--seed", type=int, default=g["seed"])
    p.add_argument("--out", default="samples.png", help="output PNG grid")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_generate)


def _choose_action(args: argparse.Namespace) -> int:
    raise ScvaeError("scvae prior: choose an action: train")
