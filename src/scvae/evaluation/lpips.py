"""LPIPS (Zhang et al. 2018) with VGG16 features in plain torch, one network for the training loss (taming's
stage-1 objective) and the evaluation metric.

No torchvision and no download: the weights come from two local files in their official key layouts,
read with ``torch.load(weights_only=True)`` (or safetensors):

- ``vgg``: torchvision's VGG16 state dict (``vgg16-397923af.pth``; keys ``features.N.weight`` / ``.bias``,
  the ``classifier.*`` keys are ignored);
- ``lin``: LPIPS v0.1's linear layers for VGG (``lpips/weights/v0.1/vgg.pth``; keys ``linL.model.1.weight``,
  L = 0..4, each (1, C_L, 1, 1)).

LPIPS(x, y) = sum_L mean_hw( w_L . (f_L(x) / |f_L(x)| - f_L(y) / |f_L(y)|)^2 ), with f_L the VGG16
activations relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of inputs in [-1, 1] after LPIPS' scaling layer.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import ScvaeError

# torchvision's VGG16 "features" (configuration D): conv widths, "M" = max-pool
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
_SLICE_ENDS = [4, 9, 16, 23, 30]  # features[:4] ends at relu1_2, [:9] relu2_2, ... [:30] relu5_3
_CHANNELS = [64, 128, 256, 512, 512]


def vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` layer for layer, so its state-dict keys load unchanged."""
    layers: list[nn.Module] = []
    prev = 3
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(prev, v, 3, padding=1), nn.ReLU(inplace=False)]
            prev = v
    return nn.Sequential(*layers)


def read_state(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file (safetensors, or torch.load without pickled code); one line on failure."""
    path = Path(path)
    if not path.is_file():
        raise ScvaeError(f"{path}: {what} weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line naming it
        raise ScvaeError(f"{path}: cannot read {what} weights ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise ScvaeError(f"{path}: {what} weights are not a state dict")
    return state


class LPIPS(nn.Module):
    """Perceptual distance, (B, 3, H, W) x 2 in [-1, 1] -> (B,). Frozen; gradients flow to the inputs."""

    def __init__(self, vgg_weights: str | os.PathLike, lin_weights: str | os.PathLike):
        super().__init__()
        self.features = vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        vgg = {k[len("features."):]: v for k, v in read_state(vgg_weights, "VGG16").items()
               if k.startswith("features.")}
        lin = read_state(lin_weights, "LPIPS linear-layer")
        try:
            self.features.load_state_dict(vgg)
            self.lins.load_state_dict({f"{i}.weight": lin[f"lin{i}.model.1.weight"] for i in range(5)})
        except (KeyError, RuntimeError) as exc:
            raise ScvaeError(f"LPIPS weights do not match VGG16 / LPIPS v0.1 "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)  # always in eval mode (a fixed metric)

    def _activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h, start = [], (x - self.shift) / self.scale, 0
        for end in _SLICE_ENDS:
            h = self.features[start:end](h)
            out.append(h)
            start = end
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(x.shape[0])
        for lin, fx, fy in zip(self.lins, self._activations(x), self._activations(y)):
            fx = fx / (fx.square().sum(1, keepdim=True).sqrt() + 1e-10)
            fy = fy / (fy.square().sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((fx - fy).square()).mean((1, 2, 3))
        return total
