"""Rate: how many bits per image each bottleneck passes to its decoder, measured on a dataset.

- Discrete codes (VQ-VAE, FSQ): the empirical entropy of the code indices over all evaluated positions,
  times positions per image (the ``log2 K`` bound is reported beside it). A plug-in entropy cannot exceed
  log2 of the number of samples, so for an FSQ whose implicit codebook is larger than an eighth of the
  evaluated positions the rate is instead the sum of its dimensions' entropies (the per-channel model the
  continuous codes below are measured with). A residual VQ's rate is the sum of its stages' index
  entropies (a model of independent stages, so an upper bound on their joint entropy).
- Continuous codes (SC-VAE's sparse codes, the AE's dense latent): every code entry is quantised with one
  uniform step (for sparse codes a non-zero never rounds to zero, so the support is kept exactly); the
  rate is the sum over channels (atoms) of the empirical entropy of that channel's quantised values,
  times positions per image. For sparse codes this is, per atom, the entropy of its support plus that
  of its non-zero quantised coefficients. The step is the
  largest of a geometric grid that costs at most ``max_psnr_loss`` dB of PSNR, and is reported.
- VAE: the KL divergence of the posterior from the prior, in bits (the rate of bits-back coding); or, with
  ``kl=False``, its posterior means quantised and rated like the AE's latent.

Every entropy is a plug-in estimate of a per-channel, position-independent model: no context, no
learned prior, so it is an upper bound on what an entropy coder with a better model could reach.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..data import CropDataset
from .metrics import psnr_per_image, to_unit

STEP_GRID = tuple(2.0 * 2 ** (-i / 2) for i in range(29))  # 2.0 down to ~1.2e-4, factor sqrt(2)


@dataclass
class RateReport:
    """bits_per_image / bits_per_pixel at ``psnr`` (dB, after any quantisation the rate needs)."""

    method: str
    bits_per_image: float
    bits_per_pixel: float
    psnr: float
    psnr_unquantised: float
    step: float | None = None
    bound_bits_per_image: float | None = None
    support_bits_per_image: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def entropy_bits(symbols: torch.Tensor) -> float:
    """Plug-in (empirical) entropy in bits of the values in ``symbols`` (any shape, integer-valued)."""
    _, counts = torch.unique(symbols.flatten(), return_counts=True)
    p = counts.double() / counts.sum()
    return float((p * (1 / p).log2()).sum())  # not -(p log p): one symbol would be -0.0 bits


def channel_entropy_bits(codes: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) integer codes -> (C,) entropy in bits of each channel's values over N, h and w."""
    return torch.tensor([entropy_bits(codes[:, c]) for c in range(codes.shape[1])], dtype=torch.float64)


@torch.no_grad()
def estimate_rate(model, dataset: CropDataset, batch_size: int = 64, limit: int | None = None,
                  max_psnr_loss: float = 0.1, device: torch.device | str = "cpu", step: float | None = None,
                  kl: bool = True) -> RateReport:
    """The rate of ``model``'s bottleneck on the central crops of ``dataset`` (see the module doc).

    Continuous codes are quantised with ``step`` when it is given (a quantised-after-training sweep), else
    with the model's own step (:meth:`symbol_step`), else with the largest step within ``max_psnr_loss``.
    A VAE is rated by its KL, or with ``kl=False`` like the AE, by its quantised posterior means."""
    was = model.training
    model.eval()
    images, codes, kl_bits = [], [], []
    for _, x in dataset.eval_batches(batch_size, limit):
        x = x.to(device)
        images.append(x.cpu())
        codes.append(model.encode(x).codes.cpu())
        bits_back = model.bits_back(x) if kl else None
        if bits_back is not None:
            kl_bits.append(bits_back.cpu())
    x, c = torch.cat(images), torch.cat(codes)
    pixels = x.shape[-1] * x.shape[-2]

    def psnr_of(decoder_codes: torch.Tensor) -> float:
        return decoded_psnr(model, decoder_codes, x, batch_size, device)

    base = psnr_of(c)
    try:
        if kl_bits:
            bits = float(torch.cat(kl_bits).mean())
            return RateReport("KL of the posterior (bits)", bits, bits / pixels, base, base)
        if not c.is_floating_point():
            return _index_rate(model, c, base, pixels, device)
        return _quantised_rate(model, c, psnr_of, base, max_psnr_loss, pixels, sparse=model.sparse_codes,
                               step=step or model.symbol_step())
    finally:
        model.train(was)


def _index_rate(model, c: torch.Tensor, base: float, pixels: int, device) -> RateReport:
    """Discrete codes: the joint entropy of the code index at each position, or, where a position holds
    several coded channels (a residual VQ's stages) or the joint alphabet is too large for the samples (a
    large FSQ), the sum of the channels' entropies."""
    positions = c.shape[-1] * c.shape[-2]
    bound = math.log2(model.codebook_size) * c[0].numel()  # every stage's index at every position
    symbols = model.to_symbols(c.to(device)).cpu()
    if symbols.shape[1] == 1 or (c.dim() == 3 and model.codebook_size <= c.numel() / 8):
        bits = entropy_bits(c) * positions
        return RateReport("entropy of code indices", bits, bits / pixels, base, base, bound_bits_per_image=bound)
    bits = float(channel_entropy_bits(symbols).sum()) * positions
    return RateReport(f"sum of the {model.coded_channel}s' entropies", bits, bits / pixels, base, base,
                      bound_bits_per_image=bound)


def decoded_psnr(model, codes: torch.Tensor, images: torch.Tensor, batch_size: int = 64,
                 device: torch.device | str = "cpu") -> float:
    """Mean PSNR of ``images`` (N, C, H, W) against the decoding of ``codes`` (the model in eval mode)."""
    scores = []
    for i in range(0, len(images), batch_size):
        y = model.decode(codes[i:i + batch_size].to(device)).sample.float().clamp(-1, 1).cpu()
        scores.append(psnr_per_image(to_unit(y), to_unit(images[i:i + batch_size])))
    return float(torch.cat(scores).mean())


def largest_step(model, codes: torch.Tensor, psnr_of, max_psnr_loss: float,
                 grid: tuple[float, ...] = STEP_GRID, base: float | None = None) -> tuple[float, torch.Tensor, float]:
    """The largest step of ``grid`` whose symbols (``model.to_symbols``) cost at most ``max_psnr_loss`` dB
    against the unquantised codes (``base``, else ``psnr_of(codes)``: PSNR of a decoding); else the finest.
    Returns the step, the symbols at it and the PSNR of their decoding."""
    if base is None:
        base = psnr_of(codes) if len(grid) > 1 else float("inf")
    for step in grid:  # coarse to fine: the first that passes is the largest
        symbols = model.to_symbols(codes, step)
        psnr = psnr_of(model.from_symbols(symbols, step))
        if psnr >= base - max_psnr_loss:
            break
    return step, symbols, psnr


def _quantised_rate(model, c: torch.Tensor, psnr_of, base: float, max_psnr_loss: float, pixels: int,
                    sparse: bool, step: float | None = None) -> RateReport:
    """The per-channel entropy of the codes at ``step``, or at the largest grid step within ``max_psnr_loss``
    dB."""
    step, symbols, psnr = largest_step(model, c, psnr_of, max_psnr_loss, STEP_GRID if step is None else (step,), base)
    positions = c.shape[2] * c.shape[3]
    bits = float(channel_entropy_bits(symbols).sum()) * positions
    support = None
    if sparse:
        p = (c != 0).double().mean(dim=(0, 2, 3)).clamp(1e-12, 1 - 1e-12)
        support = float(-(p * p.log2() + (1 - p) * (1 - p).log2()).sum()) * positions
    return RateReport("entropy of uniformly quantised codes", bits, bits / pixels, psnr, base, step=step,
                      support_bits_per_image=support)
