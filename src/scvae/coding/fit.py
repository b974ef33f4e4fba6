"""Fitting a family's entropy model on training images, and measuring a model's coded rate."""
from __future__ import annotations

import torch

from typing import NamedTuple

from ..data import CropDataset
from ..evaluation.rate import decoded_psnr, largest_step
from .entropy_model import ChannelEntropyModel


class CodedCrops(NamedTuple):
    """symbols (N, C, h, w) of ``images`` (N, C, H, W) in [-1, 1]; step: what continuous codes were
    quantised with (None for discrete codes)."""

    symbols: torch.Tensor
    step: float | None
    images: torch.Tensor


@torch.no_grad()
def code_symbols(autoencoder, dataset: CropDataset, limit: int | None = 2000, step: float | None = None,
                 max_psnr_loss: float = 0.1, batch_size: int = 64) -> CodedCrops:
    """The symbols of the central crops of ``dataset`` (at most ``limit``) and the step they were
    quantised with. Continuous codes are quantised with ``step``: by default the model's own (a
    quantisation-aware SC-VAE's ``quantize_step``), else the largest step that costs at most ``max_psnr_loss``
    dB on these crops, as the rate estimate chooses it; discrete codes have no step (None)."""
    was = autoencoder.training
    autoencoder.eval()
    device = next(autoencoder.parameters()).device
    try:
        images = torch.cat([x for _, x in dataset.eval_batches(batch_size, limit)])
        codes = torch.cat([autoencoder.encode(images[i:i + batch_size].to(device)).codes.cpu()
                           for i in range(0, len(images), batch_size)])
        if codes.is_floating_point():
            step = step or autoencoder.symbol_step()
            if step is None:
                step, _, _ = largest_step(autoencoder, codes,
                                          lambda c: decoded_psnr(autoencoder, c, images, batch_size, device),
                                          max_psnr_loss)
        else:
            step = None
        return CodedCrops(autoencoder.to_symbols(codes, step), step, images)
    finally:
        autoencoder.train(was)


def fit_entropy_model(autoencoder, dataset: CropDataset, limit: int | None = 2000, step: float | None = None,
                      max_psnr_loss: float = 0.1, batch_size: int = 64,
                      context: bool = False) -> ChannelEntropyModel:
    """Count the symbols of :func:`code_symbols` (same arguments). ``context``: one distribution per
    channel and neighbour context (see :mod:`scvae.coding.entropy_model`)."""
    symbols, step, _ = code_symbols(autoencoder, dataset, limit, step, max_psnr_loss, batch_size)
    return ChannelEntropyModel.fit(symbols, step, autoencoder.model_type, context=context)
