"""Pixel reconstruction losses shared by every model of the family."""
from __future__ import annotations

import torch
import torch.nn.functional as F

_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


def reconstruction_loss(name: str, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean pixel loss ``name`` ('mse' or 'l1') between reconstruction and target, computed in float32."""
    try:
        fn = _LOSSES[name]
    except KeyError:
        raise ValueError(f"recon_loss must be one of {sorted(_LOSSES)}, got {name!r}") from None
    return fn(x_hat.float(), x.float())
