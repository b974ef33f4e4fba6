"""``scvae`` command line: a thin layer over the library. Every user error is one line and exit code 2."""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Callable, Sequence

from ..errors import ScvaeError
from . import commands
from .coding import add_coding_commands
from .downstream import add_downstream_commands
from .outputs import forget_created_folders, remove_created_folders
from .prior import add_prior_command
from .probe import add_probe_command


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise ScvaeError(f"{self.prog}: {message}")


class _TrainParser(_Parser):
    """``scvae train --help`` ends with every KEY=VALUE key; listed at print time, so that building the
    parser (and ``scvae --help``) stays free of torch."""

    def format_help(self) -> str:
        import dataclasses
        import inspect
        import textwrap

        from ..config import TrainConfig
        from ..models import MODEL_REGISTRY

        def wrap(text: str) -> str:
            return textwrap.fill(text, 100, initial_indent="  ", subsequent_indent="    ")

        def default(f: dataclasses.Field) -> object:
            return f.default_factory() if f.default is dataclasses.MISSING else f.default

        fields = dataclasses.fields(TrainConfig)
        width = max(len(f.name) for f in fields)
        lines = ["", "training keys (KEY=VALUE or train.KEY=VALUE; see README, Config); the preset may set other "
                 "defaults:"]
        notes = _field_comments(TrainConfig)
        lines += [f"  {f.name:<{width}}  {getattr(f.type, '__name__', f.type)}, default {default(f)!r}"
                  + (f"  ({notes[f.name]})" if f.name in notes else "") for f in fields]
        lines += ["",
                 "model keys (model.KEY=VALUE), as name=default, by --model-type (the preset sets most):"]
        for name, cls in MODEL_REGISTRY.items():
            params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
            lines.append(wrap(f"{name}: {', '.join(f'{p.name}={p.default!r}' for p in params)}"))
        return super().format_help() + "\n".join(lines) + "\n"


def _say(text: str) -> None:
    """One line on stderr, even for paths that are not valid UTF-8 (shown with backslash escapes)."""
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    print(text.encode(encoding, "backslashreplace").decode(encoding), file=sys.stderr)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    _say(f"scvae: warning: {message}")


def _image_arguments(p: argparse.ArgumentParser, out_help: str, size_help: str) -> None:
    """The arguments of the commands that take a model and image files (reconstruct, encode)."""
    p.add_argument("--model", required=True, help="run directory, saved model directory or Hub repo id")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--size", help=size_help)


def _metric_weight_arguments(p: argparse.ArgumentParser) -> None:
    """Local weights of the learned metrics (eval, compare); a metric without its files is skipped."""
    p.add_argument("--lpips-vgg", help="torchvision's VGG16 state dict vgg16-397923af.pth (or SCVAE_LPIPS_VGG)")
    p.add_argument("--lpips-lin", help="LPIPS v0.1 linear layers for VGG, vgg.pth (or SCVAE_LPIPS_LIN)")
    p.add_argument("--inception-weights", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth for rFID "
                                               "(or SCVAE_INCEPTION_WEIGHTS)")


def _sweep_arguments(p: argparse.ArgumentParser, list_flag: str, default: str, out: str) -> None:
    """The arguments of the commands that train several runs on one split (compare, rd)."""
    p.add_argument("--data", help="training data (default: built-in photos); val_ratio is held out")
    p.add_argument("--preset", help="shared preset (default small-32)")
    p.add_argument("--steps", type=int, help="step budget per run")
    p.add_argument(list_flag, default=default, help="comma-separated model types")
    p.add_argument("--out", default=out, help="output folder (a finished run with the same config is reused)")
    p.add_argument("--overwrite", action="store_true", help="replace unfinished or different runs in --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="training overrides shared by all runs")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scvae", description="SC-VAE: sparse-coding VAE with learned ISTA.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    sub._parser_class = _TrainParser  # add_parser takes no parser class before Python 3.14
    p = sub.add_parser("train", help="train a model (built-in photos when --data is not given)")
    sub._parser_class = _Parser
    p.add_argument("--config", help="YAML run config (keys: model_type, preset, model, train)")
    p.add_argument("--preset", help="named preset (see `scvae presets`); default small-32")
    p.add_argument("--model-type", dest="model_type",
                   help="scvae (default), ae, vqvae, vqvae-strong, fsq, rvq or vae")
    p.add_argument("--model", dest="model_type_deprecated", help=argparse.SUPPRESS)
    p.add_argument("--data", help="folder of images (recursive); default: built-in scikit-image photos")
    p.add_argument("--val-data", help="separate validation folder (default: hold out val_ratio of --data)")
    p.add_argument("--out", default="runs/scvae", help="run directory (default runs/scvae)")
    p.add_argument("--steps", type=int, help="number of optimisation steps")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last")
    p.add_argument("--overwrite", action="store_true", help="delete a non-empty --out and start afresh")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved run config (YAML) and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. lr=1e-3 model.lam=0.5")
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("reconstruct", help="reconstruct images; one PNG per input named after its stem")
    _image_arguments(p, "output folder", "'full': the whole image at its own size; N: the whole image with its "
                                         "shorter side resized to N; default: the model's centre crop")
    p.add_argument("--side-by-side", action="store_true", help="also write <name>_side_by_side.png (input | output)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=commands.cmd_reconstruct)

    p = sub.add_parser("encode", help="encode images to sparse codes, saved as one (N, K, h, w) tensor")
    _image_arguments(p, "output .safetensors file", "'full': whole images at their own size; N: shorter side "
                     "resized to N; each image's codes are then stored as codes.<i> on its own grid (default: "
                     "the model's centre crop, one (N, K, h, w) tensor)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--allow-slow", action="store_true",
                   help="run a whole-image pass even when its estimated cost is hours (attention grows with the area squared)")
    p.set_defaults(func=commands.cmd_encode)

    p = sub.add_parser("eval", help="PSNR/SSIM (+ LPIPS/rFID when available) and collapse diagnostics on a whole set")
    p.add_argument("--model", required=True, help="run directory or saved model directory")
    p.add_argument("--data", required=True, help="image folder, CIFAR python batches or MNIST idx files")
    p.add_argument("--out", help="output folder (default: RUN_DIR/eval)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--size", type=int, help="evaluate N x N centre crops after resizing the shorter side to N "
                                            "(a multiple of f; default: the model's resolution)")
    _metric_weight_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=commands.cmd_eval)

    p = sub.add_parser("compare", help="train SC-VAE and baselines on the same backbone/data/budget and compare")
    _sweep_arguments(p, "--models", "scvae,ae,vqvae,vqvae-strong,fsq,vae", "runs/compare")
    _metric_weight_arguments(p)
    p.set_defaults(func=commands.cmd_compare)

    p = sub.add_parser("rd", help="rate-distortion: a small sweep per family, PSNR against bits per image in one PNG")
    _sweep_arguments(p, "--families", "scvae,vqvae-strong,fsq,ae,vae", "runs/rd")
    p.set_defaults(func=commands.cmd_rd)

    p = sub.add_parser("export", help="ONNX export: encoder.onnx (images -> codes) and decoder.onnx (codes -> images)")
    p.add_argument("--model", required=True, help="run directory or saved model directory")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=commands.cmd_export)

    add_coding_commands(sub)
    add_downstream_commands(sub)
    add_probe_command(sub)
    add_prior_command(sub)

    p = sub.add_parser("presets", help="list the named presets")
    p.set_defaults(func=commands.cmd_presets)
    return parser


class _StderrLog(logging.Handler):
    """Library log records as ``scvae: message`` lines on whatever sys.stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        _say(f"scvae: {record.getMessage()}")


def _show_library_log() -> None:
    """The library's INFO lines (training progress) on stderr, once per process."""
    logger = logging.getLogger("scvae")
    if not any(isinstance(h, _StderrLog) for h in logger.handlers):
        logger.addHandler(_StderrLog())
        logger.setLevel(logging.INFO)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse, letting KEY=VALUE overrides sit anywhere among the flags (``train lr=1e-3 --steps 10
    model.lam=0.4``): argparse takes one run of positionals, so later ones arrive as extras."""
    args, extras = parser.parse_known_args(argv)
    if extras and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extras):
        args.overrides = [*(args.overrides or []), *extras]
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _field_comments(cls: type) -> dict[str, str]:
    """The ``# comment`` after each field of a dataclass's source: the help's one-line explanations."""
    import inspect
    import re

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source (a frozen build): the help just has no notes
        return {}
    return {m[1]: m[2].strip() for m in re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]*#(.*)$", source, re.M)}


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _one_line_warning
    _show_library_log()
    try:
        args = _parse(build_parser(), sys.argv[1:] if argv is None else list(argv))
        args.command_line = ["scvae", *(sys.argv[1:] if argv is None else argv)]  # recorded in run_info.json
        if args.version:
            from .. import __version__
            print(__version__)
            return 0
        func: Callable | None = getattr(args, "func", None)
        if func is None:
            build_parser().print_help()
            return 2
        code = int(func(args) or 0)
        forget_created_folders()
        return code
    except ScvaeError as exc:
        remove_created_folders()
        _say(f"scvae: error: {exc}")
        return 2
    except KeyboardInterrupt:  # before training started, or in a command without its own handling
        remove_created_folders()
        _say("scvae: error: interrupted")
        return 2
    except BrokenPipeError:  # `scvae presets | head -1`: the reader left; stop quietly, like other Unix tools
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
