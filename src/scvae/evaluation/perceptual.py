"""LPIPS and rFID through their standard implementations, when packages and weights are present.

Nothing here downloads: LPIPS uses the ``lpips`` package (AlexNet) and needs its backbone weights in the
torch hub cache or at ``--lpips-weights`` / ``SCVAE_LPIPS_WEIGHTS``; rFID uses torchmetrics'
FrechetInceptionDistance (which needs ``torch-fidelity``) with the Inception weights file given by
``--inception-weights`` / ``SCVAE_INCEPTION_WEIGHTS``. When something is missing the metric is skipped
with one line saying what it needs.
"""
from __future__ import annotations

import os
from typing import Callable

import torch

Scorer = Callable[[torch.Tensor, torch.Tensor], None]


class LPIPSScorer:
    """Mean LPIPS (AlexNet) over all images; inputs in [0, 1]."""

    name = "lpips"

    def __init__(self, weights: str | None):
        import lpips  # noqa: F401  (needs torchvision)

        weights = weights or os.environ.get("SCVAE_LPIPS_WEIGHTS")
        if weights:
            os.environ.setdefault("TORCH_HOME", os.path.dirname(os.path.abspath(weights)))
        self.net = lpips.LPIPS(net="alex", verbose=False).eval()
        self.total, self.count = 0.0, 0

    @torch.no_grad()
    def update(self, x01: torch.Tensor, y01: torch.Tensor) -> None:
        d = self.net(x01 * 2 - 1, y01 * 2 - 1).flatten()
        self.total += float(d.sum())
        self.count += d.numel()

    def result(self) -> float:
        return self.total / max(1, self.count)


class RFIDScorer:
    """Frechet Inception distance between the images and their reconstructions (2048-d pool features)."""

    name = "rfid"

    def __init__(self, weights: str | None):
        weights = weights or os.environ.get("SCVAE_INCEPTION_WEIGHTS")
        if not weights:
            raise RuntimeError("no weights file given")
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.fid = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=weights)

    @torch.no_grad()
    def update(self, x01: torch.Tensor, y01: torch.Tensor) -> None:
        self.fid.update(x01.expand(-1, 3, -1, -1), real=True)
        self.fid.update(y01.expand(-1, 3, -1, -1), real=False)

    def result(self) -> float:
        return float(self.fid.compute())


def make_scorers(lpips_weights: str | None, inception_weights: str | None) -> tuple[list, list[str]]:
    """The scorers that can run here, and one 'X skipped: needs ...' line per scorer that cannot."""
    scorers, skipped = [], []
    for cls, weights, needs in ((LPIPSScorer, lpips_weights, "the lpips package (with torchvision) and AlexNet "
                                 "weights in the torch hub cache or --lpips-weights"),
                                (RFIDScorer, inception_weights, "torch-fidelity and Inception weights "
                                 "(--inception-weights FILE or SCVAE_INCEPTION_WEIGHTS)")):
        try:
            scorers.append(cls(weights))
        except Exception as exc:  # ImportError, missing weights, offline download attempts
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            skipped.append(f"{cls.name.upper()} skipped: needs {needs} ({reason})")
    return scorers, skipped
