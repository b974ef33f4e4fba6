"""Reconstruction quality and code statistics of a model over a whole dataset (per-image averages)."""
from __future__ import annotations

from dataclasses import dataclass, field

import math

import torch
from tqdm.auto import tqdm

from ..data import CropDataset
from ..models import AutoencoderModel
from .diagnostics import diagnostics_for
from .metrics import psnr_per_image, ssim_per_image, to_unit


@dataclass
class ReconstructionReport:
    """Per-image PSNR/SSIM (dB, unitless) averaged over ``n_images``, plus the model type's diagnostics."""

    n_images: int
    psnr: float
    ssim: float
    diagnostics: dict = field(default_factory=dict)
    per_image_psnr: list[float] = field(default_factory=list)
    per_image_ssim: list[float] = field(default_factory=list)
    usage_counts: list[int] | None = None

    def summary(self) -> dict:
        """Scalars only (for logs and tables)."""
        scalars = {k: v for k, v in self.diagnostics.items() if isinstance(v, (int, float))}
        return {"psnr": self.psnr, "ssim": self.ssim, **scalars}


@torch.no_grad()
def evaluate_reconstruction(model: AutoencoderModel, dataset: CropDataset, batch_size: int = 64,
                            limit: int | None = None, device: torch.device | str = "cpu") -> ReconstructionReport:
    """Reconstruct every (central-crop) image of ``dataset`` and average per-image metrics."""
    was_training = model.training
    model.eval()
    psnrs, ssims = [], []
    diagnostics = diagnostics_for(model)
    diagnostics = diagnostics.for_model(model) if diagnostics else None
    n = len(dataset) if limit is None else min(limit, len(dataset))
    batches = tqdm(dataset.eval_batches(batch_size, limit), total=math.ceil(n / batch_size), desc="evaluating",
                   unit="batch", leave=False, disable=n < 2000)
    for _, x in batches:
        x = x.to(device)
        out = model(x)
        x01, y01 = to_unit(x), to_unit(out.reconstruction)
        psnrs.append(psnr_per_image(y01, x01).cpu())
        ssims.append(ssim_per_image(y01, x01).cpu())
        if diagnostics is not None:
            diagnostics.update(out)
    model.train(was_training)
    psnr, ssim = torch.cat(psnrs), torch.cat(ssims)
    return ReconstructionReport(n_images=len(psnr), psnr=float(psnr.mean()), ssim=float(ssim.mean()),
                                diagnostics=diagnostics.result() if diagnostics else {},
                                per_image_psnr=psnr.tolist(), per_image_ssim=ssim.tolist(),
                                usage_counts=diagnostics.usage_counts if diagnostics else None)
