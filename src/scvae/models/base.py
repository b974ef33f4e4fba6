"""What every autoencoder of the family shares: a captured config, a registry, and save/load.

Like diffusers' ``ConfigMixin``, the constructor's keyword arguments are the config: they are written
to ``config.json`` next to the weights in ``model.safetensors`` and are enough to rebuild the model.
"""
from __future__ import annotations

import functools
import json
import math
import os
from abc import ABCMeta
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..errors import ScvaeError
from ..files import ordinary_mode, read_text_file, write_text_atomic
from ..resources import require_memory
from .backbone import LEGACY_NORM
from .hub import ModelConfig, download, looks_like_repo_id
from .outputs import AutoencoderOutput, DecoderOutput, EncoderOutput

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_REGISTRY: dict[str, type["AutoencoderModel"]] = {}
BACKBONE_KEYS = ("ch", "ch_mult", "num_res_blocks", "resolution", "attn_resolutions", "mid_attn", "dropout",
                 "padding_mode", "norm")


def parameter_bytes(model_class: type["AutoencoderModel"], config: dict[str, Any]) -> int:
    """Bytes of the float32 encoder and decoder weights of ``model_class(**config)``, counted on the meta
    device (nothing is allocated), so a config of absurd width is refused before it is built."""
    import inspect

    from .backbone import Decoder, Encoder

    settings = {name: p.default for name, p in inspect.signature(model_class).parameters.items()
                if p.default is not inspect.Parameter.empty}
    settings.update(config)
    check_backbone(settings)
    backbone = {k: settings[k] for k in BACKBONE_KEYS}
    channels = dict(z_channels=settings["z_channels"])
    with torch.device("meta"):
        parts = [Encoder(in_channels=settings["in_channels"], **channels, **backbone),
                 Decoder(out_channels=settings["in_channels"], **channels, **backbone)]
    return 4 * sum(p.numel() for part in parts for p in part.parameters())


def check_backbone(config: dict[str, Any]) -> None:
    """Raise a ValueError naming the first backbone setting of ``config`` of the wrong type or range."""
    def positive_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    for key in ("ch", "num_res_blocks", "resolution", "z_channels", "in_channels"):
        if key in config and not positive_int(config[key]):
            raise ValueError(f"{key} must be a positive integer, got {config[key]!r}")
    for key in ("ch_mult", "attn_resolutions"):
        value = config.get(key, [])
        if not isinstance(value, (list, tuple)) or not all(positive_int(v) for v in value) \
                or (key == "ch_mult" and not value):
            raise ValueError(f"{key} must be a list of positive integers, got {value!r}")


def register_model(cls: type["AutoencoderModel"]) -> type["AutoencoderModel"]:
    """Class decorator: make ``cls`` loadable by its ``model_type`` name."""
    MODEL_REGISTRY[cls.model_type] = cls
    return cls


def _no_grad_in_eval_mode(method):
    """Run ``method`` without autograd when the model is in eval mode (inference): its outputs then carry
    no graph. In train mode it is unchanged, so gradients flow through it when training needs them."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.training:
            return method(self, *args, **kwargs)
        with torch.no_grad():
            return method(self, *args, **kwargs)
    return wrapper


class AutoencoderModel(nn.Module, metaclass=ABCMeta):
    """Base of every model: ``encode``, ``decode``, ``forward``, ``save_pretrained``, ``from_pretrained``.

    ``encode`` and ``decode`` return :class:`EncoderOutput` / :class:`DecoderOutput`, or with
    ``return_dict=False`` a tuple, as in diffusers. ``encode``, ``decode``, ``code_vectors`` and
    ``nearest_codes`` of a model in eval mode run without autograd (no graph is kept)."""

    model_type: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("_encode", "code_vectors", "nearest_codes"):
            if name in cls.__dict__ and not getattr(cls.__dict__[name], "__isabstractmethod__", False):
                setattr(cls, name, _no_grad_in_eval_mode(cls.__dict__[name]))

    def __init__(self, arguments: dict[str, Any]):
        """``arguments`` is the subclass constructor's ``locals()``: it becomes the JSON config."""
        super().__init__()
        from .losses import reconstruction_loss

        config = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
        check_backbone(config)
        for key in ("ch_mult", "attn_resolutions"):
            if key in config:
                config[key] = list(config[key])
        if "recon_loss" in config:
            reconstruction_loss(config["recon_loss"], torch.zeros(1), torch.zeros(1))  # validates the name
        self.config = ModelConfig(config)
        if self.legacy_prefixes:
            self._register_load_state_dict_pre_hook(self._rename_legacy_keys)

    def _rename_legacy_keys(self, state_dict: dict, prefix: str, *args) -> None:
        for old, new in self.legacy_prefixes.items():
            for key in [k for k in state_dict if k.startswith(prefix + old)]:
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)

    def backbone_config(self) -> dict[str, Any]:
        """Encoder/decoder keyword arguments shared by every model (all but channels)."""
        return {k: self.config[k] for k in BACKBONE_KEYS}

    # --- the bottleneck: every family is encoder -> bottleneck -> decoder (scvae.bottlenecks) ----------
    bottleneck: nn.Module
    sparse_codes = False  # codes whose zeros are a support (SC-VAE): the rate also reports the support's bits
    # checkpoint key prefixes from before the family's bottleneck was a module, and where they live now
    legacy_prefixes: ClassVar[dict[str, str]] = {}

    @_no_grad_in_eval_mode
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> the model's codes (see :class:`EncoderOutput`)."""
        return self.bottleneck.encode(self.encoder(x))

    def synthesize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes as returned by :meth:`encode` -> the decoder's input (B, d, h, w)."""
        return self.bottleneck.synthesize(codes)

    @_no_grad_in_eval_mode
    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> real-valued per-position vectors (B, F, h, w) of the code space, where codes are
        averaged, clustered and sampled (SC-VAE: the sparse codes; VAE: the means; VQ-VAE: code vectors)."""
        return self.bottleneck.code_vectors(codes)

    @_no_grad_in_eval_mode
    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """Any vectors (B, F, h, w) of the code space -> the nearest codes the model can produce
        (SC-VAE: at most ``max_active`` atoms per position; VQ-VAE: the nearest code indices)."""
        return self.bottleneck.nearest_codes(vectors)

    # --- symbols: what an entropy coder codes (scvae.coding) ---------------------------------------
    @property
    def coded_channel(self) -> str:
        """What one channel of :meth:`to_symbols` is, for the rate's description."""
        return self.bottleneck.coded_channel

    def bits_back(self, x: torch.Tensor) -> torch.Tensor | None:
        """The bits-back rate of each image (B,), for a model with a posterior (the VAE's KL); else None."""
        return None

    def symbol_step(self) -> float | None:
        """The quantisation step the model's own codes sit on (None: continuous codes, a step is chosen
        for them; discrete codes ignore it)."""
        return self.bottleneck.symbol_step()

    def to_symbols(self, codes: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """Codes from :meth:`encode` -> the integers an entropy coder codes, (B, C, h, w) int64, one channel
        per coded quantity (continuous codes: each entry's nearest multiple of ``step``)."""
        return self.bottleneck.to_symbols(codes, step)

    def from_symbols(self, symbols: torch.Tensor, step: float | None = None) -> torch.Tensor:
        """The inverse of :meth:`to_symbols`: symbols (B, C, h, w) -> codes :meth:`decode` takes."""
        return self.bottleneck.from_symbols(symbols, step)

    # --- shared -----------------------------------------------------------------------------------
    def after_step(self, output: AutoencoderOutput) -> dict[str, float]:
        """Called by the trainer after each optimizer step with that step's output, for updates outside
        autograd (SC-VAE's dead-atom restarts); returns scalars to log. Nothing by default."""
        return {}

    @property
    def resolution(self) -> int:
        return int(self.config["resolution"])

    @property
    def in_channels(self) -> int:
        return int(self.config.get("in_channels", 3))

    @property
    def downsampling_factor(self) -> int:
        """f: one latent position per f x f pixels (encode any H, W divisible by f)."""
        return 2 ** (len(self.config["ch_mult"]) - 1)

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> EncoderOutput | tuple[torch.Tensor]:
        """Images (B, C, H, W) in [-1, 1], H and W multiples of :attr:`downsampling_factor` -> the codes."""
        codes = self._encode(x)
        return EncoderOutput(codes=codes) if return_dict else (codes,)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> the continuous latent the bottleneck receives, as the forward reports it
        (B, d, h, w) (SC-VAE: RMS-normalised; VAE: the posterior mean), without the bottleneck's work."""
        return self.bottleneck.latent(self.encoder(x))

    @_no_grad_in_eval_mode
    def decode(self, codes: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple[torch.Tensor]:
        """Codes as returned by :meth:`encode` -> images (B, C, h*f, w*f) (unbounded; clamp for display)."""
        sample = self.decode_latent(self.synthesize(codes))
        return DecoderOutput(sample=sample) if return_dict else (sample,)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Decoder input (B, d, h, w) -> images (B, C, h*f, w*f)."""
        return self.decoder(latent.to(next(self.decoder.parameters()).dtype))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [-1, 1] -> reconstruction clamped to [-1, 1]."""
        return self.decode(self.encode(x).codes).sample.clamp(-1, 1)

    @classmethod
    def from_preset(cls, name: str = "small-32", **overrides: Any) -> "AutoencoderModel":
        """A new (untrained) model of this class with preset ``name``'s settings, then ``overrides``."""
        from ..presets import model_settings

        if cls is AutoencoderModel:
            raise ScvaeError("call from_preset on a model class, e.g. SCVAE.from_preset('small-32')")
        return cls(**{**model_settings(name, cls.model_type), **overrides})

    def activation_bytes(self, height: int, width: int, batch: int = 1) -> int:
        """Estimated peak memory of an inference pass (encode + decode, no autograd) on (batch, C, height,
        width) float32 images: about ten feature maps of the widest level alive at once (convolution
        workspaces included), plus the input and the output. ``small-32`` measured 1.30 GB at 1024 px
        against 1.36 GB estimated."""
        mult = list(self.config["ch_mult"])
        widest = max(int(self.config["ch"]) * m * -(-height // 2**level) * -(-width // 2**level)
                     for level, m in enumerate(mult))
        return 4 * batch * (10 * widest + 2 * self.in_channels * height * width)

    def inference_flops(self, height: int, width: int) -> float:
        """Estimated FLOPs of one encode + decode pass on a (1, C, height, width) image: ``a p + b p^2`` in
        the pixel count p (the square is attention over every position), fitted once per model from two
        passes on the meta device, where nothing is computed or allocated."""
        if getattr(self, "_flop_fit", None) is None:
            import copy

            from torch.utils.flop_counter import FlopCounterMode

            meta, sizes, counts = copy.deepcopy(self).to("meta"), (self.resolution, 2 * self.resolution), []
            for side in sizes:
                with FlopCounterMode(display=False) as counter, torch.no_grad():
                    meta.decoder(meta.encoder(torch.zeros(1, self.in_channels, side, side, device="meta")))
                counts.append(counter.get_total_flops())
            p1, p2 = sizes[0] ** 2, sizes[1] ** 2
            b = max(0.0, (counts[1] / p2 - counts[0] / p1) / (p2 - p1))
            self._flop_fit = (counts[0] / p1 - b * p1, b)
        a, b = self._flop_fit
        p = height * width
        return a * p + b * p * p

    def pixels_within_flops(self, flops: float) -> float:
        """The pixel count whose one-pass cost (:meth:`inference_flops`) is ``flops``: the inverse of its fit."""
        self.inference_flops(1, 1)  # fits once
        a, b = self._flop_fit
        return (-a + math.sqrt(a * a + 4 * b * flops)) / (2 * b) if b > 0 else flops / a

    def pad_to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) of any H, W, padded (reflected) on the right and bottom to multiples of the
        downsampling factor f: the model is fully convolutional, so it then encodes at any size."""
        from .tiling import pad_bottom_right

        f = self.downsampling_factor
        return pad_bottom_right(x, -x.shape[-2] % f, -x.shape[-1] % f)

    def encode_any_size(self, x: torch.Tensor, return_dict: bool = True) -> EncoderOutput | tuple[torch.Tensor]:
        """x (B, C, H, W) of any H, W -> codes on a ceil(H/f) x ceil(W/f) grid (see :meth:`pad_to_grid`)."""
        return self.encode(self.pad_to_grid(x), return_dict)

    @torch.no_grad()
    def reconstruct_any_size(self, x: torch.Tensor, tiled: bool | None = None) -> torch.Tensor:
        """x (B, C, H, W) of any H, W -> its reconstruction at the same size. Images larger than the
        training resolution go through overlapping tiles of that size (``tiled``; default: when larger),
        because a GroupNorm model sees other statistics over a larger field (:mod:`.tiling`; a channel-norm
        model gives about the same in one pass, ``tiled=False``, at 1/1.8 of the pixels);
        otherwise the image is padded to the grid, reconstructed whole and cropped back."""
        from .tiling import reconstruct_tiled

        h, w = x.shape[-2:]
        if tiled if tiled is not None else self.is_tiled(h, w):
            return reconstruct_tiled(self.reconstruct, x, self.resolution, self.tile_overlap)
        return self.reconstruct(self.pad_to_grid(x))[..., :h, :w]

    def is_tiled(self, height: int, width: int) -> bool:
        """Whether an image of ``height`` x ``width`` px runs through training-size tiles: when it is larger."""
        return max(height, width) > self.resolution

    @property
    def tile_overlap(self) -> int:
        """The px neighbouring training-size tiles share: a quarter tile, a multiple of the downsampling factor."""
        f = self.downsampling_factor
        return max(f, self.resolution // 4 // f * f)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"model_type": self.model_type, **self.config, "scvae_version": __version__}
        write_text_atomic(directory / CONFIG_NAME, json.dumps(payload, indent=2, sort_keys=True) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"model_type": self.model_type})
        ordinary_mode(directory / WEIGHTS_NAME)
        return directory

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload ``config.json`` + ``model.safetensors`` to a Hugging Face Hub repo (needs ``scvae[hub]``);
        keyword arguments: ``private``, ``token``, ``commit_message``, ``revision``."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                        device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                        revision: str | None = None) -> "AutoencoderModel":
        """Rebuild a model saved by :meth:`save_pretrained`, from a folder or a Hub repo id (``owner/name``,
        downloaded once; needs ``scvae[hub]``), on ``device`` (default ``map_location``) in ``dtype``.
        Called on the base class, it dispatches on ``model_type``; called on a subclass, it refuses a
        checkpoint of another model. The model is returned in eval mode."""
        if looks_like_repo_id(directory):
            directory = download(str(directory), revision)
        map_location = device if device is not None else map_location
        config = read_model_config(directory)
        config.pop("scvae_version", None)
        model_type = config.pop("model_type", None)
        config.setdefault("norm", LEGACY_NORM)  # written before the option: a GroupNorm model
        target = MODEL_REGISTRY.get(model_type) if model_type else None
        if target is None:
            raise ScvaeError(f"{directory}: unknown model_type {model_type!r} in {CONFIG_NAME}")
        if cls is not AutoencoderModel and not issubclass(target, cls):
            raise ScvaeError(f"{directory}: holds a {model_type!r} model, not a {cls.model_type!r} model")
        try:
            require_memory(parameter_bytes(target, config), f"{directory}: the model in {CONFIG_NAME}", map_location)
            model = target(**config)
        except (TypeError, ValueError) as exc:
            raise ScvaeError(f"{directory}: {CONFIG_NAME} does not describe a valid {model_type} model ({exc})")
        weights = Path(directory) / WEIGHTS_NAME
        try:
            state = load_file(str(weights), device=str(map_location))
        except FileNotFoundError:
            raise ScvaeError(f"{weights}: missing")
        except Exception as exc:  # safetensors raises its own error type for truncated/corrupt files
            raise ScvaeError(f"{weights}: unreadable or truncated ({exc})")
        broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if broken:
            raise ScvaeError(f"{weights}: {len(broken)} tensor(s) hold NaN or infinite values (e.g. {broken[0]}); "
                             "the training that wrote them diverged")
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ScvaeError(f"{weights}: weights do not match {CONFIG_NAME} ({first})")
        return (model.to(dtype=dtype) if dtype is not None else model).eval()


def read_model_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a saved model, with clear errors for missing or corrupt files."""
    path = Path(directory) / CONFIG_NAME
    if not Path(directory).is_dir():
        raise ScvaeError(f"{directory}: not a model directory")
    text = read_text_file(path, "missing (not a saved scvae model)", "JSON")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScvaeError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ScvaeError(f"{path}: expected a JSON object")
    return config
