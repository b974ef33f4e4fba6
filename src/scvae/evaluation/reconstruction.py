"""Reconstruction quality and code statistics of a model over a whole dataset (per-image averages)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..data import CropDataset
from ..models import AutoencoderModel
from .metrics import active_per_code, atom_activity, psnr_per_image, ssim_per_image, to_unit


@dataclass
class ReconstructionReport:
    """Per-image PSNR/SSIM (dB, unitless) over ``n_images``; for sparse codes, activity statistics."""

    n_images: int
    psnr: float
    ssim: float
    sparse: dict[str, float] = field(default_factory=dict)
    per_image_psnr: list[float] = field(default_factory=list)
    atom_counts: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {"psnr": self.psnr, "ssim": self.ssim, **self.sparse}


def sparse_code_stats(active_counts: torch.Tensor, atom_counts: torch.Tensor) -> dict[str, float]:
    """active_counts (N,): non-zeros per code vector; atom_counts (K,): code vectors using each atom."""
    k = atom_counts.numel()
    active = active_counts.float()
    return {"active_mean": float(active.mean()), "active_median": float(active.median()),
            "active_frac": float(active.mean()) / k, "atoms_used_frac": float((atom_counts > 0).float().mean()),
            "atoms_used": int((atom_counts > 0).sum()), "n_atoms": k}


@torch.no_grad()
def evaluate_reconstruction(model: AutoencoderModel, dataset: CropDataset, batch_size: int = 64,
                            limit: int | None = None, device: torch.device | str = "cpu") -> ReconstructionReport:
    """Reconstruct every (central-crop) image of ``dataset`` and average per-image metrics."""
    was_training = model.training
    model.eval()
    psnrs, ssims, actives, atoms = [], [], [], None
    for _, x in dataset.eval_batches(batch_size, limit):
        x = x.to(device)
        out = model(x)
        x01, y01 = to_unit(x), to_unit(out.reconstruction)
        psnrs.append(psnr_per_image(y01, x01).cpu())
        ssims.append(ssim_per_image(y01, x01).cpu())
        codes = getattr(out, "codes", None)
        if codes is not None:
            actives.append(active_per_code(codes).cpu())
            counts = atom_activity(codes).cpu()
            atoms = counts if atoms is None else atoms + counts
    model.train(was_training)
    psnr, ssim = torch.cat(psnrs), torch.cat(ssims)
    sparse = sparse_code_stats(torch.cat(actives), atoms) if actives else {}
    return ReconstructionReport(n_images=len(psnr), psnr=float(psnr.mean()), ssim=float(ssim.mean()),
                                sparse=sparse, per_image_psnr=psnr.tolist(),
                                atom_counts=atoms.tolist() if atoms is not None else [])
