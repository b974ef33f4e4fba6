"""One call from an autoencoder and its training images to a trained prior with its held-out bits."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch

from ..coding.fit import CodedCrops, code_symbols
from ..data import CropDataset
from ..errors import ScvaeError
from ..evaluation.rate import decoded_psnr
from ..presets import PRIOR_DEFAULTS
from .layout import EntryLayout
from .network import PriorConfig, PriorNetwork
from .training import LearnedPrior, PriorTraining, train_network

PRIOR_IMAGES = PRIOR_DEFAULTS["images"]  # training crops encoded once; the prior trains on their symbols


def prior_layout(autoencoder, symbols: torch.Tensor) -> EntryLayout:
    """The entry layout of a family's training symbols (N, C, h, w): SC-VAE's atoms are sparse, listed up
    to the model's cap on active atoms; every other family is dense."""
    sparse = autoencoder.coded_channel == "atom"
    lista = getattr(autoencoder.bottleneck, "lista", None)
    return EntryLayout.fit(symbols, sparse, getattr(lista, "max_active", None) if sparse else None)


def fit_prior(autoencoder, train: CropDataset, held_out: CropDataset | None = None, *,
              images: int = PRIOR_IMAGES, step: float | None = None, **training) -> LearnedPrior:
    """Encode up to ``images`` central crops of ``train`` (and of ``held_out``) and fit the prior to their
    symbols with :func:`prior_from_symbols` (``training``: its keyword arguments). Continuous codes are
    quantised as :func:`scvae.coding.fit.code_symbols` does (``step``)."""
    coded = code_symbols(autoencoder, train, images, step)
    held = code_symbols(autoencoder, held_out, images, coded.step) if held_out is not None else None
    return prior_from_symbols(autoencoder, coded, held, **training)


def prior_from_symbols(autoencoder, train: CodedCrops, held_out: CodedCrops | None = None, *,
                       settings: PriorTraining = PriorTraining(), config: PriorConfig | None = None,
                       source: str = "", resume: dict[str, torch.Tensor] | None = None, progress: bool = True,
                       checkpoint: Callable[[int, dict[str, torch.Tensor]], None] | None = None) -> LearnedPrior:
    """Fit a :class:`PriorNetwork` to the training symbols for ``settings.steps`` steps and measure its bits per
    image on ``held_out`` (``info["held_out_bits"]``) with the PSNR of the decoder at those codes
    (``info["held_out_psnr"]``); ``resume`` / ``checkpoint``: see :func:`.training.train_network`."""
    symbols, step = train.symbols, train.step
    if len(symbols) < 2:
        raise ScvaeError(f"need at least 2 training images to fit a prior, got {len(symbols)}")
    grid = tuple(symbols.shape[2:])
    config = config or PriorConfig()
    if config.positions is None:
        config = replace(config, positions=grid[0] * grid[1])
    if grid[0] * grid[1] > config.positions:
        raise ScvaeError(f"the codes have {grid[0] * grid[1]} positions, the prior at most {config.positions}")
    torch.manual_seed(settings.seed)
    network = PriorNetwork(prior_layout(autoencoder, symbols), config)
    history = train_network(network, network.layout.pack(symbols), settings, resume=resume, progress=progress,
                            checkpoint=checkpoint)
    prior = LearnedPrior(network.eval(), step, autoencoder.model_type, source, grid)
    prior.info = {"steps": settings.steps, "train_images": len(symbols), "settings": settings.__dict__,
                  "final_batch_bits": history[-1][1] if history else None}
    if held_out is not None:
        device = next(autoencoder.parameters()).device
        psnr = decoded_psnr(autoencoder, autoencoder.from_symbols(held_out.symbols, step), held_out.images,
                            device=device)
        prior.info |= {"held_out_images": len(held_out.images), "held_out_psnr": psnr,
                       "held_out_bits": float(prior.bits(held_out.symbols).mean())}
    return prior
