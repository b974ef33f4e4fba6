"""Per-image reconstruction metrics.

Convention: images in [0, 1] (inputs in [-1, 1] are mapped by (x + 1) / 2 after clamping); SSIM with
a Gaussian window of size 11 and sigma 1.5 (torchmetrics' SSIM map), averaged over the valid region.
"""
from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped, float32."""
    return ((x.float().clamp(-1, 1) + 1) / 2)


def psnr_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair of (B, C, H, W) tensors in [0, 1]: 10 log10(1 / MSE), shape (B,)."""
    mse = (x.float() - y.float()).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


SSIM_BORDER = 5  # (window 11 - 1) / 2


def ssim_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM of each image pair of (B, C, H, W) tensors in [0, 1], Gaussian window 11, sigma 1.5, shape (B,).

    The SSIM map comes from torchmetrics; it is averaged over the valid region only (a 5-pixel border,
    where the window would reach into padding, is left out), as in Wang et al.'s reference code and
    scikit-image. torchmetrics itself averages over the padded border too.
    """
    _, full = structural_similarity_index_measure(x.float(), y.float(), gaussian_kernel=True, sigma=1.5,
                                                  kernel_size=11, data_range=1.0, reduction="none",
                                                  return_full_image=True)
    b = SSIM_BORDER
    if full.shape[-1] > 2 * b and full.shape[-2] > 2 * b:
        full = full[..., b:-b, b:-b]
    return full.flatten(1).mean(1)
