"""MS-SSIM, LPIPS and rFID over a whole set; the learned ones from local weights files, nothing downloads.

LPIPS is the VGG16 LPIPS that training uses (:mod:`.lpips`): ``--lpips-vgg`` (torchvision's
``vgg16-397923af.pth``) and ``--lpips-lin`` (LPIPS v0.1's ``vgg.pth``), or ``SCVAE_LPIPS_VGG`` /
``SCVAE_LPIPS_LIN``. rFID is the FID Inception of pytorch-fid (:mod:`.fid`): ``--inception-weights``
(``pt_inception-2015-12-05-6726825d.pth``) or ``SCVAE_INCEPTION_WEIGHTS``. A metric whose files are not given
is skipped with one line saying what it needs; a file that is given but unreadable is an error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from ..errors import ScvaeError
from .fid import frechet_distance, load_fid_inception
from .lpips import LPIPS
from .metrics import to_unit

MS_SSIM_MIN_SIDE = 161  # 5 scales with an 11-pixel window: (11 - 1) * 2 ** 4 + 1


@dataclass(frozen=True)
class MetricWeights:
    """Local weights files of the learned metrics; None falls back to the environment variable."""

    lpips_vgg: str | None = None
    lpips_lin: str | None = None
    inception: str | None = None

    def resolved(self) -> "MetricWeights":
        env = os.environ.get
        return MetricWeights(self.lpips_vgg or env("SCVAE_LPIPS_VGG"), self.lpips_lin or env("SCVAE_LPIPS_LIN"),
                             self.inception or env("SCVAE_INCEPTION_WEIGHTS"))

    def check(self) -> "MetricWeights":
        """The resolved weights, after refusing a named file that does not exist (before any work starts)."""
        w = self.resolved()
        for what, path in (("LPIPS VGG16", w.lpips_vgg), ("LPIPS linear-layer", w.lpips_lin), ("Inception", w.inception)):
            if path and not os.path.isfile(path):
                raise ScvaeError(f"{path}: {what} weights file not found")
        return w


class MSSSIMScorer:
    """Mean multiscale SSIM (5 scales, window 11) over all images; inputs (B, C, H, W) in [0, 1], H, W >= 161."""

    name = "ms_ssim"

    def __init__(self):
        self.values: list[torch.Tensor] = []

    def update(self, x01: torch.Tensor, y01: torch.Tensor) -> None:
        self.values.append(multiscale_structural_similarity_index_measure(y01, x01, data_range=1.0,
                                                                          reduction="none").cpu())

    def result(self) -> float:
        return float(torch.cat(self.values).mean())


class LPIPSScorer:
    """Mean VGG LPIPS over all images; inputs (B, C, H, W) in [0, 1], grey images repeated to RGB."""

    name = "lpips"

    def __init__(self, vgg: str, lin: str, device: str | torch.device = "cpu"):
        self.net = LPIPS(vgg, lin).to(device)
        self.total, self.count = 0.0, 0

    @torch.no_grad()
    def update(self, x01: torch.Tensor, y01: torch.Tensor) -> None:
        d = self.net(x01.expand(-1, 3, -1, -1) * 2 - 1, y01.expand(-1, 3, -1, -1) * 2 - 1)
        self.total += float(d.sum())
        self.count += d.numel()

    def result(self) -> float:
        return self.total / max(1, self.count)


class RFIDScorer:
    """Frechet Inception distance between the images and their reconstructions (2048-d pool features)."""

    name = "rfid"

    def __init__(self, weights: str, device: str | torch.device = "cpu"):
        self.net = load_fid_inception(weights).to(device)
        self.real: list[np.ndarray] = []
        self.fake: list[np.ndarray] = []

    def update(self, x01: torch.Tensor, y01: torch.Tensor) -> None:
        self.real.append(self.net(x01.expand(-1, 3, -1, -1)).double().cpu().numpy())
        self.fake.append(self.net(y01.expand(-1, 3, -1, -1)).double().cpu().numpy())

    def result(self) -> float:
        return frechet_distance(np.concatenate(self.real), np.concatenate(self.fake))


def make_scorers(weights: MetricWeights | None, crop_size: int,
                 device: str | torch.device = "cpu") -> tuple[list, list[str]]:
    """The scorers that can run (their weights given, crops large enough), and one 'X skipped: needs ...'
    line for each other one."""
    w = (weights or MetricWeights()).resolved()
    scorers, skipped = [], []
    if crop_size >= MS_SSIM_MIN_SIDE:
        scorers.append(MSSSIMScorer())
    else:
        skipped.append(f"MS-SSIM skipped: needs crops of at least {MS_SSIM_MIN_SIDE} px (evaluated at "
                       f"{crop_size} px; see --size)")
    if w.lpips_vgg and w.lpips_lin:
        scorers.append(LPIPSScorer(w.lpips_vgg, w.lpips_lin, device))
    else:
        skipped.append("LPIPS skipped: needs --lpips-vgg (torchvision's vgg16-397923af.pth) and --lpips-lin "
                       "(LPIPS v0.1's vgg.pth), or SCVAE_LPIPS_VGG and SCVAE_LPIPS_LIN")
    if w.inception:
        scorers.append(RFIDScorer(w.inception, device))
    else:
        skipped.append("rFID skipped: needs --inception-weights (pytorch-fid's "
                       "pt_inception-2015-12-05-6726825d.pth) or SCVAE_INCEPTION_WEIGHTS")
    return scorers, skipped


@torch.no_grad()
def score_dataset(model, dataset: Dataset, weights: MetricWeights | None, batch_size: int = 64,
                  limit: int | None = None, device: str | torch.device = "cpu") -> tuple[dict[str, float], list[str]]:
    """MS-SSIM, LPIPS and rFID of ``model``'s reconstructions of a ``CropDataset`` (those that can run);
    returns ({metric: value}, skipped lines)."""
    scorers, skipped = make_scorers(weights, dataset.size, device)
    if scorers:
        model.eval()
        for _, x in dataset.eval_batches(batch_size, limit):
            x = x.to(device)
            x01, y01 = to_unit(x), to_unit(model(x).reconstruction)
            for scorer in scorers:
                scorer.update(x01, y01)
    return {scorer.name: scorer.result() for scorer in scorers}, skipped
