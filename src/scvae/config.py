"""The run configuration: which model, its constructor config, and how to train it.

Resolution order: preset -> config file (YAML) -> ``key=value`` overrides. ``model.KEY=V`` sets a
model constructor argument; any other key is a training setting (``lr=1e-3``, ``train.lr=1e-3``).
Unknown keys are errors, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ScvaeError
from .files import read_text_file, write_text_atomic
from .models import MODEL_REGISTRY
from .models.backbone import LEGACY_NORM
from .presets import get_preset, model_settings

INVARIANCE_VIEWS = ("replace", "extra")  # where the invariance term's second views come from (TrainConfig)


@dataclass
class TrainConfig:
    """Training settings; every field can be set from a config file or as ``key=value``."""

    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  # cosine decay from lr to lr * min_lr_ratio
    warmup_steps: int = 50
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 (autocast; LISTA itself always runs in fp32)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 10
    loggers: list[str] = field(default_factory=lambda: ["tensorboard"])  # + wandb, mlflow (metrics.jsonl always)
    val_every: int = 0  # 0 = auto: steps // 20, about 20 validations per run
    val_images: int = 1000  # cap on validation images per evaluation
    save_every: int = 250
    data: str | None = None  # image folder; None = built-in scikit-image photos
    val_data: str | None = None  # separate validation folder; None = split off val_ratio of data
    val_ratio: float = 0.1
    split_group: str = "none"  # none | folder | prefix: hold out whole sub-folders / file-name prefixes
    flip: bool = True
    mosaic: int = 1  # train on m x m mosaics of crops (batch_size / m^2 images of m times the side); 1 = off
    mask_ratio: float = 0.0  # label-free masking: this fraction of each input's f x f cells greyed out, the loss on all
    invariance_weight: float = 0.0  # label-free: VICReg on the pooled latents of images and their second views
    invariance_views: str = "replace"  # replace: views take half of each batch | extra: views only encoded, in addition
    builtin_scale: int = 4  # built-in photos are resized to builtin_scale * resolution (shorter side)
    data_scale: float = 1.0  # --data images are resized to data_scale * resolution (shorter side)
    data_cache: str = "auto"  # memory | stream | auto (memory while the decoded images fit 1 GiB)
    num_workers: int = -1  # processes decoding batches; -1 = auto (0 in memory, half the CPUs when streaming)
    num_threads: int = 0  # torch CPU threads per process; 0 = torch's default
    grad_accum: int = 1  # micro-batches of batch_size per optimizer step
    compile: bool = False  # torch.compile the training forward pass
    compile_backend: str = "inductor"  # torch.compile backend (inductor needs a C++ compiler on CPU)
    ema_decay: float = 0.0  # EMA of the weights, validated and saved as best; 0 = off (e.g. 0.999)
    lpips_weight: float = 0.0  # LPIPS (VGG16) loss weight; needs lpips_vgg and lpips_lin
    lpips_vgg: str | None = None  # torchvision VGG16 state dict (vgg16-397923af.pth), read locally
    lpips_lin: str | None = None  # LPIPS v0.1 linear layers for VGG (lpips/weights/v0.1/vgg.pth)
    disc_weight: float = 0.0  # PatchGAN hinge loss weight (times taming's adaptive weight); 0 = off
    disc_start: int = 0  # step from which the discriminator trains and its loss counts
    disc_layers: int = 3  # PatchGAN depth (taming: 3); needs resolution >= 3 * 2**disc_layers
    disc_lr: float | None = None  # discriminator Adam lr; None = lr

    @property
    def validation_interval(self) -> int:
        """Steps between validations: ``val_every``, or with 0 about 20 per run, so that the curves of a
        short run have points too (1,500 steps: every 75)."""
        return self.val_every or max(1, self.steps // 20)

    def validate(self) -> None:
        """Range-check every setting; the error names the key, the value and what is allowed."""
        def need(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise ScvaeError(f"{key} must be {allowed}, got {getattr(self, key)!r}")

        for key in ("steps", "batch_size", "log_every", "save_every", "val_images"):
            need(getattr(self, key) >= 1, key, "a positive integer")
        need(self.val_every >= 0, "val_every", "0 (auto) or a positive integer")
        need(self.lr > 0 and math.isfinite(self.lr), "lr", "a positive number")
        need(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "in [0, 1]")
        need(self.warmup_steps >= 0, "warmup_steps", "a non-negative integer")
        need(isinstance(self.betas, list) and len(self.betas) == 2 and
             all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas), "betas", "two numbers in [0, 1)")
        need(self.weight_decay >= 0, "weight_decay", ">= 0")
        need(self.adam_eps > 0, "adam_eps", "> 0")
        need(self.grad_clip >= 0, "grad_clip", ">= 0 (0 disables clipping)")
        need(self.seed >= 0, "seed", "a non-negative integer")
        need(self.precision in ("fp32", "bf16"), "precision", "'fp32' or 'bf16'")
        need(isinstance(self.device, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device) is not None,
             "device", "auto, cpu, mps, cuda or cuda:N")
        need(0 < self.val_ratio < 1, "val_ratio", "in (0, 1)")
        need(self.split_group in ("none", "folder", "prefix"), "split_group", "none, folder or prefix")
        need(self.builtin_scale >= 1, "builtin_scale", "an integer >= 1")
        need(self.data_scale >= 1 and math.isfinite(self.data_scale), "data_scale", ">= 1")
        need(self.data_cache in ("auto", "memory", "stream"), "data_cache", "auto, memory or stream")
        need(isinstance(self.loggers, list) and all(isinstance(n, str) for n in self.loggers), "loggers",
             "a list such as [tensorboard, wandb, mlflow]")
        need(self.num_workers >= -1, "num_workers", "-1 (auto) or a non-negative integer")
        need(self.num_threads >= 0, "num_threads", "0 (torch's default) or a positive integer")
        need(self.grad_accum >= 1, "grad_accum", "a positive integer")
        need(self.mosaic >= 1 and self.batch_size % self.mosaic ** 2 == 0, "mosaic",
             f"a positive integer m with m^2 dividing batch_size ({self.batch_size})")
        need(0 <= self.mask_ratio < 1, "mask_ratio", "in [0, 1) (0 disables masking)")
        need(self.invariance_weight >= 0 and math.isfinite(self.invariance_weight), "invariance_weight",
             ">= 0 (0 disables the invariance term)")
        need(self.invariance_views in INVARIANCE_VIEWS, "invariance_views", f"one of {', '.join(INVARIANCE_VIEWS)}")
        need(self.invariance_weight == 0 or self.batch_size // self.mosaic ** 2 % 2 == 0, "batch_size",
             "such that each batch (of mosaics) has an even size when invariance_weight > 0 (half are second views)")
        need(isinstance(self.compile_backend, str) and self.compile_backend != "", "compile_backend", "a backend name")
        need(0 <= self.ema_decay < 1, "ema_decay", "in [0, 1) (0 disables the weight EMA)")
        need(self.lpips_weight >= 0 and math.isfinite(self.lpips_weight), "lpips_weight", ">= 0")
        for key in ("lpips_vgg", "lpips_lin"):
            need(self.lpips_weight == 0 or isinstance(getattr(self, key), str), key,
                 "the path of a local weights file when lpips_weight > 0 (nothing is downloaded)")
        need(self.disc_weight >= 0 and math.isfinite(self.disc_weight), "disc_weight", ">= 0")
        need(self.disc_start >= 0, "disc_start", "a non-negative integer")
        need(self.disc_layers >= 1, "disc_layers", "a positive integer")
        need(self.disc_lr is None or (isinstance(self.disc_lr, (int, float)) and 0 < self.disc_lr < math.inf), "disc_lr",
             "a positive number or null (= lr)")


@dataclass
class RunConfig:
    model_type: str
    preset: str
    model: dict[str, Any]
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "preset": self.preset, "model": dict(self.model),
                "train": dataclasses.asdict(self.train)}

    def trained_weights_key(self) -> dict[str, Any]:
        """:meth:`to_dict` without the settings that only decide how often a run logs, validates and saves,
        or where it reports: two runs with equal keys end with the same last checkpoint."""
        key = self.to_dict()
        for name in CADENCE_KEYS:
            key["train"].pop(name)
        return key


CADENCE_KEYS = ("log_every", "val_every", "val_images", "save_every", "loggers", "num_workers")


def model_class(model_type: str):
    try:
        return MODEL_REGISTRY[model_type]
    except KeyError:
        raise ScvaeError(f"unknown model {model_type!r}; choose one of: {', '.join(MODEL_REGISTRY)}") from None


def _model_params(model_type: str) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(model_class(model_type).__init__).parameters)
    params.pop("self", None)
    return params


def _coerce_model(name: str, value: Any, param: inspect.Parameter) -> Any:
    """Check a model setting against its constructor default (or, for a None default, its annotation)."""
    default, note = param.default, str(param.annotation)
    if value is None and (default is None or "None" in note):
        return None
    if isinstance(default, (list, tuple)) or "Sequence" in note:
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return value
        raise ScvaeError(f"model.{name}: expected a list of integers, got {value!r}")
    if default is not None and default is not inspect.Parameter.empty:
        expected = type(default)
    else:
        expected = next((kind for kind in (bool, int, float, str) if kind.__name__ in note), None)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is float and number and math.isfinite(value):
        return float(value)
    if expected is None or (expected is int and number and isinstance(value, int)) or \
            (expected in (bool, str) and isinstance(value, expected)):
        return value
    raise ScvaeError(f"model.{name}: expected {expected.__name__}, got {value!r}")


def _parse_value(text: str) -> Any:
    """YAML, except that every number Python accepts is a number (YAML 1.1 reads ``1e-3`` as a string)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Check a training value against its field's default type (ints accepted for floats)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ScvaeError(f"{name}: expected {type(default).__name__}, got {value!r}")
    return value


def _apply(run: dict[str, Any], key: str, value: Any, model_params: dict[str, inspect.Parameter]) -> None:
    section, _, name = key.rpartition(".")
    if section == "model":
        if name not in model_params:
            raise ScvaeError(f"unknown model config key {name!r} for {run['model_type']}"
                             + _did_you_mean(name, model_params, "model.", train_keys()))
        run["model"][name] = _coerce_model(name, value, model_params[name])
    elif section in ("", "train"):
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(TrainConfig)}
        if name not in defaults:
            raise ScvaeError(f"unknown config key {key!r}" + _did_you_mean(name, defaults, "model.", model_params,
                                                                          other_first=True))
        run["train"][name] = _coerce(name, value, defaults[name])
    else:
        raise ScvaeError(f"unknown config key {key!r}{LIST_KEYS}")


def train_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


# names other tools use for a key, and the key they mean here
KEY_ALIASES = {"learning_rate": "lr", "learning-rate": "lr", "batch": "batch_size", "iterations": "steps",
               "max_steps": "steps", "num_steps": "steps", "wd": "weight_decay"}
LIST_KEYS = " (scvae train --print-config lists every key)"


def _did_you_mean(name: str, keys, other_prefix: str, other_keys, other_first: bool = False) -> str:
    """'; did you mean X?' for a mistyped key: the same name in the other section (``lam`` given as a
    training key is ``model.lam``), else the closest key of its own section."""
    import difflib

    if KEY_ALIASES.get(name) in keys:
        return f"; did you mean {'' if other_first else other_prefix}{KEY_ALIASES[name]}?{LIST_KEYS}"
    if name in other_keys:
        return f"; did you mean {other_prefix if other_first else ''}{name}?{LIST_KEYS}"
    close = difflib.get_close_matches(name, list(keys), n=1)
    if close:
        return f"; did you mean {'' if other_first else other_prefix}{close[0]}?{LIST_KEYS}"
    return LIST_KEYS


def resolve_config(preset: str | None = None, model_type: str | None = None, config_file: str | None = None,
                   overrides: list[str] | None = None, **train_overrides: Any) -> RunConfig:
    """Build a validated :class:`RunConfig` from a preset, an optional YAML file and overrides."""
    file_cfg: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        text = read_text_file(path, "config file not found", "a YAML config")
        try:
            file_cfg = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ScvaeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(file_cfg, dict):
            raise ScvaeError(f"{path}: expected a mapping at the top level")
        unknown = set(file_cfg) - {"model_type", "preset", "model", "train"}
        if unknown:
            raise ScvaeError(f"{path}: unknown config key(s) {', '.join(sorted(unknown))}")
    preset = preset or file_cfg.get("preset") or "small-32"
    model_type = model_type or file_cfg.get("model_type") or "scvae"
    keys = _model_params(model_type)
    spec = get_preset(preset)
    run: dict[str, Any] = {"model_type": model_type, "model": {}, "train": {}}
    for key, value in model_settings(preset, model_type).items():
        _apply(run, f"model.{key}", value, keys)
    for key, value in spec["train"].items():
        _apply(run, key, value, keys)
    for section in ("model", "train"):
        entries = file_cfg.get(section) or {}
        if not isinstance(entries, dict):
            raise ScvaeError(f"{config_file}: '{section}' must be a mapping")
        for key, value in entries.items():
            _apply(run, f"{section}.{key}", value, keys)
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ScvaeError(f"override {item!r} is not of the form key=value")
        _apply(run, key.strip(), _parse_value(text), keys)
    for key, value in train_overrides.items():
        if value is not None:
            _apply(run, key, value, keys)
    train = TrainConfig(**run["train"])
    train.validate()
    model = run["model"]
    if "resolution" in model and "ch_mult" in model:
        factor = 2 ** (len(model["ch_mult"]) - 1)
        if model["resolution"] < factor or model["resolution"] % factor:
            raise ScvaeError(f"model.resolution must be a multiple of the downsampling factor {factor} "
                             f"(2 ** (len(ch_mult) - 1)), got {model['resolution']}")
    return RunConfig(model_type, preset, model, train)


def build_model(run: RunConfig):
    """Instantiate the run's model; invalid model settings become one-line ScvaeErrors."""
    from .models.base import parameter_bytes
    from .resources import require_memory

    cls = model_class(run.model_type)
    try:
        require_memory(parameter_bytes(cls, run.model), f"the {run.model_type} model of this config")
        return cls(**run.model)
    except ScvaeError:
        raise
    except (TypeError, ValueError) as exc:
        raise ScvaeError(f"invalid model config: {exc}") from None


def save_run_config(run: RunConfig, path: str | os.PathLike) -> None:
    write_text_atomic(path, yaml.safe_dump(run.to_dict(), sort_keys=False))


def load_run_config(path: str | os.PathLike) -> RunConfig:
    """Read a run's ``config.yaml``, validated exactly like a fresh config: a damaged, foreign or
    hand-edited file is one ScvaeError naming the file and the problem."""
    path = Path(path)
    text = read_text_file(path, "missing", "a YAML run config")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScvaeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not {"model_type", "preset", "model", "train"} <= set(data):
        raise ScvaeError(f"{path}: not an scvae run config (needs model_type, preset, model and train)")
    try:
        if not isinstance(data["model"], dict) or not isinstance(data["train"], dict):
            raise ScvaeError("'model' and 'train' must be mappings")
        get_preset(str(data["preset"]))
        params = _model_params(str(data["model_type"]))
        run: dict[str, Any] = {"model_type": data["model_type"], "model": {}, "train": {}}
        for key, value in data["model"].items():
            _apply(run, f"model.{key}", value, params)
        run["model"].setdefault("norm", LEGACY_NORM)  # written before the presets named their norm: GroupNorm
        for key, value in data["train"].items():
            _apply(run, f"train.{key}", value, params)
        train = TrainConfig(**run["train"])
        train.validate()
    except ScvaeError as exc:
        raise ScvaeError(f"{path}: {exc}") from None
    return RunConfig(str(data["model_type"]), str(data["preset"]), run["model"], train)
