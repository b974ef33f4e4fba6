"""A label-free invariance term: two views of an image should have the same pooled latent features.

The encoder's latent (B, d, h, w) goes through a small per-position projector (a 1 x 1 MLP), is mean-pooled
over the grid, and the pooled vectors of each image's two views (:func:`~scvae.data.datasets.paired_views`)
are pulled together with VICReg's terms (Bardes, Ponce & LeCun, ICLR 2022): the invariance (mean squared
distance), the variance hinge that keeps each projected feature's standard deviation over the batch at 1
or more (no collapse), and the covariance penalty that decorrelates them. A nonlinearity per position, then
pooling, is how the probe's features are made (k-means triangle codes, then sums over quadrants), so the
term shapes the latent for exactly that use, while the projector leaves the latent free to keep what the
reconstruction needs (colour, position).

The projector is trained by its own Adam alongside the model and checkpointed with the objective's state.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

PROJECTOR_WIDTH = 256
VICREG_WEIGHTS = (1.0, 1.0, 0.04)  # invariance, variance, covariance: VICReg's 25 / 25 / 1, over 25


def vicreg_terms(a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """(N, D) paired embeddings -> VICReg's invariance, variance and covariance terms (scalars)."""
    invariance = F.mse_loss(a, b)
    variance, covariance = a.new_zeros(()), a.new_zeros(())
    for x in (a, b):
        x = x - x.mean(0)
        std = (x.var(0) + 1e-4).sqrt()
        variance = variance + F.relu(1 - std).mean() / 2
        cov = x.T @ x / max(1, len(x) - 1)
        covariance = covariance + (cov.square().sum() - cov.diagonal().square().sum()) / x.shape[1] / 2
    return {"invariance": invariance, "variance": variance, "covariance": covariance}


class InvarianceTerm:
    """``weight`` x (VICReg terms of the projected, pooled latents of the batch's two halves)."""

    def __init__(self, latent_dim: int, weight: float, lr: float, betas: tuple[float, float], device: torch.device,
                 wrap: Callable[[nn.Module], nn.Module] = lambda module: module):
        self.weight = float(weight)
        self.projector = nn.Sequential(nn.Conv2d(latent_dim, PROJECTOR_WIDTH, 1), nn.ReLU(),
                                       nn.Conv2d(PROJECTOR_WIDTH, PROJECTOR_WIDTH, 1)).to(device)
        self.wrapped = wrap(self.projector)
        self.optimizer = torch.optim.Adam(self.projector.parameters(), lr=lr, betas=betas)

    def loss(self, latent: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """latent (B, d, h, w), its second half the views of its first -> (weighted term, logged terms)."""
        pooled = self.wrapped(latent.float()).mean((2, 3))
        first, second = pooled.chunk(2)
        terms = vicreg_terms(first, second)
        total = sum(w * terms[k] for w, k in zip(VICREG_WEIGHTS, ("invariance", "variance", "covariance")))
        return self.weight * total, {f"vicreg_{k}": v.detach() for k, v in terms.items()}

    def step(self) -> None:
        """After the model's backward (which filled the projector's gradients): update the projector."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {"projector": self.projector.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.projector.load_state_dict(state["projector"])
        self.optimizer.load_state_dict(state["optimizer"])
